import type { Configuration, Entry, HardState, LogStart, Ready, RecoveredState, SnapshotMetadata } from '../../lib/core/types.js';

/** A snapshot as the simulator stores it: metadata plus the key-value store's serialized state. */
export interface SimSnapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: string;
}

/**
 * One server's stable storage, with the crash model the simulator needs: a {@link Ready} (or one of
 * the server's own snapshots) is saved atomically or not at all, and only what was saved survives a
 * crash. Saving takes virtual time; the simulator decides when the save completes, and a crash before
 * that loses the whole batch.
 */
export class Disk {
  private hard: HardState = { term: 0, vote: 0, commit: 0 };
  private log: Entry[] = [];
  private start: LogStart = { index: 0, term: 0 };
  private base: Configuration | undefined;
  private snap: SimSnapshot | undefined;
  /** Batches saved, for statistics. */
  saves = 0;

  constructor(baseConfiguration: Configuration | undefined) {
    this.base = baseConfiguration;
  }

  get hardState(): HardState {
    return this.hard;
  }

  /** The configuration in force where the stored log starts. */
  get baseConfiguration(): Configuration | undefined {
    return this.base;
  }

  get lastIndex(): number {
    return this.start.index + this.log.length;
  }

  get logStart(): LogStart {
    return this.start;
  }

  get snapshot(): SimSnapshot | undefined {
    return this.snap;
  }

  /** Whether saving `ready` writes anything at all (a Ready with only messages costs no I/O). */
  static needsWrite(ready: Ready): boolean {
    return ready.hardState !== undefined || ready.truncateFrom !== undefined || ready.snapshot !== undefined || ready.entries.length > 0;
  }

  /**
   * Saves one batch atomically: hard state, then the truncation, then an installed snapshot (with the
   * bytes that arrived with it) and the compaction it implies, then the appends. Returns a description
   * of the problem, without changing anything, if the batch does not fit the stored log (a gap or an
   * overlap, a snapshot whose bytes are missing): that would be a broken Ready contract, which the
   * simulator reports.
   */
  save(ready: Ready, arrived?: SimSnapshot): string | undefined {
    let last = this.lastIndex;
    if (ready.truncateFrom !== undefined) {
      if (ready.truncateFrom <= this.start.index) return `truncateFrom ${ready.truncateFrom} is at or below the log's start ${this.start.index}`;
      last = Math.min(last, ready.truncateFrom - 1);
    }
    const s = ready.snapshot;
    if (s) {
      if (!arrived || arrived.metadata.index !== s.index || arrived.metadata.term !== s.term) return `snapshot ${s.index}/${s.term} saved without its bytes`;
      if (s.index < this.start.index) return `snapshot ${s.index} is below the log's start ${this.start.index}`;
      last = Math.max(last, s.index);
    }
    for (let i = 0; i < ready.entries.length; i++) {
      const entry = ready.entries[i]!;
      if (entry.index !== last + 1 + i) {
        return `entry ${entry.index} does not follow the stored log (last index ${last + i}${
          ready.truncateFrom !== undefined ? `, after truncating from ${ready.truncateFrom}` : ''
        })`;
      }
    }
    if (ready.hardState) this.hard = ready.hardState;
    if (ready.truncateFrom !== undefined) this.log.length = Math.min(this.log.length, ready.truncateFrom - 1 - this.start.index);
    if (s) {
      this.snap = arrived;
      this.compactTo({ index: s.index, term: s.term }, s.configuration);
    }
    for (const entry of ready.entries) this.log.push(entry);
    this.saves++;
    return undefined;
  }

  /** Saves one of the server's own snapshots and drops the entries up to `compactTo`, atomically. */
  saveSnapshot(snapshot: SimSnapshot, compactTo: LogStart, configuration: Configuration): string | undefined {
    if (compactTo.index < this.start.index) return `compaction to ${compactTo.index} would move the log's start back from ${this.start.index}`;
    if (compactTo.index > snapshot.metadata.index) return `compaction to ${compactTo.index} goes past the snapshot at ${snapshot.metadata.index}`;
    if (snapshot.metadata.index > this.lastIndex) return `snapshot at ${snapshot.metadata.index} is beyond the stored log (${this.lastIndex})`;
    this.snap = snapshot;
    this.compactTo(compactTo, configuration);
    this.saves++;
    return undefined;
  }

  private compactTo(start: LogStart, configuration: Configuration): void {
    this.log = this.log.filter((e) => e.index > start.index);
    this.start = start;
    this.base = configuration;
  }

  /**
   * What a restarted server reads back. `forgetVote` is the `forget-vote-on-restart` negative
   * control: the stored vote is lost, as if it had never been written.
   */
  load(options: { forgetVote?: boolean } = {}): RecoveredState {
    return {
      hardState: options.forgetVote ? { ...this.hard, vote: 0 } : this.hard,
      entries: this.log.slice(),
      ...(this.base ? { baseConfiguration: this.base } : {}),
      ...(this.start.index > 0 ? { logStart: this.start } : {}),
      ...(this.snap ? { snapshot: this.snap.metadata } : {}),
      // The simulator restores its state machine from the snapshot before it starts the engine.
      appliedIndex: this.snap?.metadata.index ?? 0,
    };
  }
}
