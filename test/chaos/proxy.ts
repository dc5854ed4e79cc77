/**
 * The fault-injecting network: one HTTP proxy in front of each node's Raft RPC endpoint. The nodes'
 * addresses in the cluster configuration are the proxies', so every AppendEntries, RequestVote,
 * forwarded command and membership RPC between two nodes passes through the proxy of the receiver,
 * which learns the sender from the `x-raft-from` header and applies the rule of that directed link:
 *
 * - `delay`: each message waits 75 ± 50 ms;
 * - `drop`: each message is lost with probability p — either the request never arrives (the caller
 *   times out) or it is processed and the answer is lost (the socket is cut);
 * - `duplicate`: with probability p the request is delivered twice (the second answer is thrown away);
 * - `blackhole`: nothing arrives, nothing comes back (the caller times out);
 * - a partition blackholes every link between its sides; an isolated node (the `lag` fault) reaches
 *   nobody and nobody reaches it, whatever the partition.
 *
 * The unsafe `ack-before-persist` control makes the proxy answer an AppendEntries that carries entries
 * with success on the follower's behalf before the follower has stored anything (the request is still
 * delivered afterwards, through the link's faults): a follower that acknowledges before persisting.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Prng } from '../sim/prng.js';

export type LinkMode = { kind: 'clean' } | { kind: 'delay' } | { kind: 'drop'; p: number } | { kind: 'duplicate'; p: number } | { kind: 'blackhole' };

export type RpcKind = 'appendentries' | 'requestvote' | 'command' | 'setconfiguration' | 'id' | 'other';

type Decision = { action: 'pass' | 'hold' | 'drop-answer'; delayMs: number; duplicate: boolean };

export interface NetworkStats {
  messages: number;
  delayed: number;
  dropped: number;
  duplicated: number;
  blackholed: number;
  forgedAcks: number;
  targetDown: number;
}

export class Network {
  private readonly links = new Map<string, LinkMode>();
  private groups: number[][] | undefined;
  /** Nodes cut off from every other (the lag fault), apart from the partitions. */
  private readonly isolated = new Set<number>();
  forgeAcks = false;
  readonly stats: NetworkStats = { messages: 0, delayed: 0, dropped: 0, duplicated: 0, blackholed: 0, forgedAcks: 0, targetDown: 0 };

  constructor(private readonly rng: Prng) {}

  setLink(from: number, to: number, mode: LinkMode): void {
    if (mode.kind === 'clean') this.links.delete(`${from}>${to}`);
    else this.links.set(`${from}>${to}`, mode);
  }

  linkMode(from: number, to: number): LinkMode {
    return this.links.get(`${from}>${to}`) ?? { kind: 'clean' };
  }

  /** Nodes in different groups cannot reach each other; nodes in no group reach everyone. */
  partition(groups: number[][]): void {
    this.groups = groups.map((g) => [...g]);
  }

  clearPartition(): void {
    this.groups = undefined;
  }

  heal(): void {
    this.groups = undefined;
    this.links.clear();
    this.isolated.clear();
  }

  isolate(id: number): void {
    this.isolated.add(id);
  }

  unisolate(id: number): void {
    this.isolated.delete(id);
  }

  get partitioned(): number[][] | undefined {
    return this.groups;
  }

  private separated(from: number, to: number): boolean {
    if (from === 0) return false;
    if (from !== to && (this.isolated.has(from) || this.isolated.has(to))) return true;
    if (!this.groups) return false;
    const a = this.groups.findIndex((g) => g.includes(from));
    const b = this.groups.findIndex((g) => g.includes(to));
    return a >= 0 && b >= 0 && a !== b;
  }

  decide(from: number, to: number, kind: RpcKind): Decision {
    this.stats.messages++;
    if (this.separated(from, to)) {
      this.stats.blackholed++;
      return { action: 'hold', delayMs: 0, duplicate: false };
    }
    const mode = from === 0 ? { kind: 'clean' as const } : this.linkMode(from, to);
    switch (mode.kind) {
      case 'blackhole':
        this.stats.blackholed++;
        return { action: 'hold', delayMs: 0, duplicate: false };
      case 'delay':
        this.stats.delayed++;
        return { action: 'pass', delayMs: this.rng.uniform(25, 125), duplicate: false };
      case 'drop':
        if (this.rng.chance(mode.p)) {
          this.stats.dropped++;
          return { action: this.rng.chance(0.5) ? 'hold' : 'drop-answer', delayMs: 0, duplicate: false };
        }
        return { action: 'pass', delayMs: 0, duplicate: false };
      case 'duplicate':
        // Raft messages and forwarded commands (the latter carry a client session, so a duplicate
        // must be answered from the session table, not applied twice); never the id lookup.
        if (kind !== 'id' && kind !== 'other' && this.rng.chance(mode.p)) {
          this.stats.duplicated++;
          return { action: 'pass', delayMs: 0, duplicate: true };
        }
        return { action: 'pass', delayMs: 0, duplicate: false };
      default:
        return { action: 'pass', delayMs: 0, duplicate: false };
    }
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'host', 'content-length']);

