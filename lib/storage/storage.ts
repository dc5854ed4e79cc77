import type { Configuration, Entry, HardState, LogStart, RecoveredState, SnapshotMetadata } from '../core/types.js';

/** A snapshot with its bytes, as stored and as sent to a follower. */
export interface StoredSnapshot {
  readonly metadata: SnapshotMetadata;
  /** What the state machine's `snapshot()` produced (wrapped by the node with its session table). */
  readonly data: Uint8Array;
}

/** Log compaction: drop every entry up to `index`; the log then starts after it. */
export interface LogCompaction extends LogStart {
  /** The configuration in force at `index`: it becomes the stored base configuration. */
  readonly configuration: Configuration;
}

/**
 * One batch of durable changes, written atomically: either all of it survives a crash or none does.
 * It is built from a Ready (`hardState`, `truncateFrom`, `entries`, an installed snapshot), plus the
 * bootstrap configuration the first time a server of the initial cluster starts, plus the node's own
 * snapshots and compactions.
 *
 * A store applies its parts in this order: `hardState`, `baseConfiguration`, `truncateFrom`,
 * `snapshot`, `compact`, `entries`.
 */
export interface StorageBatch {
  readonly hardState?: HardState;
  /** Delete every entry with `index >= truncateFrom` before appending `entries`. */
  readonly truncateFrom?: number;
  readonly entries: readonly Entry[];
  /** The configuration in force before the first entry; written once, on bootstrap. */
  readonly baseConfiguration?: Configuration;
  /** Replaces the stored snapshot (only the latest is kept). */
  readonly snapshot?: StoredSnapshot;
  /**
   * Deletes every entry with `index <= compact.index` (all of them when the log ends before it), and
   * records `compact` as where the log starts and `compact.configuration` as the base configuration.
   */
  readonly compact?: LogCompaction;
}

/**
 * Where a server keeps its term, vote, log and configuration (hashicorp/raft's LogStore +
 * StableStore in one contract, so a batch can be one transaction).
 *
 * Implement it to keep the log somewhere else; the contract is:
 * - {@link load} returns exactly what the saved batches left, in index order, with no gap; a store
 *   that is torn or inconsistent must throw {@link StorageCorruptionError} naming what is wrong,
 *   never skip or repair silently.
 * - {@link save} resolves only once the batch is durable (fsync'd / committed), and batches are
 *   applied in the order `save` was called.
 */
export interface RaftStorage {
  /**
   * Everything needed to start: hard state, where the log starts (`logStart`) and the entries after
   * it, the base configuration, and the latest snapshot's metadata (not its bytes: {@link loadSnapshot}).
   */
  load(): Promise<RecoveredState>;
  save(batch: StorageBatch): Promise<void>;
  /**
   * Stored entries with `from <= index <= to`, in order (for catching up readers of old entries).
   * Entries already compacted away are simply not returned.
   */
  entries(from: number, to: number): Promise<Entry[]>;
  /** The latest stored snapshot with its bytes, or `undefined` when none was ever saved. */
  loadSnapshot(): Promise<StoredSnapshot | undefined>;
  /** Releases connections, locks and files. */
  close(): Promise<void>;
}

/** The empty state of a server that has never saved anything. */
export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: 0, commit: 0 });
