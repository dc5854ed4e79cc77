import { Server as NetServer, type Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** Options of {@link HttpServerDrain.close}. */
export interface HttpDrainOptions {
  /**
   * How long a kept-alive connection may stay idle before it is closed anyway. A client that had a
   * request on its way when it is closed sees a reset: the longer this is, the less likely that is
   * (an active client uses its connection well within it). Default 1,000 ms.
   */
  idleGraceMs?: number;
  /** After this, every connection left is destroyed, requests under way included. Default 10,000 ms. */
  timeoutMs?: number;
}

/**
 * Shuts an HTTP server down without resetting a request a client has already sent: the rolling
 * restart of a node should fail no request.
 *
 * Node's `server.close()` (and Nest's `app.close()`, which calls it) at once destroys every kept-alive
 * connection it considers idle, including one whose next request is already in the socket but not yet
 * read: that client gets `ECONNRESET` for a request it had every reason to think was sent. Instead,
 * {@link close} stops accepting connections (new ones are refused, so a client or load balancer moves
 * to another node at once), answers every request from then on with `Connection: close` (so each
 * client's connection ends cleanly after its answer), and closes a connection only once it has been
 * idle for `idleGraceMs`. Not for a server that also serves the Raft RPCs (the module without
 * `rpcListener`): peers could not reach the node while it drains. Call it on a termination signal,
 * before `app.close()`:
 *
 * ```ts
 * const drain = new HttpServerDrain(app.getHttpServer()); // before app.listen(): it counts connections from the start
 * await app.listen(3000);
 * process.once('SIGTERM', async () => {
 *   await drain.close();
 *   await app.close(); // transfers leadership, stops the node
 *   process.exit(0);
 * });
 * ```
 */
export class HttpServerDrain {
  /** Each open connection, with the requests on it not yet answered. */
  private readonly connections = new Map<Socket, { busy: Set<ServerResponse>; idleSince: number }>();
  private draining = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly server: Server) {
    const track = (socket: Socket) => {
      this.connections.set(socket, { busy: new Set(), idleSince: Date.now() });
      socket.once('close', () => this.connections.delete(socket));
    };
    if (server instanceof TlsServer) {
      // An HTTPS server's requests come on the TLS socket, not on the TCP one under it; until its
      // handshake is done, the TCP socket counts (an idle connection, closed after the grace).
      const handshaking = new Map<string, Socket>();
      const key = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
      server.on('connection', (raw: Socket) => {
        const k = key(raw);
        handshaking.set(k, raw);
        track(raw);
        raw.once('close', () => handshaking.get(k) === raw && handshaking.delete(k));
      });
      server.on('secureConnection', (socket: Socket) => {
        const raw = handshaking.get(key(socket));
        if (raw) {
          handshaking.delete(key(socket));
          this.connections.delete(raw);
        }
        track(socket);
      });
    } else {
      server.on('connection', track);
    }
    // First of the request listeners: the header is set before any handler can answer.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const state = this.connections.get(req.socket);
      if (this.draining) res.setHeader('connection', 'close');
      if (!state) return;
      state.busy.add(res);
      res.once('close', () => {
        state.busy.delete(res);
        state.idleSince = Date.now();
      });
    });
  }

  /** Whether {@link close} was called. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Connections still open (for progress and tests). */
  get openConnections(): number {
    return this.connections.size;
  }

  /** Drains and closes the server as described above; resolves once every connection is gone. Idempotent. */
  close(options: HttpDrainOptions = {}): Promise<void> {
    this.closing ??= this.drain(options.idleGraceMs ?? 1_000, options.timeoutMs ?? 10_000);
    return this.closing;
  }

  private async drain(idleGraceMs: number, timeoutMs: number): Promise<void> {
    this.draining = true;
    // Answers still to come end their connection too.
    for (const { busy } of this.connections.values()) for (const res of busy) if (!res.headersSent) res.setHeader('connection', 'close');
    // Stop listening only: http.Server#close would also destroy the idle connections right away.
    // (Its callback only comes once every connection is gone: not awaited here.)
    if (this.server.listening) NetServer.prototype.close.call(this.server);
    const deadline = Date.now() + timeoutMs;
    const startedAt = Date.now();
    while (this.connections.size > 0) {
      const now = Date.now();
      for (const [socket, state] of this.connections) {
        // Idle for the whole grace, counted from the drain's start at the earliest.
        if (now >= deadline || (state.busy.size === 0 && now - Math.max(state.idleSince, startedAt) >= idleGraceMs)) socket.destroy();
      }
      if (this.connections.size === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
