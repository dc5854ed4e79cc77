/**
 * The clients: each one loops over random operations on random keys through random nodes of the
 * sample's HTTP API, one at a time, and records each with its invocation and completion time and what
 * it learned:
 *
 * - `ok`: a 200 (a 404 for a read: the key is absent);
 * - `fail` (certainly not applied): the connection was refused (the request never left), or a 400
 *   (the request was refused before anything was proposed);
 * - `unknown` otherwise: a timeout, a cut connection, any 5xx (503 leadership_lost / node_stopped,
 *   504 timeout, 502 forwarding) and 421 not_leader — since command() retries on its own across
 *   leader changes, a NotLeaderError can end a call whose earlier attempt was proposed and may still
 *   commit, so it is not proof that nothing happened.
 *
 * Writes carry unique values (`c<client>-<n>`), so every value in the log names the one operation
 * that wrote it.
 *
 * With `reroute` on (the rolling-restart phase), a client behaves like one of a replicated service
 * with a list of nodes: a refused connection (the node is down or restarting: the request certainly
 * never left) makes it skip that node for a while and send its next operation at once to another one.
 * The refused attempt stays in the history as `fail`; it is not a failed request of the service.
 */
import type { HistoryOp } from '../sim/linearizability.js';
import { Prng } from '../sim/prng.js';
import { HttpFailure, request } from './http.js';

export interface RecordedOp extends HistoryOp {
  /** The node the client talked to. */
  node: number;
  /** HTTP status, or the network error's code. */
  status: string;
  /** The error message of a 5xx answer (for the saved history). */
  error?: string;
  /** When the client gave up on an operation of unknown outcome (its `complete` stays Infinity for the checker). */
  ended?: number;
}

export interface WorkloadOptions {
  clients: number;
  keys: number;
  timeoutMs: number;
  thinkMs: number;
  now(): number;
  /** The nodes a client may talk to: id and API base URL. */
  targets(): { id: number; url: string }[];
}

export function keyName(i: number): string {
  return `k${i}`;
}

export class Workload {
  readonly history: RecordedOp[] = [];
  private nextId = 1;
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private inflight = 0;
  /** Operations sent and not yet answered. */
  readonly inFlight = new Set<RecordedOp>();
  /** Route around nodes that refuse connections (see the file comment). */
  reroute = false;

  constructor(
    private readonly options: WorkloadOptions,
    private readonly rng: Prng,
  ) {}

  get count(): number {
    return this.history.length;
  }
  get pending(): number {
    return this.inflight;
  }

