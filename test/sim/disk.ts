import type { Configuration, Entry, HardState, Ready, RecoveredState } from '../../lib/core/types.js';

/**
 * One server's stable storage, with the crash model the simulator needs: a {@link Ready} is saved
 * atomically or not at all, and only what was saved survives a crash. Saving takes virtual time;
 * the simulator decides when the save completes, and a crash before that loses the whole batch.
 */
export class Disk {
  private hard: HardState = { term: 0, vote: 0, commit: 0 };
  private readonly log: Entry[] = [];
  /** Batches saved, for statistics. */
  saves = 0;

  constructor(readonly baseConfiguration: Configuration | undefined) {}

  get hardState(): HardState {
    return this.hard;
  }

  get lastIndex(): number {
    return this.log.length;
  }

  /** Whether saving `ready` writes anything at all (a Ready with only messages costs no I/O). */
  static needsWrite(ready: Ready): boolean {
    return ready.hardState !== undefined || ready.truncateFrom !== undefined || ready.entries.length > 0;
  }

  /**
   * Saves one batch atomically: hard state, then the truncation, then the appends. Returns a
   * description of the problem, without changing anything, if the batch does not fit the stored log
   * (a gap or an overlap): that would be a broken Ready contract, which the simulator reports.
   */
  save(ready: Ready): string | undefined {
    let last = this.log.length;
    if (ready.truncateFrom !== undefined) {
      if (ready.truncateFrom < 1) return `truncateFrom ${ready.truncateFrom} is below 1`;
      last = Math.min(last, ready.truncateFrom - 1);
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
    this.log.length = last;
    for (const entry of ready.entries) this.log.push(entry);
    this.saves++;
    return undefined;
  }

  /**
   * What a restarted server reads back. `forgetVote` is the `forget-vote-on-restart` negative
   * control: the stored vote is lost, as if it had never been written.
   */
  load(options: { forgetVote?: boolean } = {}): RecoveredState {
    return {
      hardState: options.forgetVote ? { ...this.hard, vote: 0 } : this.hard,
      entries: this.log.slice(),
      ...(this.baseConfiguration ? { baseConfiguration: this.baseConfiguration } : {}),
      appliedIndex: 0,
    };
  }
}
