import { describe, expect, it } from 'vitest';
import type { Entry, Ready, RecoveredState, RequestVoteResponse, Role } from '../../lib/core/types.js';
import { SafetyChecker, type NodeView } from './checkers.js';

/** A hand-driven stand-in for an engine: the checkers only look through NodeView. */
class FakeNode implements NodeView {
  role: Role = 'follower';
  term = 0;
  commitIndex = 0;
  log: Entry[] = [];
  readonly logStartIndex = 0;
  constructor(readonly id: number) {}
  get lastIndex(): number {
    return this.log.length;
  }
  entryAt(index: number): Entry | undefined {
    return this.log[index - 1];
  }
}

const bytes = (s: string) => new TextEncoder().encode(s);
const cmd = (index: number, term: number, text = `c${index}.${term}`): Entry => ({ index, term, type: 'command', command: bytes(text) });
const ready = (r: Partial<Ready>): Ready => ({ entries: [], messages: [], committedEntries: [], configurationChanges: [], readStates: [], ...r });
const recovered = (term = 0, vote = 0, entries: Entry[] = []): RecoveredState => ({ hardState: { term, vote, commit: 0 }, entries, appliedIndex: 0 });

function setup(count = 3) {
  const nodes = Array.from({ length: count }, (_, i) => new FakeNode(i + 1));
  const checker = new SafetyChecker(
    () => 1000,
    () => nodes,
  );
  for (const n of nodes) checker.nodeStarted(n, recovered());
  /** Appends to a node's log and reports it as a Ready. */
  const append = (n: FakeNode, entries: Entry[], truncateFrom?: number) => {
    if (truncateFrom !== undefined) n.log.length = truncateFrom - 1;
    n.log.push(...entries);
    checker.readyTaken(n, ready({ entries, ...(truncateFrom !== undefined ? { truncateFrom } : {}) }));
  };
  return { nodes, checker, append };
}

