import { describe, expect, it } from 'vitest';
import type { AppendEntriesRequest, ReadState } from '../../lib/core/types.js';
import { TestCluster } from './cluster.js';

function readStates(c: TestCluster, id: number): ReadState[] {
  const out: ReadState[] = [];
  for (;;) {
    const r = c.process(id);
    if (!r) return out;
    out.push(...r.readStates);
  }
}

describe('ReadIndex (thesis §6.4)', () => {
  it('confirms a read only after a quorum answered a message sent after the read', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.propose(1, 'x');
    c.stabilize();
    // Messages already on their way before the read must not count.
    c.tick(1);
    c.process(1);
    const old = c.queue.splice(0);
    c.node(1).readIndex(7);
    expect(readStates(c, 1)).toEqual([]); // asking sent heartbeats; nobody has answered yet
    const fresh = c.queue.splice(0);
    c.queue = old;
    c.deliver();
    c.process(2);
    c.process(3);
    c.deliver();
    expect(readStates(c, 1)).toEqual([]); // answers to the old messages prove nothing
    c.queue = fresh;
    c.deliver((m) => m.to === 2);
    c.process(2);
    c.deliver();
    expect(readStates(c, 1)).toEqual([{ id: 7, index: c.node(1).commitIndex }]);
  });

  it('waits for the new leader to commit an entry of its term before fixing the read index', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([1], [2, 3]); // the no-op of the next term cannot commit yet
    const n2 = c.node(2);
    for (let i = 0; i < 100 && n2.role !== 'leader'; i++) {
      c.tick(2);
      c.tick(3);
      for (let round = 0; round < 20 && c.node(2).role !== 'leader'; round++) {
        c.process(2);
        c.process(3);
        c.deliver();
      }
    }
    c.partition([1], [2], [3]);
    c.node(2).readIndex(1);
    c.stabilize();
    expect(c.reads.get(2) ?? []).toEqual([]); // its commit index may still be behind the old leader's
    c.heal();
    c.tick(2);
    c.stabilize();
    const noop = c.node(2).log().at(-1)!;
    expect(noop.type).toBe('noop');
    expect(c.reads.get(2)).toEqual([{ id: 1, index: noop.index }]);
  });

  it('a single-server cluster confirms at once', () => {
    const c = new TestCluster([1]);
    c.elect(1);
    c.node(1).readIndex(3);
    expect(readStates(c, 1)).toEqual([{ id: 3, index: c.node(1).commitIndex }]);
  });

  it('stamps every AppendEntries with the read round', () => {
    const c = new TestCluster([1, 2]);
    c.elect(1);
    c.node(1).readIndex(1);
    c.process(1);
    const sent = c.sent.filter((m): m is AppendEntriesRequest => m.type === 'AppendEntries').at(-1)!;
    expect(sent.context).toBe(1);
  });
});
