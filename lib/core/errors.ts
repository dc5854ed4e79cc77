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

// Errors of the driver and of the transports: kept here, at the bottom layer, so that every layer can
// throw and recognise them without importing upwards.
/** A command or membership change did not finish within its timeout; it may still take effect later. */
export class CommandTimeoutError extends RaftError {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms; the command may still be applied`);
  }
}

/**
 * The leader that accepted a command lost leadership before the command was applied: it may or may
 * not be committed by the next leader (hashicorp/raft's ErrLeadershipLost).
 */
export class LeadershipLostError extends RaftError {
  constructor(detail = 'leadership was lost before the command was applied; it may or may not be committed') {
    super(detail);
  }
}

/** The node is not running (not started yet, or shut down); the operation was not attempted. */
export class NodeStoppedError extends RaftError {
  constructor(detail = 'the Raft node is not running') {
    super(detail);
  }
}

/**
 * The cluster removed this node: its leader refuses what the node forwards (HTTP 410 `removed`). A
 * removed server does not learn of its removal from the log (the leader stops replicating to it), so
 * this is how its callers learn it: send to a member instead. Nothing was attempted.
 */
export class NodeRemovedError extends RaftError {
  constructor(detail = 'this node was removed from the cluster: send to a member') {
    super(detail);
  }
}

/** An operation was aborted through its AbortSignal. */
export class CommandAbortedError extends RaftError {
  constructor() {
    super('the operation was aborted');
  }
}

/** Options given to a node or module are invalid; `field` names the bad one. */
export class RaftOptionsError extends RaftError {
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super(`invalid Raft option "${field}": ${detail}`);
  }
}

/**
 * A follower forwarded a command to the leader and got no answer (the leader went away or the network
 * failed): the command may or may not have been applied.
 */
export class CommandForwardingError extends RaftError {
  constructor(
    readonly leaderId: number,
    override readonly cause: unknown,
  ) {
    super(`forwarding to leader ${leaderId} failed: ${cause instanceof Error ? cause.message : String(cause)}; the command may or may not have been applied`);
  }
}

/** A membership change was started but abandoned (for example, a new server never caught up). */
export class ConfigurationChangeFailedError extends RaftError {
  constructor(readonly reason: string) {
    super(`configuration change failed: ${reason}`);
  }
}

/** The store failed to persist a batch; the node stopped, since it can no longer keep its promises. */
export class StorageFailureError extends RaftError {
  constructor(override readonly cause: unknown) {
    super(`storage failed, the node stopped: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * The entries asked for were compacted into a snapshot (log compaction): they can no longer be
 * replayed, only the state they produced. `firstIndex` is the first entry still held.
 */
export class LogCompactedError extends RaftError {
  constructor(
    readonly requestedIndex: number,
    readonly firstIndex: number,
  ) {
    super(`entries before ${firstIndex} were compacted into a snapshot; cannot replay from ${requestedIndex}`);
  }
}

/**
 * A `commits$` subscriber fell so far behind (its buffer of `limit` entries is full) that it was ended,
 * so that it could not hold up the node: resume with `commitsFrom(lastDeliveredIndex + 1)`.
 */
export class CommitsOverflowError extends RaftError {
  constructor(
    readonly lastDeliveredIndex: number,
    readonly limit: number,
  ) {
    super(`a commits$ subscriber fell ${limit} entries behind and was ended; resume with commitsFrom(${lastDeliveredIndex + 1})`);
  }
}

/**
 * A command's session was forgotten (it expired, deterministically, after `sessionExpiryEntries` log
 * entries without activity): the command was not applied, and retrying it cannot be made safe.
 */
export class SessionExpiredError extends RaftError {
  constructor(readonly clientId: string) {
    super(`client session ${clientId} expired; the command was not applied`);
  }
}
