/**
 * The RPC endpoints on their own HTTP(S) server (module extra `rpcListener`), so that the
 * application's public port never serves `{path}/*`: a second, minimal Nest application holding only
 * the RPC controller and the providers it needs (the node's handler, the limits and the security
 * checks — the same instances as the module's), started when the application bootstraps and closed
 * before it shuts down. It has no body parser (the controller reads every body itself, with its limit,
 * and verifies signatures over the exact bytes), and short header/request timeouts.
 */
import {
  Inject,
  Injectable,
  Logger,
  Module,
  type OnApplicationShutdown,
  type DynamicModule,
  type INestApplication,
  type NestApplicationOptions,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RaftOptionsError } from '../../core/errors.js';
import type { RaftRpcHandler } from '../../transport/transport.js';
import type { RaftModuleOptions, RaftRpcListenerOptions } from '../raft-module-options.js';
import { createRaftRpcController } from '../raft-rpc.controller.js';
import { RAFT_MODULE_OPTIONS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, type RaftRpcLimits } from '../raft.constants.js';
import type { RaftRpcSecurity } from './raft-rpc-security.js';
import { RAFT_RPC_LISTENER_EXTRA, RAFT_RPC_SECURITY } from './security.constants.js';

/** The static part of the listener's configuration (from the module's extras). */
export interface RaftRpcListenerExtra {
  readonly listener: RaftRpcListenerOptions | true;
  readonly path: string;
}

/** Time allowed to send a request's headers (slow-header clients are cut off). */
const HEADERS_TIMEOUT_MS = 10_000;
/** Time allowed to send a whole request. */
const REQUEST_TIMEOUT_MS = 60_000;

@Module({})
class RaftRpcListenerModule {}

/** Resolves the listener's address: the extra's, completed (or replaced, for `true`) by the options'. */
export function resolveRpcListener(extra: RaftRpcListenerOptions | true, options: RaftModuleOptions): RaftRpcListenerOptions & { readonly port: number } {
  const merged: RaftRpcListenerOptions = { ...(options.rpcListener ?? {}), ...(extra === true ? {} : extra) };
  if (!(Number.isSafeInteger(merged.port) && merged.port! >= 0 && merged.port! <= 65535)) {
    throw new RaftOptionsError('rpcListener.port', `must be a port number from 0 to 65535, got ${String(merged.port)}`);
  }
  if (merged.host !== undefined && (typeof merged.host !== 'string' || merged.host === '')) throw new RaftOptionsError('rpcListener.host', 'must be a host name or address');
  return merged as RaftRpcListenerOptions & { readonly port: number };
}

/** The RPCs' own server. Inject it to learn where it listens (`address`). */
@Injectable()
export class RaftRpcListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private app: INestApplication | undefined;
  private bound: { readonly host: string; readonly port: number; readonly url: string } | undefined;
  private readonly logger = new Logger('RaftRpcListener');

  constructor(
    @Inject(RAFT_RPC_LISTENER_EXTRA) private readonly extra: RaftRpcListenerExtra,
    @Inject(RAFT_MODULE_OPTIONS) private readonly options: RaftModuleOptions,
    @Inject(RAFT_RPC_HANDLER) private readonly handler: RaftRpcHandler,
    @Inject(RAFT_RPC_LIMITS) private readonly limits: RaftRpcLimits,
    @Inject(RAFT_RPC_SECURITY) private readonly security: RaftRpcSecurity,
  ) {
    resolveRpcListener(extra.listener, options); // refuse a bad address while the module is created
  }

  /** Where the listener is bound (after the application has bootstrapped). */
  get address(): { readonly host: string; readonly port: number; readonly url: string } | undefined {
    return this.bound;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.app) return;
    const where = resolveRpcListener(this.extra.listener, this.options);
    const module: DynamicModule = {
      module: RaftRpcListenerModule,
      controllers: [createRaftRpcController(this.extra.path)],
      providers: [
        { provide: RAFT_RPC_HANDLER, useValue: this.handler },
        { provide: RAFT_RPC_LIMITS, useValue: this.limits },
        { provide: RAFT_RPC_SECURITY, useValue: this.security },
      ],
    };
    const app = await NestFactory.create(module, {
      bodyParser: false,
      // No `logger` option: it would override the process-wide Logger, and with it the application's.
      abortOnError: false,
      forceCloseConnections: true,
      // Node's https.ServerOptions, which Nest's own type describes more loosely.
      ...(where.httpsOptions ? { httpsOptions: where.httpsOptions as NestApplicationOptions['httpsOptions'] } : {}),
    });
    const adapter = app.getHttpAdapter().getInstance() as { disable?: (setting: string) => void };
    adapter.disable?.('x-powered-by');
    const server = app.getHttpServer() as Server;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    try {
      if (where.host !== undefined) await app.listen(where.port, where.host);
      else await app.listen(where.port);
    } catch (error) {
      await app.close().catch(() => undefined);
      throw error;
    }
    this.app = app;
    const address = server.address() as AddressInfo;
    const host = where.host ?? address.address;
    const scheme = where.httpsOptions ? 'https' : 'http';
    this.bound = { host, port: address.port, url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${address.port}` };
    this.logger.log(`Raft RPCs listening on ${this.bound.url}${this.extra.path}`);
  }

  /**
   * Closed with the node, not before it: a leader that shuts down hands leadership over first (in
   * RaftService's beforeApplicationShutdown), and needs its RPC endpoint to see the new leader.
   */
  async onApplicationShutdown(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    await app?.close();
  }
}
