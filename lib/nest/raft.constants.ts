/**
 * Injection tokens of the Raft module, and the limits its RPC endpoints enforce.
 */

/** Token of the module's options (`RaftModuleOptions`), as given to `forRoot` or made by `forRootAsync`. */
export const RAFT_MODULE_OPTIONS = Symbol('RAFT_MODULE_OPTIONS');

/** Token of the module's `RaftNode` (use `RaftService` unless you need the node itself). */
export const RAFT_NODE = Symbol('RAFT_NODE');

/** Token of the {@link RaftRpcHandler} the RPC controller delivers into (the node's `rpcHandler`). */
export const RAFT_RPC_HANDLER = Symbol('RAFT_RPC_HANDLER');

/**
 * Token of the `SnapshotAssembler` the RPC controller buffers InstallSnapshot chunks in (optional:
 * without it, the controller makes its own from the limits).
 */
export const RAFT_SNAPSHOT_ASSEMBLER = Symbol('RAFT_SNAPSHOT_ASSEMBLER');

/** Token of the {@link RaftRpcLimits} the RPC controller enforces. */
export const RAFT_RPC_LIMITS = Symbol('RAFT_RPC_LIMITS');

/** What the RPC endpoints accept; anything beyond is refused before the node sees it. */
export interface RaftRpcLimits {
  /** Entries in one AppendEntries. Must be at least the senders' `maxEntriesPerAppend`. */
  readonly maxEntriesPerAppend: number;
  /** Bytes of one command (an entry's, or a forwarded one). */
  readonly maxCommandBytes: number;
  /**
   * Bytes of one request body that the controller reads itself: commands (`application/octet-stream`)
   * and JSON sent as `application/vnd.raft+json` (what the HTTP peer sends). Bodies sent as
   * `application/json` are read by the application's JSON parser, with its own limit.
   */
  readonly bodyLimitBytes: number;
  /**
   * Bytes of a snapshot received through InstallSnapshot (assembled from chunks, each within
   * `bodyLimitBytes`); a larger one is refused with 413. Default 256 MiB.
   */
  readonly maxSnapshotBytes?: number;
  /** A partly received snapshot whose sender went quiet for this long is dropped, in ms. Default 60 000. */
  readonly snapshotIdleTimeoutMs?: number;
}

/** The defaults, matching the node's (`maxEntriesPerAppend` 512, `maxCommandBytes` 1 MiB) and the module's body limit. */
export const DEFAULT_RPC_LIMITS: Required<RaftRpcLimits> = {
  maxEntriesPerAppend: 512,
  maxCommandBytes: 1024 * 1024,
  bodyLimitBytes: 8 * 1024 * 1024,
  maxSnapshotBytes: 256 * 1024 * 1024,
  snapshotIdleTimeoutMs: 60_000,
};
