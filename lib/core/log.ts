import { RaftInvariantError } from './errors.js';
import type { Entry } from './types.js';

/**
 * The engine's in-memory copy of the log. Index 0 is a sentinel of term 0, so `term(0) === 0` and the
 * consistency check of the first AppendEntries needs no special case (§5.3).
 */
export class RaftLog {
  private readonly entries: Entry[] = [];

  constructor(entries: readonly Entry[] = []) {
    for (const entry of entries) this.appendOne(entry);
  }

  get lastIndex(): number {
    return this.entries.length;
  }

  get lastTerm(): number {
    return this.term(this.lastIndex)!;
  }

  /** The term of the entry at `index`, 0 for the sentinel, `undefined` past the end. */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    return this.entries[index - 1]?.term;
  }

  entry(index: number): Entry | undefined {
    return index >= 1 ? this.entries[index - 1] : undefined;
  }

  /** Entries `from..to` inclusive (clamped to the log). */
  slice(from: number, to = this.lastIndex): Entry[] {
    return this.entries.slice(Math.max(from, 1) - 1, Math.min(to, this.lastIndex));
  }

  /**
   * Entries from `from`, at most `maxEntries` of them and at most about `maxBytes` of commands, but
   * always at least one when there is one, so an oversized entry still makes progress.
   */
  sliceForAppend(from: number, maxEntries: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex && out.length < maxEntries; index++) {
      const entry = this.entries[index - 1]!;
      bytes += entry.command.byteLength;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  append(entries: readonly Entry[]): void {
    for (const entry of entries) this.appendOne(entry);
  }

  /** Removes every entry with `index >= from`. */
  truncate(from: number): void {
    if (from < 1) throw new RaftInvariantError(`cannot truncate from index ${from}`);
    this.entries.length = Math.min(this.entries.length, from - 1);
  }

  /** §5.4.1: a log is at least as up to date if its last term is higher, or equal with an index at least as high. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** The first index holding `term`, scanning back from `from` (for the fast-backtracking hint). */
  firstIndexOfTerm(term: number, from: number): number {
    let index = Math.min(from, this.lastIndex);
    while (index > 1 && this.term(index - 1) === term) index--;
    return index;
  }

  /** The last index at or below `atOrBelow` whose term is `term`, or 0 when the log holds no such entry. */
  lastIndexOfTerm(term: number, atOrBelow: number): number {
    for (let index = Math.min(atOrBelow, this.lastIndex); index >= 1; index--) {
      const t = this.term(index)!;
      if (t === term) return index;
      if (t < term) return 0;
    }
    return 0;
  }

  private appendOne(entry: Entry): void {
    const expected = this.lastIndex + 1;
    if (entry.index !== expected) {
      throw new RaftInvariantError(`log gap: appending index ${entry.index} after ${this.lastIndex}`);
    }
    if (entry.term < this.lastTerm) {
      throw new RaftInvariantError(`log terms must not decrease: term ${entry.term} at ${entry.index} after ${this.lastTerm}`);
    }
    this.entries.push(entry);
  }
}
