import { afterEach, describe, expect, it } from 'vitest';
import { firstValueFrom, toArray, filter, take } from 'rxjs';
import { LogCompactedError } from '../../lib/core/errors.js';
import type { RaftNodeEvent } from '../../lib/node/raft-node.js';
import { SessionTable } from '../../lib/node/session-table.js';
import { decodeSnapshot, encodeSnapshot } from '../../lib/node/snapshot-envelope.js';
import { holdsEventually as eventually } from '../support/wait.js';
import { MemoryCluster } from './memory-cluster.js';

const clusters: MemoryCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stopAll()));
});

function cluster(ids: number[], every = 50, trailing = 10): MemoryCluster {
  const c = new MemoryCluster(ids, { snapshotEvery: every, snapshotTrailingEntries: trailing });
  clusters.push(c);
  return c;
}

async function write(c: MemoryCluster, from: number, count: number): Promise<void> {
  const leader = await c.leader();
  for (let i = from; i < from + count; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, from + count - i) }, (_, j) => leader.command(`set k${(i + j) % 37} v${i + j}`)));
  }
}

describe('snapshots and log compaction in the node', { timeout: 30_000 }, () => {
  it('are staggered: servers that apply the same log take their snapshots at different indexes', async () => {
    const c = cluster([1, 2, 3], 100);
    await c.startAll();
    const leader = await c.leader();
    const snapshotIndexes = async (count: number) => {
      for (let i = 0; i < count; i++) await leader.command(`set k${i % 7} ${i}`); // one at a time: one entry per apply
      await eventually(() => expect([...c.nodes.values()].map((n) => n.appliedIndex)).toEqual([1, 2, 3].map(() => leader.commitIndex)));
      return [...c.nodes.values()].map((n) => n.status().snapshotIndex);
    };
    const apart = (indexes: number[]) => {
      for (const [i, a] of indexes.entries()) for (const b of indexes.slice(i + 1)) expect(Math.abs(a - b), `snapshots at ${indexes.join(', ')}`).toBeGreaterThanOrEqual(10);
    };
    // The first after a start comes early (at 50 to 100 entries), by an amount that depends on the id …
    const first = await snapshotIndexes(130);
    for (const index of first) expect(index).toBeGreaterThanOrEqual(50);
    for (const index of first) expect(index).toBeLessThanOrEqual(100 + 5);
    apart(first);
    // … and every later one is a whole interval after the previous one, so they stay apart.
    const second = await snapshotIndexes(100);
    expect(second).toEqual(first.map((index) => index + 100));
    apart(second);
  });

  it('compacts its stored log every snapshotEvery entries, and restarts from the snapshot plus the tail', async () => {
    const c = cluster([1, 2, 3]);
    await c.startAll();
    await write(c, 0, 230);
    const leader = await c.leader();
    await eventually(() => expect(leader.status().snapshotIndex).toBeGreaterThanOrEqual(200));
    const id = leader.id;
    const loaded = await c.storages.get(id)!.load();
    expect(loaded.logStart!.index).toBeGreaterThan(150);
    expect(loaded.entries.length).toBeLessThan(50 + 10 + 20 + 5); // bounded: snapshotEvery + trailing + what arrived since
    expect(loaded.snapshot!.index).toBeGreaterThanOrEqual(loaded.logStart!.index);
    expect(loaded.snapshot!.index).toBeLessThanOrEqual(leader.status().snapshotIndex);
    const before = new Map(c.machines.get(id)!.data);
    await c.stop(id);
    const atStop = (await c.storages.get(id)!.load()).snapshot!.index;
    const restarted = await c.start(id);
    await eventually(() => expect(restarted.appliedIndex).toBeGreaterThanOrEqual(atStop));
    const machine = c.machines.get(id)!;
    expect(machine.restoredAt).toEqual([atStop]);
    // Only the entries after the snapshot were applied again.
    expect(Math.min(...machine.appliedIndexes)).toBeGreaterThan(atStop);
    await eventually(() => expect(machine.data).toEqual(before));
  });

  it('brings a follower that missed compacted entries up to date with InstallSnapshot', async () => {
    const c = cluster([1, 2, 3]);
    await c.startAll();
    const leader = await c.leader();
    const lagging = [1, 2, 3].find((id) => id !== leader.id)!;
    await c.stop(lagging);
    await write(c, 0, 300);
    const sent = firstValueFrom(leader.events$.pipe(filter((e): e is Extract<RaftNodeEvent, { type: 'snapshot' }> => e.type === 'snapshot' && e.kind === 'sent')));
    const node = await c.start(lagging);
    const event = await sent;
    expect(event.to).toBe(lagging);
    await eventually(() => expect(node.appliedIndex).toBe(leader.commitIndex), 10_000);
    expect(c.machines.get(lagging)!.restoredAt.length).toBeGreaterThanOrEqual(1); // another if the leader compacted past it again meanwhile
    expect(c.machines.get(lagging)!.data).toEqual(c.machines.get(leader.id)!.data);
    const stored = await c.storages.get(lagging)!.load();
    expect(stored.logStart!.index).toBe(c.machines.get(lagging)!.restoredAt.at(-1));
    // It keeps working as a follower: new commands reach it.
    await leader.command('set after snapshot');
    await eventually(() => expect(c.machines.get(lagging)!.data.get('after')).toBe('snapshot'));
    // Its next own snapshot is staggered again, not in step with the leader's, whose index it shares.
    const installed = node.status().snapshotIndex;
    expect(installed).toBe(leader.status().snapshotIndex);
    for (let i = 0; i < 60; i++) await leader.command(`set s${i} ${i}`); // one at a time: one entry per apply
    await eventually(() => expect(node.appliedIndex).toBe(leader.commitIndex));
    expect(leader.status().snapshotIndex).toBeGreaterThan(installed);
    expect(node.status().snapshotIndex).toBeGreaterThan(installed);
    expect(node.status().snapshotIndex).not.toBe(leader.status().snapshotIndex);
  });

  it('a server added after compaction joins through InstallSnapshot and becomes a voter', async () => {
    const c = cluster([1, 2, 3]);
    await c.startAll();
    await write(c, 0, 200);
    const leader = await c.leader();
    const joiner = await c.start(4, true);
    await leader.addMember({ id: 4 });
    await eventually(() => expect(joiner.status().members.map((m) => m.id)).toEqual([1, 2, 3, 4]));
    await eventually(() => expect(c.machines.get(4)!.data).toEqual(c.machines.get(leader.id)!.data));
    expect(c.machines.get(4)!.restoredAt.length).toBeGreaterThanOrEqual(1);
  });

  it('commitsFrom an index that was compacted fails with LogCompactedError instead of skipping', async () => {
    const c = cluster([1]);
    await c.startAll();
    await write(c, 0, 120);
    const node = c.node(1);
    await eventually(() => expect(node.status().logStartIndex).toBeGreaterThan(1));
    await expect(firstValueFrom(node.commitsFrom(1))).rejects.toBeInstanceOf(LogCompactedError);
    const from = node.status().logStartIndex + 1;
    const replayed = await firstValueFrom(node.commitsFrom(from).pipe(take(3), toArray()));
    expect(replayed.map((e) => e.index)).toEqual([from, from + 1, from + 2]);
  });

  it('a state machine without snapshot() keeps the whole log', async () => {
    const c = cluster([1]);
    await c.startAll();
    const machine = c.machines.get(1)! as { snapshot?: unknown };
    delete (machine as Record<string, unknown>).snapshot;
    Object.defineProperty(machine, 'snapshot', { value: undefined });
    await write(c, 0, 120);
    expect(c.node(1).status().snapshotIndex).toBe(0);
    expect((await c.storages.get(1)!.load()).entries.length).toBeGreaterThanOrEqual(120);
  });
});