describe('SafetyChecker', () => {
  it('accepts a well-behaved history', () => {
    const { nodes, checker, append } = setup();
    const [a, b] = nodes as [FakeNode, FakeNode, FakeNode];
    a.term = b.term = 1;
    a.role = 'leader';
    const e1 = cmd(1, 1);
    append(a, [e1]);
    append(b, [e1]);
    checker.messageSent({ type: 'AppendEntriesResponse', from: 2, to: 1, term: 1, success: true, matchIndex: 1, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
    a.commitIndex = 1;
    checker.afterEvent(nodes);
    checker.applied(a, e1);
    expect(checker.violations).toEqual([]);
  });

  it('catches two leaders in one term', () => {
    const { nodes, checker } = setup();
    nodes[0]!.term = nodes[1]!.term = 2;
    nodes[0]!.role = 'leader';
    checker.afterEvent(nodes);
    nodes[1]!.role = 'leader';
    checker.afterEvent(nodes);
    expect(checker.violations.join()).toMatch(/Election Safety: two leaders in term 2/);
  });

  it('catches two votes in one term, and a forgotten vote after a restart', () => {
    const { nodes, checker } = setup();
    const vote = (to: number): RequestVoteResponse => ({ type: 'RequestVoteResponse', from: 3, to, term: 4, voteGranted: true, preVote: false });
    checker.messageSent(vote(1));
    checker.messageSent({ ...vote(2), preVote: true }); // a pre-vote promises nothing
    expect(checker.ok).toBe(true);
    checker.nodeCrashed(3);
    checker.nodeStarted(nodes[2]!, recovered(4, 0));
    expect(checker.violations.join()).toMatch(/restarted in term 4 with vote 0, but it had granted its vote in term 4 to n1/);
    checker.messageSent(vote(2));
    expect(checker.violations.join()).toMatch(/n3 voted twice in term 4: for n1 and for n2/);
  });

  it('catches a term that goes back, also across a restart', () => {
    const { nodes, checker } = setup();
    const n = nodes[0]!;
    n.term = 3;
    checker.afterEvent(nodes);
    n.term = 2;
    checker.afterEvent(nodes);
    expect(checker.violations.join()).toMatch(/n1's term went back from 3 to 2/);

    const other = setup();
    other.checker.messageSent({ type: 'RequestVote', from: 2, to: 1, term: 5, lastLogIndex: 0, lastLogTerm: 0, preVote: false });
    other.checker.nodeStarted(other.nodes[1]!, recovered(4));
    expect(other.checker.violations.join()).toMatch(/restarted in term 4, but before the crash it had sent messages of term 5/);
  });

  it('catches Log Matching violations: same index and term, different entry or different prefix', () => {
    const { nodes, checker, append } = setup();
    const [a, b, c] = nodes as [FakeNode, FakeNode, FakeNode];
    append(a, [cmd(1, 1, 'x')]);
    append(b, [cmd(1, 1, 'y')]);
    expect(checker.violations.join()).toMatch(/Log Matching: n2 and n1 hold different entries at 1\/1/);

    const second = setup();
    const [p, q] = second.nodes as [FakeNode, FakeNode, FakeNode];
    second.append(p, [cmd(1, 1, 'x'), cmd(2, 2, 'z')]);
    second.append(q, [cmd(1, 2, 'w')]);
    second.append(q, [{ ...cmd(2, 2, 'z') }]);
    expect(second.checker.violations.join()).toMatch(/both hold 2\/2 but their logs differ before it/);
    void c;
  });

  it('catches State Machine Safety violations and out-of-order applies', () => {
    const { nodes, checker } = setup();
    const [a, b] = nodes as [FakeNode, FakeNode, FakeNode];
    a.commitIndex = b.commitIndex = 2;
    checker.applied(a, cmd(1, 1, 'x'));
    checker.applied(b, cmd(1, 1, 'y'));
    expect(checker.violations.join()).toMatch(/State Machine Safety: n2 applied 1\/1 but n1 applied 1\/1 with different content/);
    checker.applied(a, cmd(3, 1));
    expect(checker.violations.join()).toMatch(/n1 applied index 3, expected 2/);
  });

  it('catches a new leader that lacks a committed entry (Leader Completeness)', () => {
    const { nodes, checker, append } = setup();
    const [a, b] = nodes as [FakeNode, FakeNode, FakeNode];
    a.term = b.term = 2;
    const e1 = cmd(1, 2);
    append(a, [e1]);
    a.commitIndex = 1;
    checker.applied(a, e1); // committed by term 2 at the latest
    b.term = 3;
    b.role = 'leader';
    checker.afterEvent(nodes);
    expect(checker.violations.join()).toMatch(/Leader Completeness: n2 is leader of term 3 but its log ends at 0, without committed entry 1\/2/);
  });

  it('does not demand an entry committed later from a leader of an earlier term', () => {
    const { nodes, checker, append } = setup();
    const [a, b] = nodes as [FakeNode, FakeNode, FakeNode];
    b.term = 3;
    b.role = 'leader';
    checker.afterEvent(nodes);
    a.term = 4;
    const e1 = cmd(1, 4);
    append(a, [e1]);
    a.commitIndex = 1;
    checker.applied(a, e1);
    expect(checker.violations).toEqual([]);
  });

  it('catches a follower that truncates what it acknowledged in the same term, or what it knew committed', () => {
    const { nodes, checker, append } = setup();
    const b = nodes[1]!;
    b.term = 1;
    append(b, [cmd(1, 1), cmd(2, 1)]);
    checker.messageSent({ type: 'AppendEntriesResponse', from: 2, to: 1, term: 1, success: true, matchIndex: 2, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
    append(b, [], 2);
    expect(checker.violations.join()).toMatch(/n2 truncated its log from 2 in term 1, but it had acknowledged entries up to 2/);

    const other = setup();
    const c = other.nodes[2]!;
    other.append(c, [cmd(1, 1), cmd(2, 1)]);
    c.commitIndex = 2;
    other.append(c, []);
    other.append(c, [cmd(2, 2)], 2);
    expect(other.checker.violations.join()).toMatch(/n3 truncated its log from 2, but it already knew entries up to 2 committed/);
  });

  it('catches acknowledged entries lost in a crash', () => {
    const { nodes, checker, append } = setup();
    const b = nodes[1]!;
    b.term = 1;
    append(b, [cmd(1, 1), cmd(2, 1)]);
    checker.messageSent({ type: 'AppendEntriesResponse', from: 2, to: 1, term: 1, success: true, matchIndex: 2, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
    checker.nodeCrashed(2);
    checker.nodeStarted(b, recovered(1, 0, [cmd(1, 1)]));
    expect(checker.violations.join()).toMatch(/n2 restarted with log up to 1, but in term 1 it had acknowledged entries up to 2/);
  });

  it('can leave out the per-server promise checks', () => {
    const nodes = [new FakeNode(1)];
    const checker = new SafetyChecker(
      () => 0,
      () => nodes,
      false,
    );
    checker.nodeStarted(nodes[0]!, recovered());
    checker.messageSent({ type: 'RequestVoteResponse', from: 1, to: 2, term: 1, voteGranted: true, preVote: false });
    checker.nodeStarted(nodes[0]!, recovered(0, 0));
    expect(checker.violations).toEqual([]);
  });
});
