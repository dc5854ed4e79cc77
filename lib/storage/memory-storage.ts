import { RaftLog } from '../core/log.js';
import type { Configuration, Entry, HardState, RecoveredState } from '../core/types.js';
import { StorageClosedError, StorageCorruptionError } from './errors.js';
import { EMPTY_HARD_STATE, type RaftStorage, type StorageBatch } from './storage.js';

/**
 * A {@link RaftStorage} in memory, for tests and in-process clusters, with a crash model: a batch
 * becomes durable only when its `save` resolves; {@link crash} throws away every batch still in
 * flight, exactly what a process crash does to writes that were not yet fsync'd.
 */
export class MemoryStorage implements RaftStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private log: Entry[] = [];
  private baseConfiguration: Configuration | undefined;
  private pending = new Set<() => void>();
  private closed = false;

  /** @param saveDelayMs how long a save takes to become durable (0: at the next macrotask). */
  constructor(private readonly saveDelayMs = 0) {}

  async load(): Promise<RecoveredState> {
    this.closed = false;
    // Validate as a real store would: a gap or a term that goes back is corruption, not something to skip.
    try {
      new RaftLog(this.log);
    } catch (error) {
      throw new StorageCorruptionError(`memory log is inconsistent: ${(error as Error).message}`);
    }
    return {
      hardState: this.hardState,
      entries: [...this.log],
      ...(this.baseConfiguration ? { baseConfiguration: this.baseConfiguration } : {}),
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
    return this.log.slice(Math.max(from, 1) - 1, Math.max(to, 0));
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

  /** All or nothing: the batch is checked before anything changes, as one transaction would be. */
  private apply(batch: StorageBatch): void {
    let last = batch.truncateFrom !== undefined ? Math.min(this.log.length, batch.truncateFrom - 1) : this.log.length;
    for (const entry of batch.entries) {
      if (entry.index !== ++last) throw new StorageCorruptionError(`batch would leave a gap: entry ${entry.index} where ${last} was expected`);
    }
    if (batch.baseConfiguration) this.baseConfiguration = batch.baseConfiguration;
    if (batch.hardState) this.hardState = batch.hardState;
    if (batch.truncateFrom !== undefined) this.log.length = Math.min(this.log.length, batch.truncateFrom - 1);
    this.log.push(...batch.entries);
  }
}
