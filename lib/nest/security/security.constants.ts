/** Token of the {@link RaftRpcSecurity} the RPC controller consults (optional: without it, the endpoints are open). */
export const RAFT_RPC_SECURITY = Symbol('RAFT_RPC_SECURITY');

/** Token of the module's static `rpcListener` extra and path prefix (see `RaftRpcListener`). */
export const RAFT_RPC_LISTENER_EXTRA = Symbol('RAFT_RPC_LISTENER_EXTRA');
