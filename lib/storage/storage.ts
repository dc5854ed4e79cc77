import type { Configuration, Entry, HardState, RecoveredState } from '../core/types.js';

/**
 * One batch of durable changes, written atomically: either all of it survives a crash or none does.
 * It is built from a Ready (`hardState`, `truncateFrom`, `entries`), plus the bootstrap configuration
 * the first time a server of the initial cluster starts.
 */
export interface StorageBatch {
  readonly hardState?: HardState;
  /** Delete every entry with `index >= truncateFrom` before appending `entries`. */
  readonly truncateFrom?: number;
  readonly entries: readonly Entry[];
  /** The configuration in force before the first entry; written once, on bootstrap. */
  readonly baseConfiguration?: Configuration;
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
  load(): Promise<RecoveredState>;
  save(batch: StorageBatch): Promise<void>;
  /** Stored entries with `from <= index <= to`, in order (for catching up readers of old entries). */
  entries(from: number, to: number): Promise<Entry[]>;
  /** Releases connections, locks and files. */
  close(): Promise<void>;
}

/** The empty state of a server that has never saved anything. */
export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: 0, commit: 0 });
