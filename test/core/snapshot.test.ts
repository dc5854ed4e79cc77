import { describe, expect, it } from 'vitest';
import { RaftCore } from '../../lib/core/raft.js';
import type { AppendEntriesRequest, AppendEntriesResponse, Entry, InstallSnapshotRequest, InstallSnapshotResponse, Message } from '../../lib/core/types.js';
import { TestCluster } from './cluster.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const entry = (index: number, term: number, cmd = `c${index}`): Entry => ({ index, term, type: 'command', command: bytes(cmd) });
const isSnapshot = (m: Message): m is InstallSnapshotRequest => m.type === 'InstallSnapshot';

function follower(entries: Entry[], term = 3, commit = 0): RaftCore {
  return new RaftCore(
    { id: 2, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 },
    { hardState: { term, vote: 0, commit }, entries, baseConfiguration: { voters: [1, 2, 3] }, appliedIndex: 0 },
  );
}

function install(index: number, term: number, over: Partial<InstallSnapshotRequest> = {}): InstallSnapshotRequest {
  return { type: 'InstallSnapshot', from: 1, to: 2, term: 3, snapshot: { index, term, configuration: { voters: [1, 2, 3] } }, ...over };
}

function snapshotReply(core: RaftCore): { ready: ReturnType<RaftCore['ready']>; reply: InstallSnapshotResponse } {
  const ready = core.ready();
  return { ready, reply: ready.messages.find((m): m is InstallSnapshotResponse => m.type === 'InstallSnapshotResponse')! };
}

/** A 3-node cluster where node 3 was cut off while `n` commands were committed, and node 1 then compacted. */
function laggingCluster(n: number, compactTo?: number): TestCluster {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.partition([1, 2], [3]);
  for (let i = 0; i < n; i++) c.propose(1, `k${i}`);
  c.stabilize();
  const applied = c.node(1).appliedIndex;
  c.compact(1, applied, compactTo ?? applied);
  c.heal();
  return c;
}

