import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
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
  /** A membership change forwarded by a follower: resolves once C_new is committed. */
  setConfiguration(members: readonly RaftMember[], options?: RpcOptions): Promise<void>;
  /** A follower asks the leader for a confirmed read index (thesis §6.4). */
  readIndex?(options?: RpcOptions): Promise<number>;
  /** The leader hands leadership over: campaign now (thesis §3.10). */
  timeoutNow?(request: TimeoutNowRequest): Promise<void>;
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
  /** Forwards a membership change to this peer (the leader). */
  setConfiguration(members: readonly RaftMember[], options?: RpcOptions): Promise<void>;
  /** Asks this peer (the leader) for a confirmed read index; transports that cannot, leave it out. */
  readIndex?(options?: RpcOptions): Promise<number>;
  /** Tells this peer to campaign at once (leadership transfer); transports that cannot, leave it out. */
  timeoutNow?(request: TimeoutNowRequest, options?: RpcOptions): Promise<void>;
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
