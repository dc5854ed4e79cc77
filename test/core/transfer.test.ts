import { describe, expect, it } from 'vitest';
import { NotLeaderError } from '../../lib/core/errors.js';
import { TestCluster } from './cluster.js';

describe('leadership transfer (thesis §3.10)', () => {
  it('brings the target up to date, tells it to campaign, and the others vote despite their lease', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    const term = c.node(1).term;
    c.partition([1], [2, 3]);
    c.propose(1, 'late'); // 2 is behind when the transfer starts
    c.stabilize();
    c.heal();
    c.node(1).transferLeadership(2);
    expect(() => c.propose(1, 'during')).toThrow(NotLeaderError);
    c.sent.length = 0;
    for (let i = 0; i < 5 && c.node(2).role !== 'leader'; i++) {
      c.tick(1); // heartbeats: 2 catches up, then gets TimeoutNow
      c.stabilize();
    }
    expect(c.sent.some((m) => m.type === 'TimeoutNow' && m.to === 2)).toBe(true);
    expect(c.sent.some((m) => m.type === 'RequestVote' && m.transfer && !m.preVote)).toBe(true);
    expect(c.node(2).role).toBe('leader');
    expect(c.node(2).term).toBe(term + 1);
    expect(c.node(1).role).toBe('follower');
    expect(c.node(2).log().some((e) => new TextDecoder().decode(e.command) === 'late')).toBe(true);
  });

  it('is abandoned after an election timeout if the target does not take over', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([2], [1, 3]);
    c.node(1).transferLeadership(2);
    for (let i = 0; i < 12; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(c.node(1).role).toBe('leader');
    expect(c.node(1).transferee).toBe(0);
    expect(() => c.propose(1, 'again')).not.toThrow();
  });

  it('refuses a target that is not a voter', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    expect(() => c.node(1).transferLeadership(9)).toThrow(/not a voter/);
  });
});
