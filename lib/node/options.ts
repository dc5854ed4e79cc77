import type { NodeId } from '../core/types.js';
import type { RaftStorage } from '../storage/storage.js';
import type { RaftMember, RaftTransport } from '../transport/transport.js';
import { RaftOptionsError } from './errors.js';
import type { RaftStateMachineLike } from './state-machine.js';

/** Minimal logger contract (Nest's `Logger` satisfies it). */
export interface RaftLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

/** Timing and batching options shared by the node and the Nest module. All durations in milliseconds. */
export interface RaftTimingOptions {
  /** Minimum election timeout; each timeout is drawn from [min, 2·min). Default 250 (the Go model's). */
  readonly electionTimeoutMs?: number;
  /** Interval between a leader's heartbeats. Default electionTimeoutMs / 10. */
  readonly heartbeatIntervalMs?: number;
  /** Resolution of the node's logical clock. Default heartbeatIntervalMs / 5. */
  readonly tickMs?: number;
  /** Timeout of one AppendEntries or RequestVote call. Default 2 × electionTimeoutMs. */
  readonly rpcTimeoutMs?: number;
  /** Default timeout of `command()` and `setConfiguration()`. Default 10 000. */
  readonly commandTimeoutMs?: number;
  /** At most this many entries per AppendEntries. Default 512. */
  readonly maxEntriesPerAppend?: number;
  /** At most about this many command bytes per AppendEntries. Default 512 KiB. */
  readonly maxBytesPerAppend?: number;
  /** Unacknowledged AppendEntries per follower while pipelining. Default 16. */
  readonly maxInflightAppends?: number;
  /** Largest command accepted, in bytes. Default 1 MiB. */
  readonly maxCommandBytes?: number;
  /**
   * A client session with no command for this many log entries is forgotten (thesis §6.3). Counted in
   * log entries, never in local time, so every server forgets it at the same point: it must be the
   * same on every node. Default 100 000.
   */
  readonly sessionExpiryEntries?: number;
  /**
   * Log compaction: take a snapshot of the state machine (it must implement `snapshot()` and
   * `restore()`) every this many applied entries, and drop the log before it. 0 turns it off.
   * The first snapshot after a start or an installed snapshot comes up to half an interval early,
   * by an amount that depends on the node id, so that servers do not pause for their snapshots at
   * the same time. Default 10 000.
   */
  readonly snapshotEvery?: number;
  /**
   * Entries kept before each snapshot's index, so that a follower only a little behind is caught up
   * with entries rather than a whole snapshot. Default 1 000.
   */
  readonly snapshotTrailingEntries?: number;
  /**
   * Entries a `commits$` subscriber may fall behind before it is ended with CommitsOverflowError
   * (so that it cannot hold up the node). Default 100 000.
   */
  readonly commitsBufferEntries?: number;
  /** PreVote (thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /** CheckQuorum (thesis §6.2). Default true. */
  readonly checkQuorum?: boolean;
  /**
   * Lease reads (thesis §6.4.1), opt-in: a leader that had a quorum confirm its leadership less than
   * about 0.9 election timeouts ago answers `read()`/`barrier()` (its own and its followers') without
   * another round of heartbeats. Safe only under a clock assumption ReadIndex does not need: the
   * servers' clocks run at rates within 10 % of each other, and no process is suspended (VM pause,
   * SIGSTOP) for long without its timers noticing. Needs `checkQuorum`; set it, and the same
   * `electionTimeoutMs` and `tickMs`, on every server: the leader counts on its followers' promise not
   * to vote within an election timeout (of their own clocks) of hearing from a leader or of starting.
   * A leader that started a leadership transfer serves no lease reads for the rest of that term. Default false.
   */
  readonly leaseReads?: boolean;
}

/** Everything a {@link RaftNode} needs. */
export interface RaftNodeOptions extends RaftTimingOptions {
  /** This server's id: a positive integer, unique in the cluster. */
  readonly nodeId: NodeId;
  /** Where peers reach this server (for network transports). */
  readonly url?: string;
  /**
   * The initial cluster, this server included. Used only on the very first start (an empty store):
   * afterwards the configuration comes from the store and changes only through `setConfiguration`.
   * Leave it out (or empty) for a server that will be added to a running cluster.
   */
  readonly peers?: readonly RaftMember[];
  readonly storage: RaftStorage;
  readonly transport: RaftTransport;
  readonly stateMachine: RaftStateMachineLike;
  readonly logger?: RaftLogger;
  /** Source of randomness for election timeouts. Default Math.random. */
  readonly random?: () => number;
}

/** The options with every default filled in. */
export interface ResolvedTiming {
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly tickMs: number;
  readonly rpcTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly maxEntriesPerAppend: number;
  readonly maxBytesPerAppend: number;
  readonly maxInflightAppends: number;
  readonly maxCommandBytes: number;
  readonly sessionExpiryEntries: number;
  readonly snapshotEvery: number;
  readonly snapshotTrailingEntries: number;
  readonly commitsBufferEntries: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly leaseReads: boolean;
}