describe('log compaction and InstallSnapshot', () => {
  it('a follower whose entries were compacted on the leader is caught up with a snapshot, then with entries', () => {
    const c = laggingCluster(20);
    expect(c.node(1).logStartIndex).toBe(21);
    expect(c.node(1).log()).toEqual([]);
    c.sent.length = 0;
    for (let i = 0; i < 5; i++) c.propose(1, `after${i}`);
    c.tick(1);
    c.stabilize();
    const snapshots = c.sent.filter(isSnapshot);
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.snapshot).toMatchObject({ index: 21, configuration: { voters: [1, 2, 3] } });
    // The follower's state machine holds exactly the leader's commands, in order, from the snapshot and then the log.
    expect(c.appliedCommands(3)).toEqual(c.appliedCommands(1));
    expect(c.appliedCommands(3)).toHaveLength(25);
    expect(c.node(3).commitIndex).toBe(26);
    expect(c.disks.get(3)!.logStart).toEqual({ index: 21, term: c.node(1).term });
    expect(c.disks.get(3)!.entries.map((e) => e.index)).toEqual([22, 23, 24, 25, 26]);
  });

  it('keeps trailing entries so that a follower only a little behind needs no snapshot', () => {
    const c = laggingCluster(20, 5); // snapshot at 21 but the log keeps 6..21
    c.node(3); // node 3 has entry 1 (the no-op) only
    c.disks.get(3);
    c.sent.length = 0;
    c.tick(1);
    c.stabilize();
    // Node 3 matched up to 1 (the no-op): it needs entry 2+, compacted only up to 5 → snapshot.
    expect(c.sent.filter(isSnapshot)).toHaveLength(1);
    const d = laggingCluster(0);
    expect(d.node(1).logStartIndex).toBe(1);
    const e = new TestCluster([1, 2, 3]);
    e.elect(1);
    for (let i = 0; i < 10; i++) e.propose(1, `x${i}`);
    e.stabilize();
    e.partition([1, 2], [3]);
    for (let i = 0; i < 10; i++) e.propose(1, `y${i}`);
    e.stabilize();
    e.compact(1, e.node(1).appliedIndex, 11); // node 3 has 11 entries: what it lacks is still there
    e.heal();
    e.sent.length = 0;
    for (let i = 0; i < 5; i++) e.tick(1), e.stabilize(); // silent heartbeats make the leader probe node 3 again
    expect(e.node(3).commitIndex).toBe(21);
    expect(e.sent.filter(isSnapshot)).toHaveLength(0);
    expect(e.appliedCommands(3)).toEqual(e.appliedCommands(1));
  });

  it('the entries after a snapshot that agree with it are kept; everything is replaced when they do not', () => {
    const keep = follower([entry(1, 1), entry(2, 2), entry(3, 3), entry(4, 3)]);
    keep.step(install(3, 3));
    const kept = snapshotReply(keep);
    expect(kept.reply).toMatchObject({ matchIndex: 3, term: 3 });
    expect(kept.ready.snapshot).toMatchObject({ index: 3, term: 3 });
    expect(kept.ready.truncateFrom).toBeUndefined();
    expect(keep.log().map((e) => e.index)).toEqual([4]);
    expect(keep.logStartIndex).toBe(3);
    expect(keep.commitIndex).toBe(3);
    expect(kept.ready.committedEntries).toEqual([]); // the snapshot replaces applying 1..3

    const replace = follower([entry(1, 1), entry(2, 2), entry(3, 2), entry(4, 2)]);
    replace.step(install(3, 3));
    const replaced = snapshotReply(replace);
    expect(replaced.reply.matchIndex).toBe(3);
    expect(replaced.ready.truncateFrom).toBe(4); // the stale suffix goes; the snapshot drops the rest
    expect(replace.log()).toEqual([]);
    expect(replace.lastIndex).toBe(3);
    // The next AppendEntries after the snapshot passes the consistency check.
    replace.step({ type: 'AppendEntries', from: 1, to: 2, term: 3, prevLogIndex: 3, prevLogTerm: 3, entries: [entry(4, 3)], leaderCommit: 4 });
    const next = replace.ready();
    expect(next.messages.find((m): m is AppendEntriesResponse => m.type === 'AppendEntriesResponse')).toMatchObject({ success: true, matchIndex: 4 });
    expect(next.committedEntries.map((e) => e.index)).toEqual([4]);
  });

  it('a snapshot that does not go beyond the commit index changes nothing and answers with the commit index', () => {
    const f = follower([entry(1, 1), entry(2, 2), entry(3, 3)], 3, 3);
    f.step(install(2, 2));
    const { ready, reply } = snapshotReply(f);
    expect(reply.matchIndex).toBe(3);
    expect(ready.snapshot).toBeUndefined();
    expect(f.log()).toHaveLength(3);
  });

  it('a snapshot from a stale term is refused and changes nothing', () => {
    const f = follower([entry(1, 1)], 5);
    f.step(install(10, 4, { term: 4 }));
    const { ready, reply } = snapshotReply(f);
    expect(reply).toMatchObject({ matchIndex: 0, term: 5 });
    expect(ready.snapshot).toBeUndefined();
    expect(f.lastIndex).toBe(1);
    expect(f.commitIndex).toBe(0);
  });

  it('a snapshot from a newer term makes the receiver a follower of its sender', () => {
    const f = follower([entry(1, 1)], 2);
    f.step(install(5, 3, { term: 3 }));
    const { ready } = snapshotReply(f);
    expect(ready.hardState).toMatchObject({ term: 3 });
    expect(f.leaderId).toBe(1);
    expect(f.commitIndex).toBe(5);
  });

  it('an AppendEntries from before the follower\'s compaction point is answered with its commit index', () => {
    const f = follower([entry(1, 1), entry(2, 2), entry(3, 3)]);
    f.step(install(3, 3));
    f.ready();
    f.step({ type: 'AppendEntries', from: 1, to: 2, term: 3, prevLogIndex: 1, prevLogTerm: 1, entries: [entry(2, 2)], leaderCommit: 3 });
    const reply = f.ready().messages.find((m): m is AppendEntriesResponse => m.type === 'AppendEntriesResponse');
    expect(reply).toMatchObject({ success: true, matchIndex: 3 });
    expect(f.logStartIndex).toBe(3);
  });

  it('a snapshot reported failed is sent again at the next heartbeat; one never answered, after two election timeouts', () => {
    const c = laggingCluster(10);
    c.sent.length = 0;
    // The leader notices node 3 does not answer (silent heartbeats), probes, and finds its entries compacted.
    for (let i = 0; i < 5 && c.sent.filter(isSnapshot).length === 0; i++) {
      c.tick(1);
      c.process(1);
    }
    expect(c.sent.filter(isSnapshot)).toHaveLength(1);
    c.queue = c.queue.filter((m) => !isSnapshot(m)); // lost
    c.tick(1);
    c.process(1);
    expect(c.sent.filter(isSnapshot)).toHaveLength(1); // still waiting: nothing else is sent meanwhile
    c.node(1).snapshotFailed(3);
    c.process(1);
    expect(c.sent.filter(isSnapshot)).toHaveLength(1); // not at once: a transport failing at once would make a loop
    c.tick(1);
    c.process(1);
    expect(c.sent.filter(isSnapshot)).toHaveLength(2);
    // From now on every snapshot is lost without a word: the leader sends it again every two election timeouts.
    for (let i = 0; i < 45; i++) {
      c.tick(1);
      c.process(1);
      c.queue = c.queue.filter((m) => !isSnapshot(m));
      c.deliver();
      c.process(2);
      c.process(3);
      c.deliver();
    }
    expect(c.sent.filter(isSnapshot)).toHaveLength(4); // ~ at 0, 21, 42 ticks after the reported failure
    expect(c.node(1).role).toBe('leader');
    for (let i = 0; i < 25; i++) c.tick(1), c.stabilize();
    expect(c.appliedCommands(3)).toEqual(c.appliedCommands(1));
  });

  it('every AppendEntries names a known prevLogTerm while a follower waits for a snapshot', () => {
    const c = laggingCluster(10);
    c.sent.length = 0;
    for (let i = 0; i < 5; i++) {
      c.tick(1);
      c.process(1);
      c.queue = c.queue.filter((m) => !isSnapshot(m));
      c.deliver((m) => m.to !== 1);
      c.process(2);
      c.process(3);
      c.deliver();
    }
    const appends = c.sent.filter((m): m is AppendEntriesRequest => m.type === 'AppendEntries');
    expect(appends.length).toBeGreaterThan(0);
    for (const m of appends) expect(typeof m.prevLogTerm).toBe('number');
    expect(appends.filter((m) => m.to === 3).every((m) => m.prevLogIndex >= c.node(1).logStartIndex)).toBe(true);
  });

  it('a server restarted from a compacted disk keeps its configuration, commits and elects', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.propose(1, 'a');
    c.stabilize();
    c.tick(1);
    c.stabilize(); // the followers learn the commit index
    for (const id of [1, 2, 3]) c.compact(id, c.node(id).appliedIndex);
    for (const id of [1, 2, 3]) c.crash(id);
    for (const id of [1, 2, 3]) c.start(id);
    expect(c.node(2).logStartIndex).toBe(2);
    expect(c.node(2).configuration).toEqual({ voters: [1, 2, 3] });
    expect(c.appliedCommands(2)).toEqual(['a']);
    c.elect(2);
    c.propose(2, 'b');
    c.stabilize();
    c.tick(2);
    c.stabilize();
    for (const id of [1, 2, 3]) expect(c.appliedCommands(id)).toEqual(['a', 'b']);
  });

  it('compaction after a membership change keeps the new configuration as the base', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.node(1).proposeConfiguration([1, 2]);
    c.stabilize();
    for (let i = 0; i < 5; i++) c.tick(1), c.stabilize();
    expect(c.node(1).configuration?.voters).toEqual([1, 2]);
    c.compact(1, c.node(1).appliedIndex);
    expect(c.disks.get(1)!.baseConfiguration?.voters).toEqual([1, 2]);
    c.crash(1);
    c.start(1);
    expect(c.node(1).configuration).toMatchObject({ voters: [1, 2] });
    expect(c.node(1).configuration?.outgoing).toBeUndefined();
  });

  it('a server added after compaction is brought up with the snapshot and the change commits', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    for (let i = 0; i < 10; i++) c.propose(1, `v${i}`);
    c.stabilize();
    c.compact(1, c.node(1).appliedIndex);
    c.addJoiner(4);
    c.sent.length = 0;
    const change = c.node(1).proposeConfiguration([1, 2, 3, 4]);
    for (let i = 0; i < 10; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(c.sent.filter((m) => isSnapshot(m) && m.to === 4)).toHaveLength(1);
    expect(c.changes.get(1)).toContainEqual(expect.objectContaining({ id: change, status: 'committed' }));
    expect(c.appliedCommands(4)).toEqual(c.appliedCommands(1));
    expect(c.node(4).configuration?.voters).toEqual([1, 2, 3, 4]);
  });

  it('refuses what would break the log: compacting unapplied entries, a compacted log without a snapshot, a state machine behind the log', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    const { index } = c.propose(1, 'x');
    expect(() => c.node(1).snapshotMetadata(index)).toThrow(/no snapshot possible/);
    const options = { id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 };
    const hardState = { term: 2, vote: 0, commit: 0 };
    expect(() => new RaftCore(options, { hardState, entries: [entry(6, 2)], logStart: { index: 5, term: 2 } })).toThrow(/no snapshot/);
    const snapshot = { index: 5, term: 2, configuration: { voters: [1] } };
    expect(() => new RaftCore(options, { hardState, entries: [entry(6, 2)], logStart: { index: 5, term: 2 }, snapshot, appliedIndex: 3 })).toThrow(/restore the snapshot/);
    const ok = new RaftCore(options, { hardState, entries: [entry(6, 2)], logStart: { index: 5, term: 2 }, snapshot, appliedIndex: 5, baseConfiguration: { voters: [1] } });
    expect(ok.lastIndex).toBe(6);
    expect(ok.commitIndex).toBe(5);
  });
});