describe('session table in snapshots', () => {
  it('survives a snapshot: a duplicate after restore gets the first answer, not a second application', () => {
    const table = new SessionTable(1000);
    const session = { clientId: 'abc', sequence: 1, lowestUnanswered: 1 };
    expect(table.decide(session, 10)).toEqual({ kind: 'apply' });
    table.record(session, { ok: true, value: { answer: 42 } });
    const failed = { clientId: 'abc', sequence: 2, lowestUnanswered: 1 };
    table.decide(failed, 11);
    table.record(failed, { ok: false, error: new RangeError('nope') });
    const bytes = encodeSnapshot({ sessions: table.toState(), state: new Uint8Array([1, 2, 3]) });
    const decoded = decodeSnapshot(bytes);
    expect([...decoded.state]).toEqual([1, 2, 3]);
    const restored = SessionTable.fromState(decoded.sessions, 1000);
    expect(restored.decide(session, 12)).toEqual({ kind: 'duplicate', outcome: { ok: true, value: { answer: 42 } } });
    const again = restored.decide(failed, 13);
    expect(again.kind).toBe('duplicate');
    const error = (again as { outcome: { ok: false; error: Error } }).outcome.error;
    expect(error).toBeInstanceOf(Error);
    expect([error.name, error.message]).toEqual(['RangeError', 'nope']);
    expect(restored.decide({ clientId: 'abc', sequence: 3, lowestUnanswered: 3 }, 14)).toEqual({ kind: 'apply' });
  });

  it('refuses bytes that are not a snapshot', () => {
    expect(() => decodeSnapshot(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]))).toThrow(/magic/);
    const good = encodeSnapshot({ sessions: new SessionTable(10).toState(), state: new Uint8Array(0) });
    expect(() => decodeSnapshot(good.subarray(0, good.byteLength - 3))).toThrow(/truncated/);
  });
});


describe('a server that joined with an empty store', { timeout: 30_000 }, () => {
  it('takes its own snapshots without a configuration before the entry that added it, and keeps running', async () => {
    const c = cluster([1, 2, 3], 40, 100); // trailing entries reach back before the entry that added node 4
    await c.startAll();
    await write(c, 0, 10);
    const leader = await c.leader();
    const joiner = await c.start(4, true);
    await leader.addMember({ id: 4 }); // caught up through entries: it holds 1..n with no configuration before its own addition
    await write(c, 10, 120); // past snapshotEvery on node 4 too
    await eventually(() => expect(joiner.status().snapshotIndex).toBeGreaterThan(0));
    expect(joiner.isRunning).toBe(true);
    const stored = await c.storages.get(4)!.load();
    expect(stored.logStart!.index).toBeGreaterThan(0);
    expect(stored.baseConfiguration).toBeDefined();
    await eventually(() => expect(c.machines.get(4)!.data).toEqual(c.machines.get(leader.id)!.data));
  });
});
