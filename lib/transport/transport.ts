import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  InstallSnapshotRequest,
  InstallSnapshotResponse,
  NodeId,
  RequestVoteRequest,
  RequestVoteResponse,
  TimeoutNowRequest,
} from '../core/types.js';

/** A cluster member as the user names it: its id and, for network transports, where to reach it. */
export interface RaftMember {
  readonly id: NodeId;
  readonly url?: string;
}

/** The outcome of one command of a forwarded batch: the state machine's answer, or why there is none. */
export type CommandOutcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** Per-call options of an RPC. */
export interface RpcOptions {
  /** Abort the call (its promise then rejects). */
  readonly signal?: AbortSignal;
  /** Give up after this many milliseconds. */
  readonly timeoutMs?: number;
}

/**
 * What a server answers to its peers: the receiving side of every RPC. The node driver implements
 * it; a transport delivers incoming requests into it (HTTP controllers, or {@link MemoryNetwork}).
 */
export interface RaftRpcHandler {
  readonly id: NodeId;
  appendEntries(request: AppendEntriesRequest): Promise<AppendEntriesResponse>;
  requestVote(request: RequestVoteRequest): Promise<RequestVoteResponse>;
  /** A command forwarded by a follower: resolves with the state machine's answer once applied. */
  command(command: Uint8Array, options?: RpcOptions): Promise<unknown>;
  /**
   * Several commands forwarded by a follower in one call (proposed together, so they share one
   * batch on disk and on the wire): one outcome per command, in order, once each is answered.
   */
  commands?(commands: readonly Uint8Array[], options?: RpcOptions): Promise<CommandOutcome[]>;
  /**
   * A membership change forwarded by a follower: `members` are the voters, `learners` the non-voting
   * members (unchanged when left out). Resolves once C_new is committed.
   */
  setConfiguration(members: readonly RaftMember[], options?: RpcOptions, learners?: readonly RaftMember[]): Promise<void>;
  /** A follower asks the leader for a confirmed read index (thesis §6.4). */
  readIndex?(options?: RpcOptions): Promise<number>;
  /** The leader hands leadership over: campaign now (thesis §3.10). */
  timeoutNow?(request: TimeoutNowRequest): Promise<void>;
  /**
   * A complete snapshot from the leader (every chunk arrived): resolves once it is durable here, with
   * the answer for the leader. Transports that send snapshots in chunks assemble them before calling.
   */
  installSnapshot?(request: InstallSnapshotRequest, data: Uint8Array): Promise<InstallSnapshotResponse>;
}

/**
 * One remote server, as seen by the sender (the Go model's `Peer`). Implement it to carry Raft over
 * another transport; a rejected promise means "no answer" and the engine simply retries later.
 */
export interface RaftPeer {
  readonly id: NodeId;
  appendEntries(request: AppendEntriesRequest, options?: RpcOptions): Promise<AppendEntriesResponse>;
  requestVote(request: RequestVoteRequest, options?: RpcOptions): Promise<RequestVoteResponse>;
  /** Forwards a command to this peer (the leader); resolves with the state machine's answer. */
  command(command: Uint8Array, options?: RpcOptions): Promise<unknown>;
  /** Forwards several commands in one call; one outcome per command, in order. Transports that cannot, leave it out. */
  commands?(commands: readonly Uint8Array[], options?: RpcOptions): Promise<CommandOutcome[]>;
  /** Forwards a membership change (voters, and learners when given) to this peer (the leader). */
  setConfiguration(members: readonly RaftMember[], options?: RpcOptions, learners?: readonly RaftMember[]): Promise<void>;
  /** Asks this peer (the leader) for a confirmed read index; transports that cannot, leave it out. */
  readIndex?(options?: RpcOptions): Promise<number>;
  /** Tells this peer to campaign at once (leadership transfer); transports that cannot, leave it out. */
  timeoutNow?(request: TimeoutNowRequest, options?: RpcOptions): Promise<void>;
  /**
   * Sends a snapshot and its bytes (InstallSnapshot), in chunks if the transport wants, resuming after
   * a failure where the receiver says it stopped; resolves with the follower's answer. Transports that
   * cannot, leave it out (a follower too far behind then cannot be caught up through this transport).
   */
  installSnapshot?(request: InstallSnapshotRequest, data: Uint8Array, options?: RpcOptions): Promise<InstallSnapshotResponse>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** Makes the {@link RaftPeer} for a server id (and address, when the transport needs one). */
export interface RaftTransport {
  peer(id: NodeId, url?: string): RaftPeer;
  /** Asks the server at `url` for its id (the Go model's `GET /raft/id`); transports without addresses omit it. */
  discoverId?(url: string, options?: RpcOptions): Promise<NodeId>;
  close(): Promise<void>;
}
