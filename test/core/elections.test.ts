import { describe, expect, it } from 'vitest';
import { RaftCore } from '../../lib/core/raft.js';
import type { Message, RequestVoteRequest, RequestVoteResponse } from '../../lib/core/types.js';
import { TestCluster } from './cluster.js';

const noState = { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], baseConfiguration: { voters: [1, 2, 3] } };

function ticksUntilCampaign(random: number, electionTimeoutTicks = 10): number {
  const core = new RaftCore({ id: 1, electionTimeoutTicks, heartbeatTicks: 1, random: () => random }, noState);
  for (let ticks = 1; ticks < 1000; ticks++) {
    core.tick();
    if (core.role !== 'follower') return ticks;
  }
  throw new Error('never campaigned');
}

function voteRequest(over: Partial<RequestVoteRequest>): RequestVoteRequest {
  return { type: 'RequestVote', from: 2, to: 1, term: 1, lastLogIndex: 0, lastLogTerm: 0, preVote: false, ...over };
}

function responses(ms: readonly Message[]): RequestVoteResponse[] {
  return ms.filter((m): m is RequestVoteResponse => m.type === 'RequestVoteResponse');
}

describe('elections', () => {
  it('draws the election timeout from [min, 2·min)', () => {
    expect(ticksUntilCampaign(0)).toBe(10);
    expect(ticksUntilCampaign(0.5)).toBe(15);
    expect(ticksUntilCampaign(0.9999)).toBe(19);
    expect(ticksUntilCampaign(0, 25)).toBe(25);
  });

  it('elects exactly one leader, which sends heartbeats every heartbeatTicks', () => {
    const c = new TestCluster([1, 2, 3], { heartbeatTicks: 3 });
    c.elect(1);
    expect([...c.nodes.values()].map((n) => n.role)).toEqual(['leader', 'follower', 'follower']);
    expect(c.node(2).leaderId).toBe(1);
    c.sent.length = 0;
    c.tick(1, 2);
    c.process(1);
    expect(c.sent.filter((m) => m.type === 'AppendEntries')).toHaveLength(0);
    c.tick(1);
    c.process(1);
    expect(c.sent.filter((m) => m.type === 'AppendEntries').map((m) => m.to)).toEqual([2, 3]);
  });

  it('uses the §5.4.1 up-to-date rule: last term first, then last index', () => {
    const entries = [
      { index: 1, term: 1, type: 'noop' as const, command: new Uint8Array() },
      { index: 2, term: 1, type: 'noop' as const, command: new Uint8Array() },
      { index: 3, term: 2, type: 'noop' as const, command: new Uint8Array() },
    ];
    const voter = () => new RaftCore({ id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 }, { ...noState, hardState: { term: 2, vote: 0, commit: 0 }, entries });
    const ask = (lastLogIndex: number, lastLogTerm: number) => {
      const v = voter();
      v.step(voteRequest({ term: 3, lastLogIndex, lastLogTerm }));
      return responses(v.ready().messages)[0]!.voteGranted;
    };
    expect(ask(1, 3)).toBe(true); // shorter log but a later last term wins (the Go model compared index and term separately)
    expect(ask(5, 1)).toBe(false); // longer log of an older term loses
    expect(ask(2, 2)).toBe(false); // same last term, shorter
    expect(ask(3, 2)).toBe(true); // same last term, same length
  });

  it('casts one vote per term, and the vote is in the same Ready as the reply', () => {
    const v = new RaftCore({ id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 }, noState);
    v.step(voteRequest({ from: 2, term: 1 }));
    v.step(voteRequest({ from: 3, term: 1 }));
    const ready = v.ready();
    expect(ready.hardState).toEqual({ term: 1, vote: 2, commit: 0 });
    expect(responses(ready.messages).map((r) => [r.to, r.voteGranted])).toEqual([
      [2, true],
      [3, false],
    ]);
  });

  it('keeps its vote across a restart', () => {
    const c = new TestCluster([1, 2, 3]);
    c.node(1).step(voteRequest({ from: 2, to: 1, term: 5 }));
    c.process(1);
    c.crash(1);
    const restarted = c.start(1);
    expect(restarted.term).toBe(5);
    expect(restarted.vote).toBe(2);
    restarted.step(voteRequest({ from: 3, to: 1, term: 5 }));
    expect(responses(restarted.ready().messages)[0]!.voteGranted).toBe(false);
  });

  it('PreVote: a partitioned node does not raise its term, so it cannot depose the leader on return', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    const term = c.node(1).term;
    c.partition([3], [1, 2]);
    for (let i = 0; i < 100; i++) {
      c.tick(3);
      c.tick(1);
      c.tick(2);
      c.stabilize();
    }
    expect(c.node(3).term).toBe(term);
    expect(c.node(3).role).toBe('pre-candidate');
    c.heal();
    c.tick(1);
    c.stabilize();
    expect(c.node(1).role).toBe('leader');
    expect(c.node(1).term).toBe(term);
    expect(c.node(3).leaderId).toBe(1);
  });

  it('without PreVote, the same partitioned node does raise its term (control)', () => {
    const c = new TestCluster([1, 2, 3], { preVote: false, checkQuorum: false });
    c.elect(1);
    const term = c.node(1).term;
    c.partition([3], [1, 2]);
    c.tick(3, 40);
    c.stabilize();
    expect(c.node(3).term).toBeGreaterThan(term);
  });

  it('CheckQuorum: a leader that hears from no quorum for an election timeout steps down', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    c.partition([1], [2, 3]);
    for (let i = 0; i < 25; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(c.node(1).role).toBe('follower');
    expect(c.node(1).leaderId).toBe(0);
  });

  it('a follower that hears from its leader ignores a higher-term vote request (leader lease)', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(1);
    const term = c.node(2).term;
    c.node(2).step(voteRequest({ from: 3, to: 2, term: term + 5, lastLogIndex: 99, lastLogTerm: term }));
    expect(c.node(2).term).toBe(term);
    expect(responses(c.node(2).ready().messages)).toHaveLength(0);
  });

  it('with lease reads, a server that just started refuses votes for an election timeout (a lease it granted outlives its restart)', () => {
    for (const leaseReads of [true, false]) {
      const v = new RaftCore({ id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.99, leaseReads }, { ...noState, hardState: { term: 3, vote: 2, commit: 0 } });
      for (let i = 0; i < 9; i++) v.tick();
      v.step(voteRequest({ from: 3, term: 4, lastLogIndex: 5, lastLogTerm: 3 }));
      if (leaseReads) {
        expect(v.term).toBe(3); // ignored: no term change, no answer
        expect(responses(v.ready().messages)).toHaveLength(0);
        v.step(voteRequest({ from: 3, term: 4, lastLogIndex: 5, lastLogTerm: 3, transfer: true }));
        expect(responses(v.ready().messages)).toMatchObject([{ voteGranted: true, term: 4 }]); // a leader's own handover is heard
      } else {
        expect(responses(v.ready().messages)).toMatchObject([{ voteGranted: true, term: 4 }]);
      }
    }
    const late = new RaftCore({ id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.99, leaseReads: true }, { ...noState, hardState: { term: 3, vote: 2, commit: 0 } });
    for (let i = 0; i < 10; i++) late.tick();
    late.step(voteRequest({ from: 3, term: 4, lastLogIndex: 5, lastLogTerm: 3 }));
    expect(responses(late.ready().messages)).toMatchObject([{ voteGranted: true, term: 4 }]);
  });

  it('with lease reads, keeps its promise not to vote after a stray higher-term answer made it forget the leader', () => {
    for (const leaseReads of [true, false]) {
      const f = new RaftCore({ id: 2, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.99, leaseReads }, { ...noState, hardState: { term: 3, vote: 1, commit: 0 } });
      for (let i = 0; i < 10; i++) f.tick(); // past its start-up promise
      f.step({ type: 'AppendEntries', from: 1, to: 2, term: 3, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 });
      f.ready();
      // An answer to an old vote request of its own, from a node already at term 4: it moves to 4, leader unknown.
      f.step({ type: 'RequestVoteResponse', from: 3, to: 2, term: 4, voteGranted: false, preVote: false });
      expect(f.term).toBe(4);
      expect(f.leaderId).toBe(0);
      f.ready();
      f.step(voteRequest({ from: 3, to: 2, term: 4, lastLogIndex: 9, lastLogTerm: 3 }));
      const [answer] = responses(f.ready().messages);
      // Without the lease, the vote goes; with it, not within an election timeout of hearing from node 1.
      expect(answer).toMatchObject({ voteGranted: !leaseReads, term: 4 });
      if (!leaseReads) continue;
      for (let i = 0; i < 10; i++) f.tick();
      f.step(voteRequest({ from: 3, to: 2, term: 4, lastLogIndex: 9, lastLogTerm: 3 }));
      expect(responses(f.ready().messages)).toMatchObject([{ voteGranted: true, term: 4 }]);
    }
  });

  it('ignores vote requests from servers outside its configuration whose log is behind (a removed server)', () => {
    const entries = [{ index: 1, term: 1, type: 'noop' as const, command: new Uint8Array() }];
    const v = new RaftCore({ id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 }, { ...noState, hardState: { term: 1, vote: 0, commit: 1 }, entries });
    v.step(voteRequest({ from: 9, term: 7, lastLogIndex: 0, lastLogTerm: 0 }));
    expect(v.term).toBe(1);
    expect(v.ready().messages).toHaveLength(0);
  });

  it('hears a candidate outside its configuration whose log is up to date (thesis §4.1)', () => {
    // The candidate was added by a configuration this server has not received yet.
    const v = new RaftCore({ id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0 }, noState);
    v.step(voteRequest({ from: 9, term: 7, lastLogIndex: 3, lastLogTerm: 2 }));
    expect(v.term).toBe(7);
    expect(responses(v.ready().messages)).toMatchObject([{ to: 9, voteGranted: true }]);
  });

  it('campaigns while its removal is not committed, if it votes in the configuration before', () => {
    // It appended C_new = [2,3] without itself, then crashed before C_new reached anyone: 2 and 3
    // still need its vote for C_old's majority, and its log is the newest.
    const config = (voters: number[], outgoing?: number[]) => ({ voters, ...(outgoing ? { outgoing } : {}) });
    const entries = [
      { index: 1, term: 1, type: 'noop' as const, command: new Uint8Array() },
      { index: 2, term: 1, type: 'config' as const, command: new Uint8Array(), config: config([2, 3], [1, 2]) },
      { index: 3, term: 1, type: 'config' as const, command: new Uint8Array(), config: config([2, 3]) },
    ];
    const v = new RaftCore(
      { id: 1, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0, preVote: false },
      { hardState: { term: 1, vote: 1, commit: 2 }, entries, baseConfiguration: { voters: [1, 2] } },
    );
    v.tick();
    for (let i = 0; i < 10; i++) v.tick();
    expect(v.role).toBe('candidate');
    expect(v.ready().messages.filter((m) => m.type === 'RequestVote').map((m) => m.to)).toEqual([2, 3]);
  });

  it('a follower knows the leader, and a proposal on it names the leader in NotLeaderError', () => {
    const c = new TestCluster([1, 2, 3]);
    c.elect(2);
    expect(c.node(3).leaderId).toBe(2);
    expect(() => c.propose(3, 'x')).toThrowError(expect.objectContaining({ name: 'NotLeaderError', leaderId: 2 }));
  });
});
