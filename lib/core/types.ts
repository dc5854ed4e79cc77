/**
 * The vocabulary of the protocol engine: ids, log entries, configurations, messages and the
 * effects (a {@link Ready} batch) that one call into the engine leaves behind.
 *
 * Everything here is plain data, so a driver can persist it, put it on a wire, or compare it in a test.
 */

/** A server's id: a positive safe integer, unique within a cluster. `0` means "nobody". */
export type NodeId = number;

/** `0` as a {@link NodeId}: no vote cast, no leader known. */
export const NO_NODE: NodeId = 0;

/** What a log entry carries. */
export type EntryType =
  /** A user command, handed to the state machine when committed. */
  | 'command'
  /** The empty entry a new leader appends in its own term (§5.4.2, thesis §6.4). */
  | 'noop'
  /** A configuration (thesis §4.3): takes effect on every server as soon as it is appended. */
  | 'config';

/**
 * The voting members of the cluster (thesis §4).
 *
 * Stable: only `voters`. Joint (C_old,new, §6): `voters` is C_new and `outgoing` is C_old; a decision
 * then needs a majority of each.
 */
export interface Configuration {
  /** C_new during a joint configuration; otherwise the one voting set. Sorted, no duplicates. */
  readonly voters: readonly NodeId[];
  /** C_old while a joint configuration is in effect; absent otherwise. Sorted, no duplicates. */
  readonly outgoing?: readonly NodeId[];
  /**
   * Learners: non-voting members. They receive the log (and snapshots) like any follower, but never
   * vote, never count toward a majority and never campaign; a change can promote one to a voter.
   * Sorted, no duplicates, disjoint from `voters` and `outgoing`; absent when there are none.
   */
  readonly learners?: readonly NodeId[];
  /**
   * Where to reach each member (for example its URL), carried through the log so that every server,
   * and any later leader, can reach a server that was added. The engine never reads it.
   */
  readonly addresses?: Readonly<Record<string, string>>;
}

/** One entry of the replicated log. Indexes start at 1; index 0 is the empty log's sentinel. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** The command's bytes (type `command`); empty otherwise. */
  readonly command: Uint8Array;
  /** The configuration (type `config`); absent otherwise. */
  readonly config?: Configuration;
}

/** The state every server must persist before it answers an RPC (§5, Figure 2). */
export interface HardState {
  /** The latest term this server has seen. */
  readonly term: number;
  /** The candidate voted for in `term`, or {@link NO_NODE}. */
  readonly vote: NodeId;
  /** The highest index known committed. Persisting it is an optimisation, not a safety rule. */
  readonly commit: number;
}

/** A server's role (§5.1), plus PreVote's pre-candidate (thesis §9.6). */
export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** AppendEntries (§5.3): replicate entries and carry the heartbeat. */
export interface AppendEntriesRequest {
  readonly type: 'AppendEntries';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
  /**
   * The leader's read round when it sent this (ReadIndex, thesis §6.4); echoed in the answer so the
   * leader knows the follower still followed it after a read arrived. Not part of the wire format: a
   * driver re-attaches it from the request it sent.
   */
  readonly context?: number;
}

/** The answer to {@link AppendEntriesRequest}. */
export interface AppendEntriesResponse {
  readonly type: 'AppendEntriesResponse';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly success: boolean;
  /** On success: the index up to which the follower's log now matches the leader's. */
  readonly matchIndex: number;
  /** On failure: the request's `prevLogIndex`, so a late rejection can be recognised as stale. */
  readonly rejectedIndex: number;
  /**
   * On failure, the fast-backtracking hint (§5.3, "the follower can include the term of the
   * conflicting entry and the first index it stores for that term"): the term at `rejectedIndex`
   * in the follower's log, or 0 when its log is shorter.
   */
  readonly conflictTerm: number;
  /** On failure: the first index of `conflictTerm` in the follower's log, or its last index + 1. */
  readonly conflictIndex: number;
  /** The request's `context`, echoed. */
  readonly context?: number;
}

