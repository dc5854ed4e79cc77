import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  NodeId,
  RequestVoteRequest,
  RequestVoteResponse,
} from '../core/types.js';

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
  command(command: Uint8Array, options?: RpcOptions): Promise<Uint8Array>;
  /** A membership change forwarded by a follower: resolves once C_new is committed. */
  setConfiguration(voters: readonly NodeId[], options?: RpcOptions): Promise<void>;
}

/**
 * One remote server, as seen by the sender (the Go model's `Peer`). Implement it to carry Raft over
 * another transport; a rejected promise means "no answer" and the engine simply retries later.
 */
export interface RaftPeer {
  readonly id: NodeId;
  appendEntries(request: AppendEntriesRequest, options?: RpcOptions): Promise<AppendEntriesResponse>;
  requestVote(request: RequestVoteRequest, options?: RpcOptions): Promise<RequestVoteResponse>;
  command(command: Uint8Array, options?: RpcOptions): Promise<Uint8Array>;
  setConfiguration(voters: readonly NodeId[], options?: RpcOptions): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** Makes the {@link RaftPeer} for a server id (and address, when the transport needs one). */
export interface RaftTransport {
  peer(id: NodeId, url?: string): RaftPeer;
  close(): Promise<void>;
}