  start(): void {
    this.running = true;
    for (let c = 1; c <= this.options.clients; c++) this.loops.push(this.client(c, this.rng.fork(c)));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async client(clientId: number, rng: Prng): Promise<void> {
    const known = new Map<string, string | null>();
    const refusedUntil = new Map<number, number>();
    let n = 0;
    while (this.running) {
      let targets = this.options.targets();
      if (this.reroute) {
        const now = performance.now();
        const up = targets.filter((t) => (refusedUntil.get(t.id) ?? 0) <= now);
        if (up.length > 0) targets = up;
      }
      const target = rng.pick(targets);
      const key = keyName(rng.int(this.options.keys));
      const r = rng.next();
      let op: RecordedOp;
      if (r < 0.45) op = await this.read(clientId, target, key, known);
      else if (r < 0.8) op = await this.write(clientId, target, key, `c${clientId}-${++n}`, known);
      else {
        const expected = known.has(key) ? known.get(key)! : rng.chance(0.5) ? null : `c${rng.between(1, this.options.clients)}-${rng.between(1, Math.max(1, n))}`;
        op = await this.cas(clientId, target, key, expected, `c${clientId}-${++n}`, known);
      }
      // A client that just failed waits a little before the next try, as real clients back off
      // (otherwise a dead node's refused connections would flood the history).
      const refused = op.status === 'ECONNREFUSED';
      if (refused) refusedUntil.set(target.id, performance.now() + 500);
      const backoff = op.outcome !== 'ok' && !(refused && this.reroute) ? rng.between(50, 150) : 0;
      const think = this.options.thinkMs > 0 ? rng.between(0, this.options.thinkMs) : 0;
      if (backoff + think > 0) await new Promise((r) => setTimeout(r, backoff + think));
    }
  }

  /** Runs one operation and records it; returns the record. */
  private async run(op: Omit<RecordedOp, 'id' | 'invoke' | 'complete' | 'outcome' | 'status'>, method: string, url: string, body: unknown, timeoutMs = this.options.timeoutMs): Promise<RecordedOp> {
    const record: RecordedOp = { ...op, id: this.nextId++, invoke: this.options.now(), complete: Infinity, outcome: 'unknown', status: '' };
    this.history.push(record);
    this.inflight++;
    this.inFlight.add(record);
    try {
      const answer = await request(method, url, body, timeoutMs);
      const complete = this.options.now();
      record.status = String(answer.status);
      const payload = answer.body as Record<string, unknown> | undefined;
      if (answer.status === 200) {
        record.outcome = 'ok';
        record.complete = complete;
        if (op.kind === 'read') record.result = typeof payload?.value === 'string' ? payload.value : payload?.value === undefined ? null : JSON.stringify(payload.value);
        if (op.kind === 'cas') record.result = payload?.ok === true;
      } else if (answer.status === 404 && op.kind === 'read') {
        record.outcome = 'ok';
        record.complete = complete;
        record.result = null;
      } else if (answer.status === 400) {
        record.outcome = 'fail';
        record.complete = complete;
      } else {
        const code = typeof payload?.code === 'string' ? payload.code : '';
        if (code) record.status += ` ${code}`;
        const message = typeof payload?.message === 'string' ? payload.message : typeof payload?.error === 'string' ? payload.error : undefined;
        if (message && answer.status >= 500) record.error = message.slice(0, 200);
      }
    } catch (error) {
      if (error instanceof HttpFailure) {
        record.status = error.code;
        if (error.undelivered) {
          record.outcome = 'fail';
          record.complete = this.options.now();
        }
      } else record.status = String(error);
    } finally {
      this.inflight--;
      this.inFlight.delete(record);
      if (!Number.isFinite(record.complete)) record.ended = this.options.now();
    }
    return record;
  }

  private async read(clientId: number, target: { id: number; url: string }, key: string, known: Map<string, string | null>, timeoutMs?: number): Promise<RecordedOp> {
    const r = await this.run({ clientId, key, kind: 'read', node: target.id }, 'GET', `${target.url}/kv/${key}`, undefined, timeoutMs);
    if (r.outcome === 'ok') known.set(key, r.result as string | null);
    return r;
  }

  private async write(clientId: number, target: { id: number; url: string }, key: string, value: string, known: Map<string, string | null>): Promise<RecordedOp> {
    const r = await this.run({ clientId, key, kind: 'write', value, node: target.id }, 'PUT', `${target.url}/kv/${key}`, { value });
    if (r.outcome === 'ok') known.set(key, value);
    else known.delete(key);
    return r;
  }

  private async cas(
    clientId: number,
    target: { id: number; url: string },
    key: string,
    expected: string | null,
    value: string,
    known: Map<string, string | null>,
  ): Promise<RecordedOp> {
    const r = await this.run({ clientId, key, kind: 'cas', value, expected, node: target.id }, 'POST', `${target.url}/kv/${key}/cas`, { expected, value });
    if (r.outcome === 'ok' && r.result === true) known.set(key, value);
    else known.delete(key);
    return r;
  }

  /** One operation outside the client loops (the recovery probe, the final reads); `timeoutMs` instead of the clients' timeout. */
  single(clientId: number, target: { id: number; url: string }, kind: 'read' | 'write', key: string, value?: string, timeoutMs?: number): Promise<RecordedOp> {
    if (kind === 'read') return this.read(clientId, target, key, new Map(), timeoutMs);
    return this.write(clientId, target, key, value!, new Map());
  }
}