/** RequestVote (§5.2), or its PreVote form (thesis §9.6) which changes no state on the receiver. */
export interface RequestVoteRequest {
  readonly type: 'RequestVote';
  readonly from: NodeId;
  readonly to: NodeId;
  /** For a pre-vote: the term the candidate would campaign in (its term + 1). */
  readonly term: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly preVote: boolean;
  /** Set by a leadership transfer (thesis §3.10): voters skip the leader-lease check. */
  readonly transfer?: boolean;
}

/** The answer to {@link RequestVoteRequest}. */
export interface RequestVoteResponse {
  readonly type: 'RequestVoteResponse';
  readonly from: NodeId;
  readonly to: NodeId;
  /** The voter's term; for a granted pre-vote, the term that was asked for. */
  readonly term: number;
  readonly voteGranted: boolean;
  readonly preVote: boolean;
}

/**
 * TimeoutNow (thesis §3.10): the leader tells a caught-up follower to start an election at once, to
 * hand leadership over without waiting for an election timeout.
 */
export interface TimeoutNowRequest {
  readonly type: 'TimeoutNow';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * What a snapshot covers (thesis §5): the state machine after applying every entry up to `index`,
 * whose term was `term`, and the configuration in force at `index`. The bytes travel beside it.
 */
export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly configuration: Configuration;
}

/**
 * InstallSnapshot (thesis §5.4.1 / Figure 5.3): the leader has compacted the entries a follower needs,
 * so it sends its latest snapshot instead. The engine deals only in metadata: the driver and the
 * transport carry the snapshot's bytes (in chunks), and step the message into the follower's engine
 * only once every byte has arrived.
 */
export interface InstallSnapshotRequest {
  readonly type: 'InstallSnapshot';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly snapshot: SnapshotMetadata;
}

/** The answer to {@link InstallSnapshotRequest}. */
export interface InstallSnapshotResponse {
  readonly type: 'InstallSnapshotResponse';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /**
   * The index up to which the follower's log now matches the leader's: the snapshot's index once it is
   * installed (or the follower's commit index if that was already beyond it); 0 when refused.
   */
  readonly matchIndex: number;
}

/** Every message the engine sends or receives. */
export type Message =
  | AppendEntriesRequest
  | AppendEntriesResponse
  | RequestVoteRequest
  | RequestVoteResponse
  | TimeoutNowRequest
  | InstallSnapshotRequest
  | InstallSnapshotResponse;

/** What the engine tells its driver about itself (not persisted). */
export interface SoftState {
  readonly role: Role;
  readonly term: number;
  /** The leader of `term` as far as this server knows, or {@link NO_NODE}. */
  readonly leaderId: NodeId;
}

/** The outcome of a membership change requested with `proposeConfiguration`. */
export interface ConfigurationChangeOutcome {
  /** The id returned by `proposeConfiguration`. */
  readonly id: number;
  /** `committed`: C_new is committed. `failed`: the change was abandoned; `reason` says why. */
  readonly status: 'committed' | 'failed';
  readonly reason?: string;
  /** The configuration in effect afterwards. */
  readonly configuration: Configuration;
}

/**
 * The effects of one or more calls into the engine, in the order a driver must carry them out:
 *
 * 1. persist, atomically: `hardState` (if present), then delete the log suffix from `truncateFrom`
 *    (if present), then, if `snapshot` is present, store the snapshot that arrived with it and drop
 *    every entry up to its index, then append `entries`;
 * 2. only then send `messages` (a vote or an acknowledgement may never leave before the state it
 *    promises is durable: §5.1, Figure 2 "respond to RPCs only after updating stable storage");
 * 3. if `snapshot` is present, restore the state machine from it (after any committed entries handed
 *    out earlier), then apply `committedEntries` in order (gapless, each index handed out once);
 * 4. call `advance(ready)` to tell the engine the batch is durable.
 */
