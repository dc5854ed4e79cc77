import { RaftError } from '../core/errors.js';
import type { CommandSession } from './command-envelope.js';

/**
 * A command's session was forgotten (it expired, deterministically, after `sessionExpiryEntries` log
 * entries without activity): the command was not applied, and retrying it cannot be made safe.
 */
export class SessionExpiredError extends RaftError {
  constructor(readonly clientId: string) {
    super(`client session ${clientId} expired; the command was not applied`);
  }
}

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
      for (const sequence of entry.outcomes.keys()) if (sequence < entry.lowestUnanswered) entry.outcomes.delete(sequence);
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
