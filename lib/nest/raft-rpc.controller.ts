/**
 * The receiving side of the RPCs over HTTP: the Go model's five endpoints under a path prefix
 * (default `/raft`), delivering into the {@link RaftRpcHandler} provided as {@link RAFT_RPC_HANDLER}.
 *
 * Every body is read with a limit, authenticated (when the module provides {@link RaftRpcSecurity}:
 * the signature over the exact bytes received, before any parsing), validated (DTOs in `dto/`), bound
 * to its signer, and converted before the handler sees it; a refused one is answered 4xx with a message
 * (429, 401, 415, 413, 412, 400 naming each broken constraint, 403, 410 — see `security/`) and changes
 * nothing. Answers are written directly, not through Nest's exception filters, so that peers always
 * get the wire format of `wire.ts`.
 */
import { Controller, Get, Inject, Logger, Optional, Post, Req, Res, type OnModuleDestroy, type OnModuleInit, type Type } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ServerResponse } from 'node:http';
import { RaftOptionsError } from '../core/errors.js';
import type { AppendEntriesRequest, NodeId } from '../core/types.js';
import { HttpTransport } from '../transport/http-transport.js';
import { SnapshotAssembler, SnapshotTransferError } from '../transport/snapshot-assembler.js';
import type { RaftMember, RaftRpcHandler, RpcOptions } from '../transport/transport.js';
import {
  BINARY_APPEND_ENTRIES_VERSION,
  DEFAULT_PATH_PREFIX,
  RPC_PATHS,
  TIMEOUT_HEADER,
  TO_HEADER,
  decodeCommandBatch,
  encodeAnswer,
  encodeAppendEntriesResult,
  encodeCommandOutcome,
  encodeInstallSnapshotResult,
  encodeRequestVoteResult,
  errorToWire,
  isBinaryAppendEntries,
  isIndex,
  isNodeId,
  normalizePathPrefix,
  type ErrorBody,
  type WirePeer,
} from '../transport/wire.js';
import { PeerAuthError } from '../transport/auth.js';
import { InvalidRpcBodyError, parseAppendEntries, parseAppendEntriesBinary, parseInstallSnapshot, parseRequestVote, parseSetConfigurationBody } from './dto/parse-rpc-body.js';
import { DEFAULT_RPC_LIMITS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, RAFT_SNAPSHOT_ASSEMBLER, type RaftRpcLimits } from './raft.constants.js';
import { RequestBodyError, checkJsonContentType, parseJsonBytes, readJsonBody, readRawBody, type RaftHttpRequest } from './raft-body.js';
import type { AdmittedRpc, RaftRpcSecurity } from './security/raft-rpc-security.js';
import { RAFT_RPC_SECURITY } from './security/security.constants.js';

/** Longest timeout a caller may ask for in the timeout header (a day). */
const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** Longest wait for a member's id (`GET {prefix}/id`) during a membership change. */
const ID_LOOKUP_TIMEOUT_MS = 5_000;

/** A request meant for another node (the sender's table maps this address to another id). */
class WrongNodeError extends Error {
  constructor(
    readonly expected: NodeId,
    readonly actual: NodeId,
  ) {
    super(`this is node ${actual}, not node ${expected}`);
  }
}

