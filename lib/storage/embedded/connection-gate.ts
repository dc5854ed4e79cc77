import * as net from 'node:net';

/**
 * The TCP front of the embedded server: forwards each client connection to pglite-socket's server
 * (listening on a private local socket), admitting at most `maxConnections` at once.
 *
 * pglite-socket has its own connection limit, but it refuses at once, by writing plain text that a
 * PostgreSQL client reads as a broken stream, and it frees a slot only some event-loop turns after the
 * socket closed. A client that closes and reconnects at once (a storage closed and loaded again: `pg`'s
 * pool resolves `end()` before its sockets are closed) would then be refused now and then. This gate
 * lets a connection beyond the limit wait up to `waitMs` for a slot (freed as soon as the previous
 * client's end of the stream arrives), and only then refuses it, with a PostgreSQL error (SQLSTATE
 * 53300, too_many_connections) that says why.
 */
export class ConnectionGate {
  private readonly server: net.Server;
  private readonly live = new Set<net.Socket>();
  private readonly waiting: Array<{ client: net.Socket; timer: NodeJS.Timeout }> = [];
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly upstreamPath: string,
    private readonly maxConnections: number,
    private readonly waitMs: number,
    private readonly describe: () => string,
  ) {
    this.server = net.createServer({ noDelay: true }, (client) => this.accept(client));
  }

  /** @returns the port it listens on. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops listening and cuts every connection. */
  close(): Promise<void> {
    for (const { timer } of this.waiting.splice(0)) clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    if (this.live.size < this.maxConnections) return this.admit(client);
    client.pause();
    const waiter = {
      client,
      timer: setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        this.refuse(client);
      }, this.waitMs),
    };
    this.waiting.push(waiter);
    client.once('close', () => {
      const at = this.waiting.indexOf(waiter);
      if (at >= 0) {
        clearTimeout(waiter.timer);
        this.waiting.splice(at, 1);
      }
    });
  }

  /** Connects `client` to pglite-socket, until either side closes. */
  private admit(client: net.Socket): void {
    this.live.add(client);
    const upstream = net.connect(this.upstreamPath);
    this.sockets.add(upstream);
    let freed = false;
    const free = () => {
      if (freed) return;
      freed = true;
      this.live.delete(client);
      const next = this.waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        this.admit(next.client);
        next.client.resume();
      }
    };
    client.once('end', free); // the client is closing: its slot is free before it can connect again
    client.once('close', () => {
      free();
      upstream.destroy();
    });
    upstream.once('close', () => {
      this.sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Answers the client's startup (declining SSL first if asked) with a FATAL error, and hangs up. */
  private refuse(client: net.Socket): void {
    let received = Buffer.alloc(0);
    client.on('data', (data) => {
      received = Buffer.concat([received, data]);
      while (received.length >= 8) {
        const length = received.readInt32BE(0);
        if (received.length < length) return;
        const code = received.readInt32BE(4);
        received = received.subarray(length);
        if (length === 8 && (code === 80877103 || code === 80877104)) {
          client.write('N'); // SSLRequest or GSSENCRequest: declined, the startup message follows
          continue;
        }
        client.end(errorResponse('53300', `${this.describe()} takes ${this.maxConnections} connection(s) at a time, and none is free`));
        return;
      }
    });
    client.resume(); // a waiting client was paused
  }
}

/** A PostgreSQL ErrorResponse message of severity FATAL. */
function errorResponse(sqlState: string, message: string): Buffer {
  const fields = Buffer.concat([
    field('S', 'FATAL'),
    field('V', 'FATAL'),
    field('C', sqlState),
    field('M', message),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

function field(code: string, value: string): Buffer {
  return Buffer.concat([Buffer.from(code, 'latin1'), Buffer.from(value, 'utf8'), Buffer.from([0])]);
}
