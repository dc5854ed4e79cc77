import { RaftInvariantError } from './errors.js';
import type { Entry, LogStart } from './types.js';

/**
 * The engine's in-memory copy of the log, after its compaction point. Everything up to `startIndex`
 * was compacted into a snapshot; only the term of the entry at `startIndex` is remembered, so the
 * consistency check of an AppendEntries that follows it still works (§5.3). A log that was never
 * compacted starts at index 0, a sentinel of term 0.
 */
export class RaftLog {
  private entries: Entry[] = [];
  private start: number;
  private startTerm: number;

  constructor(entries: readonly Entry[] = [], start: LogStart = { index: 0, term: 0 }) {
    if (!Number.isSafeInteger(start.index) || start.index < 0 || !Number.isSafeInteger(start.term) || start.term < 0) {
      throw new RaftInvariantError(`invalid log start ${start.index}/${start.term}`);
    }
    this.start = start.index;
    this.startTerm = start.term;
    for (const entry of entries) this.appendOne(entry);
  }

  /** The compaction point: entries up to here live only in a snapshot. */
  get startIndex(): number {
    return this.start;
  }

  /** The first index still held (may be past the end when the log holds nothing after its start). */
  get firstIndex(): number {
    return this.start + 1;
  }

  get lastIndex(): number {
    return this.start + this.entries.length;
  }

  get lastTerm(): number {
    return this.term(this.lastIndex)!;
  }

  /** The term of the entry at `index`: known from the log start up to the end, `undefined` outside. */
  term(index: number): number | undefined {
    if (index === this.start) return this.startTerm;
    if (index < this.start) return undefined;
    return this.entries[index - this.start - 1]?.term;
  }

  entry(index: number): Entry | undefined {
    return index > this.start ? this.entries[index - this.start - 1] : undefined;
  }

  /** Entries `from..to` inclusive, clamped to what the log holds. */
  slice(from: number, to = this.lastIndex): Entry[] {
    const lo = Math.max(from, this.start + 1) - this.start - 1;
    const hi = Math.min(to, this.lastIndex) - this.start;
    return hi > lo ? this.entries.slice(lo, hi) : [];
  }

  /**
   * Entries from `from`, at most `maxEntries` of them and at most about `maxBytes` of commands, but
   * always at least one when there is one, so an oversized entry still makes progress.
   */
  sliceForAppend(from: number, maxEntries: number, maxBytes: number): Entry[] {
    if (from <= this.start) throw new RaftInvariantError(`entry ${from} was compacted (log starts after ${this.start})`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex && out.length < maxEntries; index++) {
      const entry = this.entries[index - this.start - 1]!;
      bytes += entry.command.byteLength;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  append(entries: readonly Entry[]): void {
    for (const entry of entries) this.appendOne(entry);
  }

  /** Removes every entry with `index >= from`; what was compacted cannot be removed. */
  truncate(from: number): void {
    if (from <= this.start) throw new RaftInvariantError(`cannot truncate from index ${from}: the log starts after ${this.start}`);
    this.entries.length = Math.min(this.entries.length, from - this.start - 1);
  }

  /**
   * Drops every entry up to `index`, which must be held: the log then starts after it, remembering
   * its term. Compacting to or below the current start changes nothing.
   */
  compact(index: number): void {
    if (index <= this.start) return;
    if (index > this.lastIndex) throw new RaftInvariantError(`cannot compact to ${index}: the log ends at ${this.lastIndex}`);
    this.startTerm = this.term(index)!;
    this.entries = this.entries.slice(index - this.start);
    this.start = index;
  }

  /** Throws the whole log away: it now starts after `start` (an installed snapshot). */
  reset(start: LogStart): void {
    this.entries = [];
    this.start = start.index;
    this.startTerm = start.term;
  }

  /** §5.4.1: a log is at least as up to date if its last term is higher, or equal with an index at least as high. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** The first index holding `term`, scanning back from `from` (for the fast-backtracking hint). */
  firstIndexOfTerm(term: number, from: number): number {
    let index = Math.min(from, this.lastIndex);
    while (index > this.start + 1 && this.term(index - 1) === term) index--;
    return index;
  }

  /** The last index at or below `atOrBelow` whose term is `term`, or 0 when the log holds no such entry. */
  lastIndexOfTerm(term: number, atOrBelow: number): number {
    for (let index = Math.min(atOrBelow, this.lastIndex); index >= Math.max(this.start, 1); index--) {
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
