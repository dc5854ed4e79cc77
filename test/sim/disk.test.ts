import { describe, expect, it } from 'vitest';
import type { Entry, Ready } from '../../lib/core/types.js';
import { Disk } from './disk.js';

const entry = (index: number, term: number): Entry => ({ index, term, type: 'noop', command: new Uint8Array(0) });
const ready = (r: Partial<Ready>): Ready => ({ entries: [], messages: [], committedEntries: [], configurationChanges: [], readStates: [], ...r });

describe('Disk', () => {
  it('saves hard state, truncation and appends atomically and loads them back', () => {
    const disk = new Disk({ voters: [1, 2, 3] });
    expect(disk.save(ready({ hardState: { term: 1, vote: 2, commit: 0 }, entries: [entry(1, 1), entry(2, 1), entry(3, 1)] }))).toBeUndefined();
    expect(disk.save(ready({ hardState: { term: 2, vote: 0, commit: 1 }, truncateFrom: 2, entries: [entry(2, 2)] }))).toBeUndefined();
    const loaded = disk.load();
    expect(loaded.hardState).toEqual({ term: 2, vote: 0, commit: 1 });
    expect(loaded.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/2']);
    expect(loaded.baseConfiguration).toEqual({ voters: [1, 2, 3] });
    expect(loaded.appliedIndex).toBe(0);
  });

  it('refuses a batch that leaves a gap, without changing anything', () => {
    const disk = new Disk(undefined);
    disk.save(ready({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [entry(1, 1)] }));
    expect(disk.save(ready({ hardState: { term: 5, vote: 0, commit: 0 }, entries: [entry(3, 1)] }))).toMatch(/does not follow/);
    expect(disk.hardState.term).toBe(1);
    expect(disk.lastIndex).toBe(1);
    expect(disk.load().baseConfiguration).toBeUndefined();
  });

  it('forgets the vote only when asked to (the forget-vote-on-restart control)', () => {
    const disk = new Disk(undefined);
    disk.save(ready({ hardState: { term: 3, vote: 2, commit: 0 } }));
    expect(disk.load().hardState.vote).toBe(2);
    expect(disk.load({ forgetVote: true }).hardState).toEqual({ term: 3, vote: 0, commit: 0 });
    expect(Disk.needsWrite(ready({}))).toBe(false);
    expect(Disk.needsWrite(ready({ truncateFrom: 4 }))).toBe(true);
  });
});
