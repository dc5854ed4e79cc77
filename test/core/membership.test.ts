import { describe, expect, it } from 'vitest';
import { ConfigurationChangeError } from '../../lib/core/errors.js';
import type { AppendEntriesRequest } from '../../lib/core/types.js';
import { TestCluster } from './cluster.js';

function settle(c: TestCluster, leader: number, rounds = 5): void {
  for (let i = 0; i < rounds; i++) {
    c.tick(leader);
    c.stabilize();
  }
}

describe('membership by joint consensus', () => {
  it('goes C_old → C_old,new → C_new through the log and reports the outcome', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.addJoiner(4);
    const id = c.node(1).proposeConfiguration([1, 2, 3, 4]);
    settle(c, 1, 10);
    expect(c.changes.get(1)).toEqual([{ id, status: 'committed', configuration: { voters: [1, 2, 3, 4] } }]);
    const configs = c.node(4).log().filter((e) => e.type === 'config').map((e) => e.config);
    expect(configs).toEqual([{ voters: [1, 2, 3, 4], outgoing: [1, 2, 3] }, { voters: [1, 2, 3, 4] }]);
    for (const n of [1, 2, 3, 4]) expect(c.node(n).configuration).toEqual({ voters: [1, 2, 3, 4] });
  });

  it('a new server catches up without a vote before C_old,new is appended', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    for (let i = 0; i < 20; i++) c.propose(1, `x${i}`);
    c.stabilize();
    c.addJoiner(4);
    c.partition([4], [1, 2, 3]); // 4 cannot catch up yet
    c.node(1).proposeConfiguration([1, 2, 3, 4]);
    settle(c, 1);
    expect(c.node(1).log().some((e) => e.type === 'config')).toBe(false);
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3] });
    c.heal();
    settle(c, 1);
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3, 4] });
  });

  it('gives up a change whose new server never catches up', () => {
    const c = new TestCluster([1, 2, 3], { catchUpTimeoutTicks: 20 });
    c.elect(1);
    const id = c.node(1).proposeConfiguration([1, 2, 3, 9]); // 9 does not exist
    settle(c, 1, 30);
    expect(c.changes.get(1)).toEqual([{ id, status: 'failed', reason: 'new servers did not catch up in time', configuration: { voters: [1, 2, 3] } }]);
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3] });
  });

  it('allows one change at a time', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.node(1).proposeConfiguration([1, 2]);
    expect(() => c.node(1).proposeConfiguration([1, 3])).toThrowError(expect.objectContaining({ reason: 'in-progress' }));
  });

  it('refuses invalid voter sets with a typed error', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    for (const bad of [[], [0], [1, 1], [1.5], [-2]]) {
      expect(() => c.node(1).proposeConfiguration(bad)).toThrow(ConfigurationChangeError);
    }
  });

  it('a new leader accepts a change only after its no-op commits', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([1], [2, 3]);
    const n2 = c.node(2);
    const leading = () => n2.role === 'leader';
    for (let i = 0; i < 100 && !leading(); i++) {
      c.tick(2);
      c.tick(3);
      for (let round = 0; round < 20 && !leading(); round++) {
        for (const id of [2, 3]) c.process(id);
        c.deliver();
      }
    }
    expect(n2.role).toBe('leader');
    c.partition([1], [2], [3]); // the no-op cannot reach a majority
    c.stabilize();
    expect(() => n2.proposeConfiguration([2, 3])).toThrowError(expect.objectContaining({ reason: 'leader-not-ready' }));
    c.heal();
    c.tick(2);
    c.stabilize();
    expect(() => n2.proposeConfiguration([2, 3])).not.toThrow();
  });

  it('during C_old,new an entry needs a majority of both C_old and C_new', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    for (const id of [4, 5, 6]) c.addJoiner(id);
    c.node(1).proposeConfiguration([1, 4, 5, 6]);
    // Let the new servers catch up and the joint entry be appended, but not committed.
    for (let i = 0; i < 3; i++) {
      c.tick(1);
      c.process(1);
      c.deliver((m) => m.type !== 'AppendEntries' || (m as AppendEntriesRequest).entries.every((e) => e.type !== 'config'));
      for (const id of [2, 3, 4, 5, 6]) c.process(id);
      c.deliver((m) => m.type === 'AppendEntriesResponse');
    }
    expect(c.node(1).configuration).toEqual({ voters: [1, 4, 5, 6], outgoing: [1, 2, 3] });
    c.queue = [];
    c.partition([1, 4, 5, 6], [2, 3]); // a majority of C_new, only 1 of 3 in C_old
    c.propose(1, 'needs-both');
    settle(c, 1, 8);
    expect(c.appliedCommands(1)).not.toContain('needs-both');
    c.heal();
    settle(c, 1, 8);
    expect(c.appliedCommands(1)).toContain('needs-both');
  });

  it('a leader outside C_new steps down once C_new commits, and stays quiet', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.node(1).proposeConfiguration([2, 3]);
    settle(c, 1, 6);
    expect(c.node(1).role).toBe('follower');
    expect(c.node(2).configuration).toEqual({ voters: [2, 3] });
    const term = c.node(2).term;
    for (let i = 0; i < 60; i++) {
      for (const id of [1, 2, 3]) c.tick(id);
      c.stabilize();
    }
    expect(c.node(1).role).toBe('follower'); // never campaigns
    expect([c.node(2).role, c.node(3).role]).toContain('leader');
    expect(c.node(2).term).toBe(term + 1);
  });

  it('a configuration takes effect when appended and is rolled back when its entry is truncated', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([1], [2, 3]);
    c.node(1).proposeConfiguration([1, 2]);
    c.stabilize();
    expect(c.node(1).configuration).toEqual({ voters: [1, 2], outgoing: [1, 2, 3] });
    // 2 and 3 elect a leader that never saw it; 1 rejoins and loses the uncommitted entry.
    for (let i = 0; i < 100 && c.node(2).role !== 'leader'; i++) {
      c.tick(2);
      c.tick(3);
      c.stabilize();
    }
    expect(c.node(2).role).toBe('leader');
    c.heal();
    settle(c, 2);
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3] });
    expect(c.node(1).log().some((e) => e.type === 'config')).toBe(false);
  });

  it('a removed server that never learned of its removal cannot disrupt the cluster', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([3], [1, 2]);
    c.node(1).proposeConfiguration([1, 2]);
    settle(c, 1, 6);
    expect(c.node(1).configuration).toEqual({ voters: [1, 2] });
    const term = c.node(1).term;
    c.heal();
    for (let i = 0; i < 100; i++) {
      for (const id of [1, 2, 3]) c.tick(id);
      c.stabilize();
    }
    expect(c.node(1).role).toBe('leader');
    expect(c.node(1).term).toBe(term);
    expect(c.node(2).term).toBe(term);
  });
});
