import { RaftError, SessionExpiredError } from '../core/errors.js';
import type { CommandSession } from './command-envelope.js';

export { SessionExpiredError };

/** How many expired client ids are remembered (about 60 bytes each). */
const MAX_EXPIRED_SESSIONS = 100_000;

/** What applying a command produced: its answer, or the error it threw. Both are replayed to duplicates. */
export type SessionOutcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

interface Session {
  /** Answers of sequences at or above the client's lowest unanswered one. */
  readonly outcomes: Map<number, SessionOutcome>;
  lowestUnanswered: number;
  lastActiveIndex: number;
}

/** What to do with one command. */
export type SessionDecision =
  | { readonly kind: 'apply' }
  | { readonly kind: 'duplicate'; readonly outcome: SessionOutcome }
  | { readonly kind: 'reject'; readonly error: RaftError };

/**
 * The replicated table of client sessions (Raft thesis §6.3). It is part of the replicated state:
 * every server builds it from the same log, so every server deduplicates identically. Sessions expire
 * by log index, never by a local clock, for the same reason.
 */
export class SessionTable {
  private readonly sessions = new Map<string, Session>();
  /**
   * Clients whose session expired (oldest first, bounded): their commands are refused rather than
   * applied as if new, since one of them may be a retry of a command applied before the expiry.
   */
  private readonly expired = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly expiryEntries: number) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Decides, at log index `index`, whether a command of `session` is new, a duplicate, or from a forgotten session. */
  decide(session: CommandSession, index: number): SessionDecision {
    this.sweep(index);
    let entry = this.sessions.get(session.clientId);
    if (!entry) {
      // Forgotten by expiry: applying its command now could apply a retry twice.
      if (this.expired.has(session.clientId)) return { kind: 'reject', error: new SessionExpiredError(session.clientId) };
      // Otherwise a new client (its earlier commands, if any, never reached the log).
      entry = { outcomes: new Map(), lowestUnanswered: 1, lastActiveIndex: index };
      this.sessions.set(session.clientId, entry);
    }
    entry.lastActiveIndex = index;
    if (session.lowestUnanswered > entry.lowestUnanswered) {
      entry.lowestUnanswered = session.lowestUnanswered;
      // Outcomes are kept in log order, which is nearly sequence order: drop from the front only, so a
      // moving low-water mark costs what it frees, not a scan of every outcome kept. A straggler left
      // behind is still a correct answer to a duplicate, and every server leaves the same ones.
      for (const sequence of entry.outcomes.keys()) {
        if (sequence >= entry.lowestUnanswered) break;
        entry.outcomes.delete(sequence);
      }
    }
    const known = entry.outcomes.get(session.sequence);
    if (known) return { kind: 'duplicate', outcome: known };
    // Below the client's own low-water mark and forgotten: the client already has its answer.
    if (session.sequence < entry.lowestUnanswered) return { kind: 'reject', error: new SessionExpiredError(session.clientId) };
    return { kind: 'apply' };
  }

  /** Records the outcome of a command that `decide` said to apply. */
  record(session: CommandSession, outcome: SessionOutcome): void {
    this.sessions.get(session.clientId)?.outcomes.set(session.sequence, outcome);
  }

  /**
   * The table as plain JSON-able data, for a snapshot. Answers are kept in their JSON form (an error
   * as its name and message): a duplicate answered after a restore gets that form back.
   */
  toState(): SessionTableState {
    return {
      lastSweep: this.lastSweep,
      sessions: [...this.sessions].map(([clientId, s]) => [
        clientId,
        s.lowestUnanswered,
        s.lastActiveIndex,
        [...s.outcomes].map(([sequence, outcome]) => [sequence, outcomeToState(outcome)] as [number, OutcomeState]),
      ]),
      expired: [...this.expired],
    };
  }

  /** Rebuilds a table from {@link toState}'s data (as restored from a snapshot). */
  static fromState(state: SessionTableState, expiryEntries: number): SessionTable {
    const table = new SessionTable(expiryEntries);
    table.lastSweep = state.lastSweep;
    for (const [clientId, lowestUnanswered, lastActiveIndex, outcomes] of state.sessions) {
      table.sessions.set(clientId, {
        lowestUnanswered,
        lastActiveIndex,
        outcomes: new Map(outcomes.map(([sequence, outcome]) => [sequence, outcomeFromState(outcome)])),
      });
    }
    for (const [clientId, index] of state.expired) table.expired.set(clientId, index);
    return table;
  }

  private sweep(index: number): void {
    if (index - this.lastSweep < 1024) return;
    this.lastSweep = index;
    for (const [clientId, session] of this.sessions) {
      if (index - session.lastActiveIndex <= this.expiryEntries) continue;
      this.sessions.delete(clientId);
      this.expired.set(clientId, index);
    }
    // Bounded, and trimmed in the same order on every server (insertion order of the same log).
    while (this.expired.size > MAX_EXPIRED_SESSIONS) this.expired.delete(this.expired.keys().next().value!);
  }
}

/** An answer as a snapshot keeps it. */
type OutcomeState = { readonly ok: true; readonly json?: string } | { readonly ok: false; readonly name: string; readonly message: string; readonly json?: string };

/** A {@link SessionTable} as a snapshot keeps it. */
export interface SessionTableState {
  readonly lastSweep: number;
  /** `[clientId, lowestUnanswered, lastActiveIndex, [sequence, outcome][]]` */
  readonly sessions: readonly (readonly [string, number, number, readonly (readonly [number, OutcomeState])[]])[];
  readonly expired: readonly (readonly [string, number])[];
}

function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined; // not representable (a cycle, a BigInt): replayed as undefined
  }
}

function outcomeToState(outcome: SessionOutcome): OutcomeState {
  if (outcome.ok) {
    const json = toJson(outcome.value);
    return json === undefined ? { ok: true } : { ok: true, json };
  }
  const error = outcome.error;
  if (error instanceof Error) return { ok: false, name: error.name, message: error.message };
  const json = toJson(error);
  return json === undefined ? { ok: false, name: 'Error', message: String(error) } : { ok: false, name: 'Error', message: String(error), json };
}

function outcomeFromState(state: OutcomeState): SessionOutcome {
  if (state.ok) return { ok: true, value: state.json === undefined ? undefined : JSON.parse(state.json) };
  if (state.json !== undefined) return { ok: false, error: JSON.parse(state.json) };
  const error = new Error(state.message);
  error.name = state.name;
  return { ok: false, error };
}