export interface Ready {
  readonly hardState?: HardState;
  /** Delete every stored entry with `index >= truncateFrom`, before appending `entries`. */
  readonly truncateFrom?: number;
  /**
   * A snapshot from the leader that this server accepted (InstallSnapshot): persist it with the
   * snapshot's bytes, drop every stored entry up to its index (the log now starts after it), and
   * restore the state machine from it. Answers in `messages` promise it is durable.
   */
  readonly snapshot?: SnapshotMetadata;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  /** Present when role, term or leader changed since the previous Ready. */
  readonly softState?: SoftState;
  /** Membership changes that finished since the previous Ready. */
  readonly configurationChanges: readonly ConfigurationChangeOutcome[];
  /** Reads whose index is confirmed (ReadIndex): serve them once `index` is applied. */
  readonly readStates: readonly ReadState[];
}

/**
 * A confirmed read (thesis §6.4): when the state machine has applied `index`, a read that was
 * requested with `id` sees every write committed before the request, without writing to the log.
 */
export interface ReadState {
  readonly id: number;
  readonly index: number;
}

/**
 * Where the stored log starts after compaction: every entry up to `index` was dropped, and `term` is
 * the term the entry at `index` had (so the consistency check of the next AppendEntries still works).
 * `{ index: 0, term: 0 }` for a log that was never compacted.
 */
export interface LogStart {
  readonly index: number;
  readonly term: number;
}

/** What a server starts from: what its storage held after a crash, or nothing on first start. */
export interface RecoveredState {
  readonly hardState: HardState;
  /** The stored log, in index order, gapless, starting at `logStart.index + 1` (index 1 if never compacted). */
  readonly entries: readonly Entry[];
  /** Where the log starts after compaction; absent means `{ index: 0, term: 0 }`. */
  readonly logStart?: LogStart;
  /**
   * The configuration in force at `logStart.index` (before any compaction: the bootstrap
   * configuration), or `undefined` for a server that is joining an existing cluster and waits to be
   * contacted.
   */
  readonly baseConfiguration?: Configuration;
  /**
   * The latest durable snapshot's metadata (its bytes stay in storage until needed). Its index is at
   * least `logStart.index` and at most the last stored index.
   */
  readonly snapshot?: SnapshotMetadata;
  /**
   * The highest index the state machine reflects when the engine starts: what a durable state machine
   * had applied, or the snapshot's index after the driver restored it (0 when it keeps no state).
   */
  readonly appliedIndex?: number;
}

/** Options of one engine; all durations are counted in ticks of the driver's clock. */
export interface RaftCoreOptions {
  readonly id: NodeId;
  /** Minimum election timeout in ticks; a follower's timeout is drawn from [min, 2·min). */
  readonly electionTimeoutTicks: number;
  /** Ticks between heartbeats of a leader. */
  readonly heartbeatTicks: number;
  /** PreVote (thesis §9.6): a server asks before it bumps its term. Default true. */
  readonly preVote?: boolean;
  /** CheckQuorum (thesis §6.2): a leader steps down when a quorum was silent for a timeout. Default true. */
  readonly checkQuorum?: boolean;
  /**
   * The cluster's leaders serve lease reads (thesis §6.4.1; the driver keeps the lease). A server
   * then refuses votes (but for a leadership transfer), at any term, within an election timeout of
   * hearing from a leader, even if it has since moved to a higher term and forgotten that leader, and
   * within one of starting, because a lease it granted must outlive a restart. Set it alike on every
   * server. Default false.
   */
  readonly leaseReads?: boolean;
  /** At most this many entries in one AppendEntries. Default 512. */
  readonly maxEntriesPerAppend?: number;
  /** At most about this many command bytes in one AppendEntries (one entry is always allowed). Default 1 MiB. */
  readonly maxBytesPerAppend?: number;
  /** At most this many unacknowledged AppendEntries per follower while pipelining. Default 32. */
  readonly maxInflightAppends?: number;
  /** A server being added must catch up within this many ticks, or the change fails. Default 20 election timeouts. */
  readonly catchUpTimeoutTicks?: number;
  /** A source of randomness in [0, 1); the simulator passes its seeded PRNG. */
  readonly random: () => number;
}
