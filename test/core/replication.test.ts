import { describe, expect, it } from 'vitest';
import { RaftCore } from '../../lib/core/raft.js';
import type { AppendEntriesRequest, AppendEntriesResponse, Entry } from '../../lib/core/types.js';
import { TestCluster } from './cluster.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const entry = (index: number, term: number, cmd = `c${index}`): Entry => ({ index, term, type: 'command', command: bytes(cmd) });

function follower(entries: Entry[], term = 3, commit = 0): RaftCore {
  return new RaftCore(
    { id: 2, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 },
    { hardState: { term, vote: 0, commit }, entries, baseConfiguration: { voters: [1, 2, 3] } },
  );
}

function append(over: Partial<AppendEntriesRequest>): AppendEntriesRequest {
  return { type: 'AppendEntries', from: 1, to: 2, term: 3, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, ...over };
}

function reply(core: RaftCore): AppendEntriesResponse {
  return core.ready().messages.find((m): m is AppendEntriesResponse => m.type === 'AppendEntriesResponse')!;
}

describe('replication', () => {
  it('rejects when the log has no entry at prevLogIndex, hinting its last index + 1', () => {
    const f = follower([entry(1, 1), entry(2, 1)]);
    f.step(append({ prevLogIndex: 5, prevLogTerm: 3 }));
    expect(reply(f)).toMatchObject({ success: false, rejectedIndex: 5, conflictTerm: 0, conflictIndex: 3 });
  });

  it('rejects on a term mismatch, hinting the conflicting term and its first index', () => {
    const f = follower([entry(1, 1), entry(2, 2), entry(3, 2), entry(4, 2)]);
    f.step(append({ prevLogIndex: 4, prevLogTerm: 3 }));
    expect(reply(f)).toMatchObject({ success: false, rejectedIndex: 4, conflictTerm: 2, conflictIndex: 2 });
  });

  it('a stale AppendEntries arriving after a newer one erases nothing that matches', () => {
    const f = follower([]);
    f.step(append({ entries: [entry(1, 3), entry(2, 3), entry(3, 3)] }));
    f.ready();
    f.step(append({ entries: [entry(1, 3)] })); // late duplicate of an earlier message
    const ready = f.ready();
    expect(ready.truncateFrom).toBeUndefined();
    expect(f.log().map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it('truncates from the first conflicting entry only', () => {
    const f = follower([entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]);
    f.step(append({ prevLogIndex: 1, prevLogTerm: 1, entries: [entry(2, 1), entry(3, 3, 'new')] }));
    const ready = f.ready();
    expect(ready.truncateFrom).toBe(3);
    expect(ready.entries.map((e) => `${e.term}/${e.index}`)).toEqual(['3/3']);
    expect(f.log().map((e) => `${e.term}/${e.index}`)).toEqual(['1/1', '1/2', '3/3']);
  });

  it('commits on a follower only what the message proved to match', () => {
    const f = follower([entry(1, 1), entry(2, 2), entry(3, 2)]);
    f.step(append({ prevLogIndex: 1, prevLogTerm: 1, entries: [], leaderCommit: 3 }));
    expect(f.commitIndex).toBe(1);
  });

  it('never truncates a committed entry', () => {
    const f = follower([entry(1, 1), entry(2, 1)], 3, 2);
    expect(() => f.step(append({ prevLogIndex: 0, entries: [entry(1, 3)] }))).toThrow(/committed/);
  });

  it('bounds each AppendEntries by maxEntriesPerAppend and maxBytesPerAppend, and pipelines', () => {
    const c = new TestCluster([1, 2], { maxEntriesPerAppend: 4, maxBytesPerAppend: 1000, maxInflightAppends: 3 });
    c.elect(1);
    c.sent.length = 0;
    for (let i = 0; i < 20; i++) c.propose(1, 'x'.repeat(100));
    c.process(1);
    const sent = c.sent.filter((m): m is AppendEntriesRequest => m.type === 'AppendEntries');
    expect(sent.map((m) => m.entries.length)).toEqual([4, 4, 4]); // three in flight at once, none acknowledged yet
    c.stabilize();
    expect(c.node(2).lastIndex).toBe(21);
    const big = new TestCluster([1, 2], { maxBytesPerAppend: 250 });
    big.elect(1);
    big.sent.length = 0;
    for (let i = 0; i < 5; i++) big.propose(1, 'y'.repeat(100));
    big.process(1);
    expect((big.sent.find((m) => m.type === 'AppendEntries') as AppendEntriesRequest).entries).toHaveLength(2);
  });

  it('backtracks a whole conflicting term per round trip', () => {
    const c = new TestCluster([1, 2, 3]);
    const common = Array.from({ length: 5 }, (_, i) => entry(i + 1, 1));
    // Node 3 led term 2 and wrote 30 entries nobody else got; nodes 1 and 2 wrote 30 others in term 3.
    c.disks.get(3)!.entries = [...common, ...Array.from({ length: 30 }, (_, i) => entry(i + 6, 2, 'stale'))];
    for (const id of [1, 2]) c.disks.get(id)!.entries = [...common, ...Array.from({ length: 30 }, (_, i) => entry(i + 6, 3, 'fresh'))];
    for (const id of [1, 2, 3]) {
      c.disks.get(id)!.hardState = { term: 3, vote: 0, commit: 5 };
      c.start(id);
    }
    c.partition([3], [1, 2]);
    c.elect(1);
    c.heal();
    c.sent.length = 0;
    c.tick(1);
    c.stabilize();
    const rejections = c.sent.filter((m) => m.type === 'AppendEntriesResponse' && m.from === 3 && !m.success);
    expect(rejections).toHaveLength(1); // one entry per round trip would take 30
    expect(c.node(3).log()).toEqual(c.node(1).log());
  });

  it('recovers from a lost AppendEntries in the pipeline', () => {
    const c = new TestCluster([1, 2]);
    c.elect(1);
    c.propose(1, 'a');
    c.process(1);
    c.queue = []; // the network loses it
    c.propose(1, 'b');
    c.stabilize();
    for (let i = 0; i < 5; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(c.appliedCommands(2)).toEqual(['a', 'b']);
  });
});

describe('commit and apply', () => {
  it('a new leader appends a no-op of its term and commits it by majority', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    const first = c.node(1).log()[0]!;
    expect(first).toMatchObject({ index: 1, term: c.node(1).term, type: 'noop' });
    expect(c.node(1).commitIndex).toBe(1);
  });

  it('commits with a majority while one follower is down (the Go model needed every peer)', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.crash(3);
    c.propose(1, 'x');
    c.stabilize();
    expect(c.appliedCommands(1)).toEqual(['x']);
  });

  it('does not commit without a majority', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([1], [2, 3]);
    c.propose(1, 'x');
    c.stabilize();
    expect(c.node(1).commitIndex).toBe(1);
  });

  it('the leader counts itself only after its own write is durable', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.crash(3);
    c.propose(1, 'x');
    const ready = c.node(1).ready(); // handed out but not yet persisted/advanced
    for (const m of ready.messages) c.queue.push(m);
    c.deliver();
    c.process(2);
    c.deliver();
    expect(c.node(1).commitIndex).toBe(1); // 2 acked, but the leader's own copy is not durable: 1 of 3
    c.node(1).advance(ready);
    expect(c.node(1).commitIndex).toBe(2);
  });

  it('hands out committed entries in order, gapless, each once', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    for (let i = 0; i < 50; i++) {
      c.propose(1, `v${i}`);
      if (i % 7 === 0) c.stabilize();
    }
    c.stabilize();
    c.tick(1);
    c.stabilize();
    for (const id of [1, 2, 3]) {
      const indexes = c.applied.get(id)!.map((e) => e.index);
      expect(indexes).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    }
  });

  it('rejects a bad recovered state instead of starting on it', () => {
    expect(
      () =>
        new RaftCore(
          { id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 },
          { hardState: { term: 1, vote: 0, commit: 0 }, entries: [entry(1, 2)], baseConfiguration: { voters: [1] } },
        ),
    ).toThrow(/above the stored current term/);
    expect(
      () =>
        new RaftCore(
          { id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 },
          { hardState: { term: 1, vote: 0, commit: 0 }, entries: [entry(2, 1)], baseConfiguration: { voters: [1] } },
        ),
    ).toThrow(/gap/);
  });
});
