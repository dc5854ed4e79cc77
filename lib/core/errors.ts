import type { NodeId } from './types.js';

/** Base class of every error nestjs-raft throws, so callers can catch them all with one `instanceof`. */
export class RaftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * This server is not the leader, so it cannot accept the request. `leaderId` is the leader it knows
 * of (0 when none is known); `leaderUrl` is filled in by a driver that knows the leader's address.
 */
export class NotLeaderError extends RaftError {
  constructor(
    readonly leaderId: NodeId,
    readonly leaderUrl?: string,
  ) {
    super(leaderId ? `not the leader; the leader is node ${leaderId}${leaderUrl ? ` at ${leaderUrl}` : ''}` : 'not the leader, and no leader is known');
  }
}

/** Why a membership change was refused before anything was written. */
export type ConfigurationChangeRefusal = 'invalid' | 'in-progress' | 'leader-not-ready';

/** A membership change was refused; `reason` says why, in a form code can switch on. */
export class ConfigurationChangeError extends RaftError {
  constructor(
    readonly reason: ConfigurationChangeRefusal,
    detail: string,
  ) {
    super(`configuration change refused (${reason}): ${detail}`);
  }
}

/**
 * The engine was asked to do something that would break a safety rule (for example, to truncate a
 * committed entry). Seeing this means a bug or a corrupted store, never a normal condition.
 */
export class RaftInvariantError extends RaftError {}
