import type { NodeId } from '../../lib/core/types.js';
import { formatCommand, formatResult, type KvCommand, type KvResult } from './kv.js';
import type { HistoryOp } from './linearizability.js';
import type { Prng } from './prng.js';

export interface ClientParams {
  /** Number of concurrent clients (each has at most one operation outstanding). */
  readonly clients: number;
  /** Number of keys, named k0, k1, … */
  readonly keys: number;
  readonly readRatio: number;
  readonly casRatio: number;
  /** Pause between one operation's outcome and the next operation. */
  readonly thinkMinUs: number;
  readonly thinkMaxUs: number;
  /** After this long without an answer the outcome is unknown and the client moves on. */
  readonly timeoutUs: number;
}

const BACKOFF_MIN_US = 10_000;
const BACKOFF_MAX_US = 60_000;

/** What a server answers a client. */
export type ClientReply =
  /** The command was applied at (index, term); `result` is what the state machine returned. */
  | { readonly kind: 'ok'; readonly result: KvResult; readonly index: number; readonly term: number }
  /** The command provably never takes effect (its entry was replaced by another term's). */
  | { readonly kind: 'fail'; readonly reason: string }
  /** The server is not the leader; nothing was appended. */
  | { readonly kind: 'not-leader'; readonly leaderId: NodeId };

/** What the workload needs from the simulator. */
export interface ClientHost {
  schedule(delayUs: number, run: () => void): void;
  now(): number;
  /** The servers a client may contact. */
  servers(): readonly NodeId[];
  /** Sends `command` to `server`; `reply` is called at most once, when (if) the answer arrives. */
  submit(server: NodeId, command: KvCommand, reply: (r: ClientReply) => void): void;
  trace?: ((line: string) => void) | undefined;
}

/** An acknowledged operation: it must be applied on every member once the cluster is quiet. */
export interface Acknowledged {
  readonly op: HistoryOp;
  readonly index: number;
  readonly term: number;
}

interface ClientState {
  readonly id: number;
  leaderGuess: NodeId | undefined;
  /** Last value this client saw for each key, to make compare-and-set succeed sometimes. */
  readonly lastSeen: Map<string, string | null>;
  busy: boolean;
}

/**
 * A closed-loop client workload in the style of Jepsen: each client issues one operation at a time
 * (read, write with a value unique in the run, or compare-and-set), sends it to the server it
 * believes leads (or to a random one), and records the operation's invocation and outcome in a
 * history for the linearizability checker. A refusal by a non-leader fails the operation (nothing
 * was appended) and the client retries with a new operation at the named leader. A timeout leaves
 * the outcome unknown: the operation may take effect at any later time, or never.
 */
export class Workload {
  readonly history: HistoryOp[] = [];
  readonly acknowledged: Acknowledged[] = [];
  private readonly clients: ClientState[] = [];
  private nextOpId = 1;
  private stopped = false;
  counts = { ok: 0, fail: 0, unknown: 0, notLeader: 0 };

  constructor(
    private readonly rng: Prng,
    private readonly params: ClientParams,
    private readonly host: ClientHost,
  ) {
    for (let c = 1; c <= params.clients; c++) this.clients.push({ id: c, leaderGuess: undefined, lastSeen: new Map(), busy: false });
  }

  start(): void {
    for (const client of this.clients) this.host.schedule(this.think(), () => this.issue(client));
  }

  /** No new operations from now on; outstanding ones may still complete. */
  stop(): void {
    this.stopped = true;
  }

  /** Operations still without an outcome (recorded as unknown). */
  get outstanding(): number {
    return this.clients.filter((c) => c.busy).length;
  }

  private think(): number {
    return this.rng.between(this.params.thinkMinUs, this.params.thinkMaxUs);
  }

  private issue(client: ClientState): void {
    if (this.stopped || client.busy) return;
    const p = this.params;
    const key = `k${this.rng.int(p.keys)}`;
    const id = this.nextOpId++;
    const roll = this.rng.next();
    const op: HistoryOp = {
      id,
      clientId: client.id,
      key,
      kind: roll < p.readRatio ? 'read' : roll < p.readRatio + p.casRatio ? 'cas' : 'write',
      invoke: this.host.now(),
      complete: Infinity,
      outcome: 'unknown',
    };
    let command: KvCommand;
    const value = `${client.id}.${id}`;
    if (op.kind === 'read') {
      command = { op: 'get', key, client: client.id, id };
    } else if (op.kind === 'write') {
      op.value = value;
      command = { op: 'put', key, value, client: client.id, id };
    } else {
      const seen = client.lastSeen.get(key);
      // Mostly the last value seen (may succeed), sometimes null or a stale guess (likely fails).
      const expected = seen !== undefined && this.rng.chance(0.8) ? seen : this.rng.chance(0.5) ? null : `${this.rng.between(1, p.clients)}.${this.rng.between(1, id)}`;
      op.value = value;
      op.expected = expected;
      command = { op: 'cas', key, expected, value, client: client.id, id };
    }
    this.history.push(op);
    client.busy = true;

    const servers = this.host.servers();
    const target = client.leaderGuess !== undefined && servers.includes(client.leaderGuess) ? client.leaderGuess : this.rng.pick(servers);
    this.host.trace?.(`c${client.id} invoke #${id} ${formatCommand(command)} → n${target}`);
    let done = false;
    const finish = (backoff = false): void => {
      done = true;
      client.busy = false;
      // With no leader known, wait a little longer: an election takes at least one timeout.
      const pause = this.think() + (backoff ? this.rng.between(BACKOFF_MIN_US, BACKOFF_MAX_US) : 0);
      this.host.schedule(pause, () => this.issue(client));
    };
    this.host.schedule(p.timeoutUs, () => {
      if (done) return;
      this.counts.unknown++;
      client.leaderGuess = undefined;
      this.host.trace?.(`c${client.id} #${id} timed out: outcome unknown`);
      finish();
    });
    this.host.submit(target, command, (reply) => {
      if (done) return; // answered after the timeout: the history already says unknown, which stays true
      op.complete = this.host.now();
      switch (reply.kind) {
        case 'ok':
          op.outcome = 'ok';
          this.counts.ok++;
          if (op.kind === 'read') {
            op.result = reply.result as string | null;
            client.lastSeen.set(key, op.result);
          } else if (op.kind === 'write') {
            client.lastSeen.set(key, value);
          } else {
            op.result = reply.result as boolean;
            if (op.result) client.lastSeen.set(key, value);
          }
          if (op.kind !== 'read') this.acknowledged.push({ op, index: reply.index, term: reply.term });
          client.leaderGuess = target;
          this.host.trace?.(`c${client.id} #${id} ok → ${formatResult(reply.result)} (applied at ${reply.index}/${reply.term})`);
          break;
        case 'fail':
          op.outcome = 'fail';
          this.counts.fail++;
          client.leaderGuess = undefined;
          this.host.trace?.(`c${client.id} #${id} failed: ${reply.reason}`);
          break;
        case 'not-leader':
          op.outcome = 'fail';
          this.counts.notLeader++;
          client.leaderGuess = reply.leaderId !== 0 && reply.leaderId !== target ? reply.leaderId : undefined;
          this.host.trace?.(`c${client.id} #${id} refused by n${target}: not leader (leader ${reply.leaderId ? `n${reply.leaderId}` : 'unknown'})`);
          finish(client.leaderGuess === undefined);
          return;
      }
      finish();
    });
  }
}
