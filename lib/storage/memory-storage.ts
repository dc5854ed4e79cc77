import type { Configuration, Entry, HardState, LogStart, RecoveredState } from '../core/types.js';
import { StorageClosedError, StorageCorruptionError } from './errors.js';
import { EMPTY_HARD_STATE, type RaftStorage, type StorageBatch, type StoredSnapshot } from './storage.js';

const NEVER_COMPACTED: LogStart = Object.freeze({ index: 0, term: 0 });

/**
 * A {@link RaftStorage} in memory, for tests and in-process clusters, with a crash model: a batch
 * becomes durable only when its `save` resolves; {@link crash} throws away every batch still in
 * flight, exactly what a process crash does to writes that were not yet fsync'd.
 */
export class MemoryStorage implements RaftStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  /** Where the log starts: every entry up to `logStart.index` was compacted away. */
  private logStart: LogStart = NEVER_COMPACTED;
  /** The entries after `logStart`: `log[i]` has index `logStart.index + 1 + i`. */
  private log: Entry[] = [];
  private baseConfiguration: Configuration | undefined;
  private snapshot: StoredSnapshot | undefined;
  private pending = new Set<() => void>();
  private closed = false;

  /** @param saveDelayMs how long a save takes to become durable (0: at the next macrotask). */
  constructor(private readonly saveDelayMs = 0) {}

  async load(): Promise<RecoveredState> {
    this.closed = false;
    // Validate as a real store would: a gap or a term that goes back is corruption, not something to skip.
    const problem = this.inconsistency();
    if (problem) throw new StorageCorruptionError(`memory log is inconsistent: ${problem}`);
    return {
      hardState: this.hardState,
      entries: [...this.log],
      ...(this.logStart.index > 0 ? { logStart: this.logStart } : {}),
      ...(this.baseConfiguration ? { baseConfiguration: this.baseConfiguration } : {}),
      ...(this.snapshot ? { snapshot: this.snapshot.metadata } : {}),
    };
  }

  save(batch: StorageBatch): Promise<void> {
    if (this.closed) return Promise.reject(new StorageClosedError('storage is closed'));
    return new Promise((resolve, reject) => {
      const commit = () => {
        this.pending.delete(abort);
        if (this.closed) return reject(new StorageClosedError('storage closed before the batch was durable'));
        try {
          this.apply(batch);
          resolve();
        } catch (error) {
          reject(error as Error);
        }
      };
      const abort = () => {
        clearTimeout(timer);
        reject(new StorageClosedError('crashed before the batch was durable'));
      };
      const timer = setTimeout(commit, this.saveDelayMs);
      this.pending.add(abort);
    });
  }

  async entries(from: number, to: number): Promise<Entry[]> {
    const offset = this.logStart.index + 1;
    return this.log.slice(Math.max(from - offset, 0), Math.max(to - offset + 1, 0));
  }

  async loadSnapshot(): Promise<StoredSnapshot | undefined> {
    // A copy, as a real store reads it back: the caller may not change what is stored.
    return this.snapshot && { metadata: this.snapshot.metadata, data: new Uint8Array(this.snapshot.data) };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Simulates a crash: batches not yet durable are lost; what was saved stays for the next {@link load}. */
  crash(): void {
    for (const abort of [...this.pending]) abort();
    this.pending.clear();
    this.closed = true;
  }

  /**
   * All or nothing: the batch is checked before anything changes, as one transaction would be. Its
   * parts apply in the contract's order: hard state, base configuration, truncation, snapshot,
   * compaction, entries.
   */
  private apply(batch: StorageBatch): void {
    let start = this.logStart;
    // How many stored entries survive the truncation, and how many the compaction then drops from the front.
    let kept = this.log.length;
    if (batch.truncateFrom !== undefined) kept = Math.min(kept, Math.max(0, batch.truncateFrom - 1 - start.index));
    let dropped = 0;
    const { compact } = batch;
    if (compact) {
      if (!compact.configuration) throw new StorageCorruptionError(`compaction to ${compact.index} names no configuration for the new log start`);
      if (compact.index < start.index) {
        throw new StorageCorruptionError(`batch would move the log start back from index ${start.index} to ${compact.index}`);
      }
      dropped = Math.min(kept, compact.index - start.index);
      start = { index: compact.index, term: compact.term };
    }
    let last = start.index + kept - dropped;
    for (const entry of batch.entries) {
      if (entry.index !== ++last) throw new StorageCorruptionError(`batch would leave a gap: entry ${entry.index} where ${last} was expected`);
    }
    const snapshotIndex = (batch.snapshot ?? this.snapshot)?.metadata.index;
    if (snapshotIndex !== undefined && (snapshotIndex < start.index || snapshotIndex > last)) {
      throw new StorageCorruptionError(`batch would leave the snapshot at index ${snapshotIndex} outside the log, which spans ${start.index}..${last}`);
    }

    if (batch.hardState) this.hardState = batch.hardState;
    if (batch.baseConfiguration) this.baseConfiguration = batch.baseConfiguration;
    if (kept < this.log.length) this.log.length = kept;
    if (batch.snapshot) this.snapshot = { metadata: batch.snapshot.metadata, data: new Uint8Array(batch.snapshot.data) };
    if (compact) {
      if (dropped > 0) this.log = this.log.slice(dropped);
      this.logStart = start;
      this.baseConfiguration = compact.configuration;
    }
    for (const entry of batch.entries) this.log.push(entry);
  }

  /** What is wrong with the stored state, if anything (what `load` refuses to start on). */
  private inconsistency(): string | undefined {
    const start = this.logStart;
    let previous: { index: number; term: number } = start;
    for (const entry of this.log) {
      if (entry.index !== previous.index + 1) return `entry ${entry.index} follows index ${previous.index}`;
      if (entry.term < previous.term) return `entry ${entry.index} has term ${entry.term}, lower than term ${previous.term} of index ${previous.index}`;
      previous = entry;
    }
    const snapshot = this.snapshot?.metadata;
    if (snapshot && (snapshot.index < start.index || snapshot.index > previous.index)) {
      return `the snapshot at index ${snapshot.index} is outside the log, which spans ${start.index}..${previous.index}`;
    }
    if (snapshot) {
      const term = snapshot.index === start.index ? start.term : this.log[snapshot.index - start.index - 1]!.term;
      if (term !== snapshot.term) return `the snapshot at index ${snapshot.index} has term ${snapshot.term}, but the log has term ${term} there`;
    }
    return undefined;
  }
}
