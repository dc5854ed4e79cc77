import { describe, expect, it } from 'vitest';
import { ConfigurationChangeError } from '../../lib/core/errors.js';
import type { Message } from '../../lib/core/types.js';
import { TestCluster } from './cluster.js';

function withLearner(): TestCluster {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.addJoiner(4);
  const id = c.node(1).proposeConfiguration([1, 2, 3], undefined, [4]);
  c.stabilize();
  expect(c.changes.get(1)).toContainEqual(expect.objectContaining({ id, status: 'committed' }));
  return c;
}

describe('learners (non-voting members)', () => {
  it('a learner receives and applies the log, with one configuration entry and no joint phase', () => {
    const c = withLearner();
    const configs = c.node(1).log().filter((e) => e.type === 'config');
    expect(configs.map((e) => e.config)).toEqual([{ voters: [1, 2, 3], learners: [4] }]);
    c.propose(1, 'a');
    c.stabilize();
    c.tick(1);
    c.stabilize();
    expect(c.appliedCommands(4)).toEqual(['a']);
    expect(c.node(4).configuration).toEqual({ voters: [1, 2, 3], learners: [4] });
  });

  it('does not count toward a majority: the leader with only a learner cannot commit', () => {
    const c = withLearner();
    c.partition([1, 4], [2, 3]);
    const { index } = c.propose(1, 'lonely');
    for (let i = 0; i < 3; i++) c.tick(1), c.stabilize();
    expect(c.node(4).lastIndex).toBeGreaterThanOrEqual(index); // the learner has it…
    expect(c.node(1).commitIndex).toBeLessThan(index); // …and that is not enough
  });

  it('never campaigns and its vote is never counted', () => {
    const c = withLearner();
    const sent: Message[] = [];
    c.crash(1);
    for (let i = 0; i < 200; i++) {
      c.tick(4);
      c.process(4);
    }
    for (const m of c.queue) sent.push(m);
    expect(sent.filter((m) => m.from === 4 && m.type === 'RequestVote')).toEqual([]);
    expect(c.node(4).role).toBe('follower');
    // With voter 3 down too, node 2 and the learner are two of four members but one of three voters: no leader.
    c.crash(3);
    for (let i = 0; i < 300; i++) {
      c.tick(2);
      c.tick(4);
      c.stabilize();
    }
    expect(c.sent.some((m) => m.type === 'RequestVote' && m.to === 4)).toBe(false); // a learner is not asked…
    const two = c.node(2);
    expect(two.role).toBe('pre-candidate');
    two.step({ type: 'RequestVoteResponse', from: 4, to: 2, term: two.term + 1, voteGranted: true, preVote: true });
    expect(two.role).toBe('pre-candidate'); // …and a grant from it does not count
    c.start(3);
    c.elect(2);
    expect(c.node(2).role).toBe('leader');
  });

  it('is promoted to voter through joint consensus', () => {
    const c = withLearner();
    const id = c.node(1).proposeConfiguration([1, 2, 3, 4], undefined, []);
    for (let i = 0; i < 5; i++) c.tick(1), c.stabilize();
    expect(c.changes.get(1)).toContainEqual(expect.objectContaining({ id, status: 'committed' }));
    const configs = c.node(1).log().filter((e) => e.type === 'config').map((e) => e.config);
    expect(configs.slice(1)).toEqual([{ voters: [1, 2, 3, 4], outgoing: [1, 2, 3] }, { voters: [1, 2, 3, 4] }]);
    // Now a voter: it can be elected.
    c.crash(1);
    c.tick(2, 20);
    c.tick(3, 20);
    c.elect(4);
    expect(c.node(4).role).toBe('leader');
  });

  it('refuses a voter becoming a learner in one change, and a node both voter and learner', () => {
    const c = withLearner();
    expect(() => c.node(1).proposeConfiguration([1, 2], undefined, [3, 4])).toThrow(ConfigurationChangeError);
    expect(() => c.node(1).proposeConfiguration([1, 2, 3], undefined, [3])).toThrow(/both a voter and a learner/);
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3], learners: [4] });
  });

  it('keeps its learners across a voter change and removes one with a learners-only change', () => {
    const c = withLearner();
    c.addJoiner(5);
    c.node(1).proposeConfiguration([1, 2, 3, 5]);
    for (let i = 0; i < 8; i++) c.tick(1), c.stabilize();
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3, 5], learners: [4] });
    c.node(1).proposeConfiguration([1, 2, 3, 5], undefined, []);
    for (let i = 0; i < 3; i++) c.tick(1), c.stabilize();
    expect(c.node(1).configuration).toEqual({ voters: [1, 2, 3, 5] });
    expect(c.node(1).matchIndexes().has(4)).toBe(false); // no longer replicated to
  });

  it('a learner that fell behind a compaction is caught up with a snapshot', () => {
    const c = withLearner();
    c.partition([1, 2, 3], [4]);
    for (let i = 0; i < 10; i++) c.propose(1, `x${i}`);
    c.stabilize();
    c.compact(1, c.node(1).appliedIndex);
    c.heal();
    for (let i = 0; i < 8; i++) c.tick(1), c.stabilize();
    expect(c.sent.some((m) => m.type === 'InstallSnapshot' && m.to === 4)).toBe(true);
    expect(c.appliedCommands(4)).toEqual(c.appliedCommands(1));
  });
});
