import { HttpException, HttpStatus, Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { HttpAdapterHost, ModuleRef, Reflector } from '@nestjs/core';
import { NotLeaderError } from '../../core/errors.js';
import { errorToWire } from '../../transport/wire.js';
import { RaftService } from '../raft.service.js';
import { RAFT_RPC_LISTENER_EXTRA } from '../security/security.constants.js';
import { LEADER_ONLY_METADATA, RAFT_LEADER_URL, type LeaderOnlyOptions, type LeaderUrlResolver } from './leader-only.options.js';

/**
 * The HTTP half of `@LeaderOnly()` (which applies it): admits a request on the leader; on a follower
 * answers `421 Misdirected Request` with the body `RaftExceptionFilter` gives a `NotLeaderError`
 * (`{ statusCode, error, message, code: 'not_leader', leader_id, leader_url }`), or `307` to the
 * leader when the route asked for `{ redirect: true }` and the leader's URL is known.
 *
 * A guard rather than code in the handler: it runs before pipes (a follower does not parse and
 * validate a body it will refuse) and it has the request, which a redirect needs. Other contexts
 * (microservice, WebSocket, GraphQL) are let through: there the method wrapper of `@LeaderOnly()`
 * returns `undefined` on a follower.
 *
 * The node is the application's own RaftService, found through the application's ModuleRef — two
 * applications in one process each consult their own.
 */
@Injectable()
export class LeaderOnlyGuard implements CanActivate {
  private raft: RaftService | undefined;
  private appLeaderUrl: LeaderUrlResolver | null | undefined;
  private rpcOnOwnListener: boolean | undefined;

  constructor(
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const raft = this.raftService();
    if (raft.isLeader()) return true;

    const options = this.reflector.get<LeaderOnlyOptions | undefined>(LEADER_ONLY_METADATA, context.getHandler()) ?? {};
    const status = raft.status();
    const leaderId = status.leaderId;
    const resolver = options.leaderUrl ?? this.applicationLeaderUrl() ?? this.raftUrlIfPublic();
    const leaderUrl = leaderId ? resolver?.({ id: leaderId, ...(status.leaderUrl ? { raftUrl: status.leaderUrl } : {}) }) : undefined;
    const { body } = errorToWire(new NotLeaderError(leaderId, leaderUrl));

    if (options.redirect && leaderUrl) {
      const adapter = this.adapterHost.httpAdapter;
      const http = context.switchToHttp();
      const path = String(adapter.getRequestUrl(http.getRequest()) ?? '/');
      adapter.setHeader(http.getResponse(), 'Location', `${leaderUrl.replace(/\/+$/, '')}${path.startsWith('/') ? path : `/${path}`}`);
      throw new HttpException({ statusCode: HttpStatus.TEMPORARY_REDIRECT, ...body }, HttpStatus.TEMPORARY_REDIRECT);
    }
    throw new HttpException({ statusCode: HttpStatus.MISDIRECTED, ...body }, HttpStatus.MISDIRECTED);
  }

  private raftService(): RaftService {
    if (this.raft) return this.raft;
    let found: RaftService | undefined;
    try {
      found = this.moduleRef.get(RaftService, { strict: false });
    } catch {
      found = undefined;
    }
    if (!found) throw new Error('@LeaderOnly(): no RaftService in this application (import RaftModule)');
    return (this.raft = found);
  }

  /**
   * The default: the leader's Raft url — the address clients use too when the RPC endpoints are
   * served by the application itself. Not when they have their own listener (module extra
   * `rpcListener`): that url is the RPC server's, which serves none of the application's routes.
   */
  private raftUrlIfPublic(): LeaderUrlResolver | undefined {
    if (this.rpcOnOwnListener === undefined) {
      try {
        this.rpcOnOwnListener = this.moduleRef.get(RAFT_RPC_LISTENER_EXTRA, { strict: false }) !== undefined;
      } catch {
        this.rpcOnOwnListener = false;
      }
    }
    return this.rpcOnOwnListener ? undefined : ({ raftUrl }) => raftUrl;
  }

  private applicationLeaderUrl(): LeaderUrlResolver | undefined {
    if (this.appLeaderUrl === undefined) {
      try {
        this.appLeaderUrl = this.moduleRef.get<LeaderUrlResolver>(RAFT_LEADER_URL, { strict: false }) ?? null;
      } catch {
        this.appLeaderUrl = null; // not provided: the Raft url is used
      }
    }
    return this.appLeaderUrl ?? undefined;
  }
}