/** The defaults, in one place. */
export const RAFT_DEFAULTS = {
  electionTimeoutMs: 250,
  commandTimeoutMs: 10_000,
  maxEntriesPerAppend: 512,
  maxBytesPerAppend: 512 * 1024,
  maxInflightAppends: 16,
  maxCommandBytes: 1024 * 1024,
  sessionExpiryEntries: 100_000,
  snapshotEvery: 10_000,
  snapshotTrailingEntries: 1_000,
  commitsBufferEntries: 100_000,
} as const;

function positive(field: string, value: number | undefined, integer = false): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RaftOptionsError(field, `must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
}

/** Validates timing options and fills in defaults; throws {@link RaftOptionsError} naming the bad field. */
export function resolveTiming(options: RaftTimingOptions): ResolvedTiming {
  for (const field of ['electionTimeoutMs', 'heartbeatIntervalMs', 'tickMs', 'rpcTimeoutMs', 'commandTimeoutMs'] as const) {
    positive(field, options[field]);
  }
  for (const field of ['maxEntriesPerAppend', 'maxBytesPerAppend', 'maxInflightAppends', 'maxCommandBytes', 'sessionExpiryEntries', 'commitsBufferEntries'] as const) {
    positive(field, options[field], true);
  }
  for (const field of ['snapshotEvery', 'snapshotTrailingEntries'] as const) {
    const value = options[field];
    if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)) {
      throw new RaftOptionsError(field, `must be a non-negative integer, got ${String(value)}`);
    }
  }
  if (options.leaseReads !== undefined && typeof options.leaseReads !== 'boolean') throw new RaftOptionsError('leaseReads', `must be a boolean, got ${String(options.leaseReads)}`);
  if (options.leaseReads && options.checkQuorum === false) {
    throw new RaftOptionsError('leaseReads', 'needs checkQuorum: followers keep a lease by refusing votes while they hear from the leader');
  }
  const electionTimeoutMs = options.electionTimeoutMs ?? RAFT_DEFAULTS.electionTimeoutMs;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? electionTimeoutMs / 10;
  if (heartbeatIntervalMs >= electionTimeoutMs) {
    throw new RaftOptionsError('heartbeatIntervalMs', `must be below electionTimeoutMs (${electionTimeoutMs})`);
  }
  const tickMs = options.tickMs ?? heartbeatIntervalMs / 5;
  if (tickMs > heartbeatIntervalMs) throw new RaftOptionsError('tickMs', `must not exceed heartbeatIntervalMs (${heartbeatIntervalMs})`);
  return {
    electionTimeoutMs,
    heartbeatIntervalMs,
    tickMs,
    rpcTimeoutMs: options.rpcTimeoutMs ?? 2 * electionTimeoutMs,
    commandTimeoutMs: options.commandTimeoutMs ?? RAFT_DEFAULTS.commandTimeoutMs,
    maxEntriesPerAppend: options.maxEntriesPerAppend ?? RAFT_DEFAULTS.maxEntriesPerAppend,
    maxBytesPerAppend: options.maxBytesPerAppend ?? RAFT_DEFAULTS.maxBytesPerAppend,
    maxInflightAppends: options.maxInflightAppends ?? RAFT_DEFAULTS.maxInflightAppends,
    maxCommandBytes: options.maxCommandBytes ?? RAFT_DEFAULTS.maxCommandBytes,
    sessionExpiryEntries: options.sessionExpiryEntries ?? RAFT_DEFAULTS.sessionExpiryEntries,
    snapshotEvery: options.snapshotEvery ?? RAFT_DEFAULTS.snapshotEvery,
    snapshotTrailingEntries: options.snapshotTrailingEntries ?? RAFT_DEFAULTS.snapshotTrailingEntries,
    commitsBufferEntries: options.commitsBufferEntries ?? RAFT_DEFAULTS.commitsBufferEntries,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    leaseReads: options.leaseReads ?? false,
  };
}

/** Checks a node id; throws {@link RaftOptionsError} naming `field`. */
export function validateNodeId(field: string, id: unknown): asserts id is NodeId {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    throw new RaftOptionsError(field, `must be a positive integer, got ${JSON.stringify(id)}`);
  }
}

/** Checks a member list (ids positive and unique, urls parseable). */
export function validateMembers(field: string, members: readonly RaftMember[]): void {
  if (!Array.isArray(members)) throw new RaftOptionsError(field, 'must be an array of { id, url }');
  const seen = new Set<NodeId>();
  members.forEach((member, i) => {
    validateNodeId(`${field}[${i}].id`, member?.id);
    if (seen.has(member.id)) throw new RaftOptionsError(`${field}[${i}].id`, `duplicate id ${member.id}`);
    seen.add(member.id);
    if (member.url !== undefined) {
      try {
        new URL(member.url);
      } catch {
        throw new RaftOptionsError(`${field}[${i}].url`, `is not a URL: ${JSON.stringify(member.url)}`);
      }
    }
  });
}