/**
 * Makes the RPC controller for endpoints under `pathPrefix` (the prefix is part of the route, so
 * it must be known when the module is declared). Routes, relative to the prefix:
 *
 * | route | body | answer |
 * |---|---|---|
 * | `GET id` | — | the node's id, `text/plain` |
 * | `POST appendentries` | JSON (`application/json` or `application/vnd.raft+json`), or binary (`application/vnd.raft.appendentries`, see `encodeAppendEntriesBinary`) | `{ term, success, match_index, … }` |
 * | `POST requestvote` | JSON | `{ term, vote_granted, pre_vote? }` |
 * | `POST command` | the command's bytes, `application/octet-stream` | `{ result }` after commit |
 * | `POST commands` | several commands, a binary batch (`encodeCommandBatch`) | `{ outcomes: [{ result } \| { status, error }] }` |
 * | `POST setconfiguration` | `{ peers: [{ id?, url? }], learners?: [{ id?, url? }] }` | `{ success: true }` after C_new commits |
 * | `POST readindex` | `{}` | `{ index }` |
 * | `POST timeoutnow` | `{ term, leader_id }` | `{}` |
 * | `POST installsnapshot` | one chunk: `{ term, leader_id, last_included_index, last_included_term, configuration, size, offset, data, done, digest? }` | `{ term, next_offset }`, or `{ term, match_index }` once installed |
 *
 * Errors: 400 malformed, 401 unauthenticated (missing, forged, stale or replayed signature), 403 the
 * body speaks for another node than the signer, 409 `wrong_node` or a refused membership change
 * (`reason`), 410 the sender was removed from the cluster, 412 signed for another cluster, 413 too
 * large, 415 wrong content type, 421 not the leader (`leader_id`, `leader_url`), 429 too many
 * unauthenticated requests, 501 the node takes no snapshots, 503 leadership lost or node stopped, 504
 * timeout. InstallSnapshot adds 409 `snapshot_stale`/`snapshot_busy`/`snapshot_digest_mismatch` and
 * 413 `snapshot_too_large` (see `SnapshotAssembler`).
 */
/**
 * Checks a small JSON body: an object with exactly the fields in `shape`, each passing its check
 * (own keys only, so `constructor` and friends are refused like any unknown field).
 */
function expectFields(rpc: string, json: unknown, shape: Record<string, (value: unknown) => boolean>): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InvalidRpcBodyError(rpc, ['the body must be a JSON object']);
  const body = json as Record<string, unknown>;
  const issues: string[] = [];
  for (const key of Object.keys(body)) if (!Object.hasOwn(shape, key)) issues.push(`property ${key} should not exist`);
  for (const [key, check] of Object.entries(shape)) if (!Object.hasOwn(body, key) || !check(body[key])) issues.push(`${key} is missing or invalid`);
  if (issues.length > 0) throw new InvalidRpcBodyError(rpc, issues);
  return body;
}

