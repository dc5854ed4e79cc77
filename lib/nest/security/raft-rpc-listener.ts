/**
 * The RPC endpoints on their own HTTP(S) server (module extra `rpcListener`), so that the
 * application's public port never serves `{path}/*`. It is a plain `node:http` (or `node:https`)
 * server that routes each request straight into the RPC controller's handlers (the same class the
 * module mounts, with the same handler, limits and security instances): no Express, no Nest routing
 * or pipes per request, which on a busy leader was a large share of the cost of every RPC. There is
 * no body parser (the controller reads every body itself, with its limit, and verifies signatures over
 * the exact bytes); headers and whole requests have short timeouts. Started when the application
 * bootstraps, closed with the node.
 */
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { RaftOptionsError } from '../../core/errors.js';
import type { RaftRpcHandler } from '../../transport/transport.js';
import type { RaftModuleOptions, RaftRpcListenerOptions } from '../raft-module-options.js';
import { createRaftRpcController } from '../raft-rpc.controller.js';
import { RAFT_MODULE_OPTIONS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, type RaftRpcLimits } from '../raft.constants.js';
import type { RaftHttpRequest } from '../raft-body.js';
import { RPC_PATHS, normalizePathPrefix } from '../../transport/wire.js';
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

/** The controller's request handlers, as the listener calls them. */
type RouteHandler = (req: RaftHttpRequest, res: ServerResponse) => void | Promise<void>;
interface RpcController {
  onModuleDestroy?(): void;
  [route: string]: unknown;
}

/** `METHOD path` → the controller method that serves it (the controller's own routes). */
const ROUTES: ReadonlyArray<readonly [method: string, path: string, handler: string]> = [
  ['GET', RPC_PATHS.id, 'id'],
  ['POST', RPC_PATHS.appendEntries, 'appendEntries'],
  ['POST', RPC_PATHS.requestVote, 'requestVote'],
  ['POST', RPC_PATHS.command, 'command'],
  ['POST', RPC_PATHS.commands, 'commands'],
  ['POST', RPC_PATHS.setConfiguration, 'setConfiguration'],
  ['POST', RPC_PATHS.readIndex, 'readIndex'],
  ['POST', RPC_PATHS.timeoutNow, 'timeoutNow'],
  ['POST', RPC_PATHS.installSnapshot, 'installSnapshot'],
];

function notFound(req: IncomingMessage, res: ServerResponse): void {
  const text = JSON.stringify({ error: `no route ${req.method ?? ''} ${(req.url ?? '').split('?')[0]}`, code: 'not_found' });
  res.statusCode = 404;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.setHeader('connection', 'close'); // the body, if any, is not read
  res.end(text);
}

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
  private server: Server | undefined;
  private controller: RpcController | undefined;
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
    if (this.server) return;
    const where = resolveRpcListener(this.extra.listener, this.options);
    const Controller = createRaftRpcController(this.extra.path) as unknown as new (...args: unknown[]) => RpcController;
    const controller = new Controller(this.handler, this.limits, this.security);
    const prefix = normalizePathPrefix(this.extra.path);
    const routes = new Map<string, RouteHandler>();
    for (const [method, path, name] of ROUTES) {
      const handler = controller[name];
      if (typeof handler === 'function') routes.set(`${method} ${prefix}/${path}`, (handler as RouteHandler).bind(controller));
    }
    const serve = (req: IncomingMessage, res: ServerResponse): void => {
      const url = req.url ?? '/';
      const query = url.indexOf('?');
      const route = routes.get(`${req.method ?? ''} ${query < 0 ? url : url.slice(0, query)}`);
      if (!route) return notFound(req, res);
      const request = req as RaftHttpRequest;
      request.originalUrl = url; // what the signature covers, as Express would name it
      void Promise.resolve()
        .then(() => route(request, res))
        .catch((error: unknown) => {
          this.logger.error(`RPC handler failed: ${(error as Error)?.message ?? String(error)}`);
          if (!res.headersSent) {
            res.statusCode = 500;
            res.setHeader('connection', 'close');
          }
          if (!res.writableEnded) res.end();
        });
    };
    const server = where.httpsOptions ? createHttpsServer(where.httpsOptions as HttpsServerOptions, serve) : createHttpServer(serve);
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = 65_000; // longer than the peers' keep-alive agents keep a socket idle
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const done = () => {
          server.off('error', reject);
          resolve();
        };
        if (where.host !== undefined) server.listen(where.port, where.host, done);
        else server.listen(where.port, done);
      });
    } catch (error) {
      controller.onModuleDestroy?.();
      throw error;
    }
    server.on('error', (error) => this.logger.error(`Raft RPC listener: ${error.message}`));
    this.server = server;
    this.controller = controller;
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
    const server = this.server;
    this.server = undefined;
    this.controller?.onModuleDestroy?.();
    this.controller = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // keep-alive peers would hold it open
    await closed;
  }
}