function rpcKind(url: string | undefined): RpcKind {
  const path = (url ?? '').split('?')[0]!;
  if (path.endsWith('/appendentries')) return 'appendentries';
  if (path.endsWith('/requestvote')) return 'requestvote';
  if (path.endsWith('/command')) return 'command';
  if (path.endsWith('/setconfiguration')) return 'setconfiguration';
  if (path.endsWith('/id')) return 'id';
  return 'other';
}

/** The proxy in front of one node's RPC port. */
export class LinkProxy {
  private server: http.Server | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly held = new Set<http.ServerResponse>();
  port = 0;

  constructor(
    readonly nodeId: number,
    private readonly network: Network,
    /** The node's RPC port (read on each request: it changes when the node gets a new one). */
    private readonly target: () => number,
  ) {}

  async listen(port = 0): Promise<number> {
    const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => this.handle(req, res));
    server.on('clientError', (_e, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.held.clear();
    this.agent.destroy();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const from = Number(req.headers['x-raft-from'] ?? 0) || 0;
      const kind = rpcKind(req.url);
      if (this.network.forgeAcks && kind === 'appendentries' && this.forgeAck(body, res)) {
        // The answer is out; the request still travels to the node, through the link's faults.
        const decision = this.network.decide(from, this.nodeId, kind);
        if (decision.action !== 'hold') setTimeout(() => void this.forward(req, body).catch(() => undefined), decision.delayMs);
        return;
      }
      const decision = this.network.decide(from, this.nodeId, kind);
      if (decision.action === 'hold') return this.hold(res);
      const go = async () => {
        if (decision.duplicate) setTimeout(() => void this.forward(req, body).catch(() => undefined), 1 + Math.random() * 20);
        let answer: { status: number; headers: http.IncomingHttpHeaders; body: Buffer };
        try {
          answer = await this.forward(req, body);
        } catch {
          this.network.stats.targetDown++;
          res.destroy(); // what the caller would have seen of a dead node: a cut connection
          return;
        }
        if (decision.action === 'drop-answer') return void res.destroy();
        const headers: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
        headers['content-length'] = String(answer.body.length);
        if (!res.destroyed) res.writeHead(answer.status, headers).end(answer.body);
      };
      if (decision.delayMs > 0) setTimeout(() => void go(), decision.delayMs);
      else void go();
    });
  }

  /** ack-before-persist: answers an AppendEntries that carries entries with success, for the follower. */
  private forgeAck(body: Buffer, res: http.ServerResponse): boolean {
    let request: { term?: unknown; entries?: unknown };
    try {
      request = JSON.parse(body.toString('utf8')) as { term?: unknown; entries?: unknown };
    } catch {
      return false;
    }
    if (typeof request.term !== 'number' || !Array.isArray(request.entries) || request.entries.length === 0) return false;
    this.network.stats.forgedAcks++;
    const answer = Buffer.from(JSON.stringify({ term: request.term, success: true }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(answer.length) }).end(answer);
    return true;
  }

  /** A lost message: no answer ever; the caller's own deadline ends it. */
  private hold(res: http.ServerResponse): void {
    this.held.add(res);
    const timer = setTimeout(() => res.destroy(), 15_000);
    res.on('close', () => {
      clearTimeout(timer);
      this.held.delete(res);
    });
  }

  private forward(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const out = http.request({ host: '127.0.0.1', port: this.target(), method: req.method, path: req.url, headers, agent: this.agent, timeout: 20_000 }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }));
        answer.on('error', reject);
      });
      out.on('timeout', () => out.destroy(new Error('proxy: the node did not answer')));
      out.on('error', reject);
      out.end(body);
    });
  }
}