export function createRaftRpcController(pathPrefix: string = DEFAULT_PATH_PREFIX): Type<unknown> {
  const prefix = normalizePathPrefix(pathPrefix);

  @Controller(prefix || '/')
  class RaftRpcController implements OnModuleInit, OnModuleDestroy {
    private readonly logger = new Logger('RaftRpcController');
    private readonly snapshots: SnapshotAssembler;
    /** Whether {@link snapshots} was made here (then closed here). */
    private readonly ownsSnapshots: boolean;

    constructor(
      @Inject(RAFT_RPC_HANDLER) private readonly handler: RaftRpcHandler,
      @Inject(RAFT_RPC_LIMITS) private readonly limits: RaftRpcLimits,
      @Optional() @Inject(RAFT_RPC_SECURITY) private readonly security?: RaftRpcSecurity,
      @Optional() @Inject(RAFT_SNAPSHOT_ASSEMBLER) snapshots?: SnapshotAssembler,
      @Optional() @Inject(HttpAdapterHost) private readonly adapterHost?: HttpAdapterHost,
    ) {
      this.ownsSnapshots = snapshots === undefined;
      this.snapshots =
        snapshots ??
        new SnapshotAssembler({
          maxSnapshotBytes: limits.maxSnapshotBytes ?? DEFAULT_RPC_LIMITS.maxSnapshotBytes,
          idleTimeoutMs: limits.snapshotIdleTimeoutMs ?? DEFAULT_RPC_LIMITS.snapshotIdleTimeoutMs,
        });
    }

    /**
     * These routes read and answer on Node's own request and response (raw bodies for signatures,
     * binary AppendEntries, streamed snapshots), which Express hands over and Fastify does not: on
     * Fastify, refuse to start rather than answer peers wrongly.
     */
    onModuleInit(): void {
      if (this.adapterHost?.httpAdapter?.getType() === 'fastify') {
        throw new RaftOptionsError('rpcListener', 'on Fastify the Raft RPCs need their own listener: pass the module extra rpcListener (the public API stays on Fastify)');
      }
    }

    onModuleDestroy(): void {
      if (this.ownsSnapshots) this.snapshots.close();
    }

    /** `GET {prefix}/id`: how an HTTP peer learns who answers at an address (the Go model's `idHandler`). Public, throttled. */
    @Get(RPC_PATHS.id)
    id(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): void | Promise<void> {
      try {
        this.security?.admitAnonymous(req);
      } catch (error) {
        return this.serve(req, res, false, () => Promise.reject(error));
      }
      const body = String(this.handler.id);
      res.statusCode = 200;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.setHeader('content-length', Buffer.byteLength(body));
      res.end(body);
    }

    @Post(RPC_PATHS.appendEntries)
    appendEntries(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        let request: AppendEntriesRequest;
        let peer: AdmittedRpc | undefined;
        if (isBinaryAppendEntries(req.headers['content-type'])) {
          // The compact encoding (what this library's HTTP peer sends); its commands stay views of the body.
          const limit = this.limits.bodyLimitBytes;
          if (this.authenticating) peer = await this.security!.authenticate(req, { bodyLimit: limit });
          const body = peer ? peer.body : await readRawBody(req, limit);
          // Another version of the format is another media type to us: 415, so that a newer sender falls back.
          if (body.length > 0 && body[0] !== BINARY_APPEND_ENTRIES_VERSION) {
            throw new RequestBodyError(415, 'unsupported_media_type', `binary AppendEntries version ${body[0]} is not supported (this node reads version ${BINARY_APPEND_ENTRIES_VERSION})`);
          }
          request = parseAppendEntriesBinary(body, this.limits, this.handler.id);
        } else {
          const read = await this.readJson(req);
          peer = read.peer;
          request = parseAppendEntries(read.json, this.limits, this.handler.id);
        }
        this.authorize(req, peer, { id: request.from, field: 'leader_id', term: request.term });
        return encodeAppendEntriesResult(await this.handler.appendEntries(request));
      });
    }

    @Post(RPC_PATHS.requestVote)
    requestVote(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        const { json, peer } = await this.readJson(req);
        const request = parseRequestVote(json, this.handler.id);
        this.authorize(req, peer, { id: request.from, field: 'candidate_id', term: request.term });
        return encodeRequestVoteResult(await this.handler.requestVote(request));
      });
    }

    /** A command forwarded by a follower: answered once committed and applied (or with a typed error). */
    @Post(RPC_PATHS.command)
    command(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        const limit = Math.min(this.limits.bodyLimitBytes, this.limits.maxCommandBytes);
        let command: Buffer;
        if (this.authenticating) {
          const peer = await this.security!.authenticate(req, { bodyLimit: limit });
          this.authorize(req, peer, {});
          command = peer.body;
        } else {
          command = await readRawBody(req, limit);
        }
        const options = this.callOptions(req, res);
        const answer = await this.handler.command(new Uint8Array(command.buffer, command.byteOffset, command.byteLength), options);
        const result = encodeAnswer(answer);
        return result === undefined ? {} : { result };
      });
    }

    /**
     * Commands forwarded together by a follower (a binary batch, see `encodeCommandBatch`): answered
     * with one outcome per command once each is answered; a command's failure fails only itself.
     */
    @Post(RPC_PATHS.commands)
    commands(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        const limit = this.limits.bodyLimitBytes;
        let bytes: Buffer;
        if (this.authenticating) {
          const peer = await this.security!.authenticate(req, { bodyLimit: limit });
          this.authorize(req, peer, {});
          bytes = peer.body;
        } else {
          bytes = await readRawBody(req, limit);
        }
        let batch: Uint8Array[];
        try {
          batch = decodeCommandBatch(bytes, this.limits.maxCommandBytes);
        } catch (error) {
          throw new InvalidRpcBodyError('commands', [(error as Error).message]);
        }
        const options = this.callOptions(req, res);
        const outcomes = this.handler.commands
          ? await this.handler.commands(batch, options)
          : await Promise.all(batch.map((c) => this.handler.command(c, options).then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))));
        return { outcomes: outcomes.map(encodeCommandOutcome) };
      });
    }

    /** A membership change: answered once C_new is committed. */
    @Post(RPC_PATHS.setConfiguration)
    setConfiguration(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, true, async () => {
        this.checkAddressee(req);
        const { json, peer } = await this.readJson(req);
        const { peers, learners } = parseSetConfigurationBody(json);
        this.authorize(req, peer, {});
        const options = this.callOptions(req, res);
        const members = await this.resolveMembers(peers, options);
        if (learners) {
          const resolved = await this.resolveMembers(learners, options, 'learners');
          const voters = new Set(members.map((m) => m.id));
          const both = resolved.findIndex((m) => voters.has(m.id));
          if (both >= 0) throw new InvalidRpcBodyError('SetConfiguration', [`learners.${both} is node ${resolved[both]!.id}, which is also a voter`]);
          await this.handler.setConfiguration(members, options, resolved);
        } else {
          await this.handler.setConfiguration(members, options);
        }
        return { success: true };
      });
    }

    /** A follower asks this leader for a read index confirmed by a quorum (ReadIndex, thesis §6.4). */
    @Post(RPC_PATHS.readIndex)
    readIndex(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        const { json, peer } = await this.readJson(req);
        expectFields('ReadIndex', json, {});
        this.authorize(req, peer, {});
        if (!this.handler.readIndex) throw new RaftOptionsError('readindex', 'this node does not serve read indexes');
        return { index: await this.handler.readIndex(this.callOptions(req, res)) };
      });
    }

    /** The leader hands leadership to this node: campaign now (thesis §3.10). */
    @Post(RPC_PATHS.timeoutNow)
    timeoutNow(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        const { json, peer } = await this.readJson(req);
        const body = expectFields('TimeoutNow', json, { term: isIndex, leader_id: isNodeId }) as { term: number; leader_id: number };
        this.authorize(req, peer, { id: body.leader_id, field: 'leader_id', term: body.term });
        if (!this.handler.timeoutNow) throw new RaftOptionsError('timeoutnow', 'this node does not take leadership transfers');
        await this.handler.timeoutNow({ type: 'TimeoutNow', from: body.leader_id, to: this.handler.id, term: body.term });
        return {};
      });
    }

    /**
     * One chunk of a snapshot from the leader (InstallSnapshot, thesis §5.4.1): buffered until the last
     * one, which installs the snapshot on the node (see `SnapshotAssembler` for the rules).
     */
    @Post(RPC_PATHS.installSnapshot)
    installSnapshot(@Req() req: RaftHttpRequest, @Res() res: ServerResponse): Promise<void> {
      return this.serve(req, res, false, async () => {
        this.checkAddressee(req);
        const { json, peer } = await this.readJson(req);
        const chunk = parseInstallSnapshot(json, this.handler.id);
        this.authorize(req, peer, { id: chunk.request.from, field: 'leader_id', term: chunk.request.term });
        const handler = this.handler;
        if (!handler.installSnapshot) throw new SnapshotTransferError(501, 'snapshot_unsupported', `node ${handler.id} does not take snapshots (its RPC handler has no installSnapshot)`);
        const result = await this.snapshots.receive(chunk, (request, data) => handler.installSnapshot!(request, data));
        return encodeInstallSnapshotResult(result);
      });
    }

    /** Whether requests are authenticated (a security provider that is not in `open` mode). */
    private get authenticating(): boolean {
      return this.security !== undefined && this.security.mode !== 'open';
    }

    /**
     * The JSON body: authenticated first when the module asks for it (signature over the exact bytes,
     * then parsed), else read as before (what the application's JSON parser made, or the stream).
     */
    private async readJson(req: RaftHttpRequest): Promise<{ json: unknown; peer?: AdmittedRpc }> {
      const limit = this.limits.bodyLimitBytes;
      if (!this.authenticating) return { json: await readJsonBody(req, limit) };
      const peer = await this.security!.authenticate(req, { bodyLimit: limit, beforeBody: () => checkJsonContentType(req) });
      return { json: parseJsonBytes(peer.body, limit), peer };
    }

    private authorize(req: RaftHttpRequest, peer: AdmittedRpc | undefined, claim: { id?: NodeId; field?: string; term?: number }): void {
      if (peer) this.security!.authorize(peer, claim, req);
    }

    /** Runs `work` and writes its result, or the error's status and body. */
    private async serve(req: RaftHttpRequest, res: ServerResponse, withSuccessFlag: boolean, work: () => Promise<object>): Promise<void> {
      let status = 200;
      let body: object;
      let retryAfter: number | undefined;
      try {
        body = await work();
      } catch (error) {
        if (error instanceof PeerAuthError) retryAfter = error.retryAfterSeconds;
        ({ status, body } = this.describeError(error));
        if (withSuccessFlag) body = { success: false, ...body };
      }
      if (res.headersSent || res.writableEnded || res.destroyed) return;
      const text = JSON.stringify(body);
      res.statusCode = status;
      if (retryAfter !== undefined) res.setHeader('retry-after', String(retryAfter));
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.setHeader('content-length', Buffer.byteLength(text));
      // A body left unread (too large, wrong type) is not drained: the connection is closed instead.
      if (!req.readableEnded) res.setHeader('connection', 'close');
      res.end(text);
    }

    private describeError(error: unknown): { status: number; body: ErrorBody } {
      if (error instanceof InvalidRpcBodyError) {
        return { status: 400, body: { error: error.message, message: error.message, code: 'invalid_body', issues: error.issues } };
      }
      if (error instanceof RequestBodyError) return { status: error.status, body: { error: error.message, message: error.message, code: error.code } };
      if (error instanceof PeerAuthError) return { status: error.status, body: { error: error.message, message: error.message, code: error.code } };
      if (error instanceof WrongNodeError) return { status: 409, body: { error: error.message, message: error.message, code: 'wrong_node' } };
      const wire = errorToWire(error);
      if (wire.status >= 500 && wire.body.code === 'internal') this.logger.error(`RPC failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return wire;
    }

    /** A sender that names the node it means (header `x-raft-to`) must have reached that node. */
    private checkAddressee(req: RaftHttpRequest): void {
      const header = req.headers[TO_HEADER];
      if (header === undefined) return;
      const expected = typeof header === 'string' && /^[1-9][0-9]{0,15}$/.test(header) ? Number(header) : NaN;
      if (!Number.isSafeInteger(expected)) throw new RequestBodyError(400, 'invalid_header', `header ${TO_HEADER} must be a node id`);
      if (expected !== this.handler.id) throw new WrongNodeError(expected, this.handler.id);
    }

    /** The caller's timeout (header `x-raft-timeout-ms`) and a signal that fires if the caller goes away. */
    private callOptions(req: RaftHttpRequest, res: ServerResponse): RpcOptions {
      const header = req.headers[TIMEOUT_HEADER];
      let timeoutMs: number | undefined;
      if (header !== undefined) {
        timeoutMs = typeof header === 'string' && /^[0-9]{1,9}$/.test(header) ? Number(header) : NaN;
        if (!(timeoutMs >= 1 && timeoutMs <= MAX_TIMEOUT_MS)) {
          throw new RequestBodyError(400, 'invalid_header', `header ${TIMEOUT_HEADER} must be an integer from 1 to ${MAX_TIMEOUT_MS}`);
        }
      }
      const abort = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      return { signal: abort.signal, ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
    }

    /** Members given by URL only are asked for their id, as the Go model's `NewHTTPPeer` did. */
    private async resolveMembers(peers: readonly WirePeer[], options: RpcOptions, key: 'peers' | 'learners' = 'peers'): Promise<RaftMember[]> {
      const members = await Promise.all(
        peers.map(async (peer, i): Promise<RaftMember> => {
          if (peer.id !== undefined) return peer.url !== undefined ? { id: peer.id, url: peer.url } : { id: peer.id };
          try {
            const id = await HttpTransport.discoverId(peer.url!, {
              pathPrefix: prefix,
              timeoutMs: Math.min(options.timeoutMs ?? ID_LOOKUP_TIMEOUT_MS, ID_LOOKUP_TIMEOUT_MS),
              ...(options.signal ? { signal: options.signal } : {}),
            });
            return { id, url: peer.url! };
          } catch (error) {
            throw new InvalidRpcBodyError('SetConfiguration', [`${key}.${i}.url: could not learn the node's id: ${error instanceof Error ? error.message : String(error)}`]);
          }
        }),
      );
      const seen = new Set<NodeId>();
      const twice = members.findIndex((m) => seen.size === seen.add(m.id).size);
      if (twice >= 0) throw new InvalidRpcBodyError('SetConfiguration', [`${key}.${twice} is node ${members[twice]!.id}, which another member already is`]);
      return members;
    }
  }

  return RaftRpcController;
}
