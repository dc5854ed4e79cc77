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
      // A client that has seen an answer before but is unknown here lost its session to expiry;
      // applying its command now could apply it twice.
      if (session.lowestUnanswered > 1) return { kind: 'reject', error: new SessionExpiredError(session.clientId) };
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
      if (index - session.lastActiveIndex > this.expiryEntries) this.sessions.delete(clientId);
    }
  }
}
