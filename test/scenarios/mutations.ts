/**
 * Negative controls for the scenario files: for each scenario, the rule it demonstrates is broken in
 * the engine (by patching one method of RaftCore.prototype for the duration of one run) and the
 * scenario must then produce a different trace, containing the line that shows the breakage. This
 * keeps the scenarios honest: a scenario whose expected output would not change when its rule is
 * broken does not demonstrate that rule.
 *
 * The protected decision points of RaftCore exist for exactly this; a few mutations reach private
 * methods too. If lib/core renames one of them, the test says which, and the mutation here must follow.
 */
import { majorityIndex, majorityVote } from '../../lib/core/quorum.js';
import { RaftLog } from '../../lib/core/log.js';
import { RaftCore } from '../../lib/core/raft.js';
import type { AppendEntriesResponse, Configuration, Entry, Message, NodeId } from '../../lib/core/types.js';

/** The engine's internals as seen by a mutation (all of them exist on RaftCore at runtime). */
interface Internals {
  readonly id: NodeId;
  currentTerm: number;
  noopIndex: number;
  config: Configuration | undefined;
  configIndex: number;
  currentRole: string;
  pendingChange: { phase: string; target: readonly NodeId[]; index: number } | undefined;
  readonly raftLog: { lastIndex: number; term(index: number): number | undefined };
  truncateLog(from: number): void;
  appendToLog(entries: readonly Entry[]): void;
  appendAsLeader(type: Entry['type'], command: Uint8Array, config?: Configuration): Entry;
  becomeFollower(term: number, leader: NodeId): void;
}

type Method = (this: Internals, ...args: never[]) => unknown;

export interface Mutation {
  /** The scenario file it applies to. */
  readonly file: string;
  /** The rule that is broken, in words. */
  readonly breaks: string;
  /** A line (or part of one) that the broken run must print. */
  readonly shows: string;
  /** Installs the mutation; returns the function that removes it. */
  readonly install: () => () => void;
}

function patch(name: string, make: (original: Method) => Method, target: object = RaftCore.prototype): () => void {
  const proto = target as Record<string, Method | undefined>;
  const original = proto[name];
  if (typeof original !== 'function') {
    throw new Error(`${target.constructor.name} has no method "${name}" any more: update test/scenarios/mutations.ts`);
  }
  proto[name] = make(original);
  return () => {
    proto[name] = original;
  };
}

function patchAll(...undo: (() => () => void)[]): () => void {
  const restores = undo.map((install) => install());
  return () => restores.reverse().forEach((restore) => restore());
}

export const MUTATIONS: readonly Mutation[] = [
  {
    file: 'figure8.txt',
    breaks: 'a leader commits an entry of an earlier term by counting replicas',
    shows: '1: leader term=3 vote=1 commit=2',
    install: () => patch('isCommittable', () => () => true),
  },
  {
    file: 'figure8-overwrite.txt',
    breaks: 'the election restriction (§5.4.1): a vote goes to a candidate whose log is less up to date',
    shows: '2->5 RequestVoteResponse term=4 granted',
    install: () => patch('isUpToDate', () => () => true, RaftLog.prototype),
  },
  {
    file: 'stale-append.txt',
    breaks: 'a follower replaces everything after prevLogIndex with the entries of the request',
    shows: '2 persist truncate 1 ; append 1/1',
    install: () =>
      patch('appendFromLeader', () =>
        function (this: Internals, ...args: never[]) {
          const [prevLogIndex, entries] = args as unknown as [number, readonly Entry[]];
          if (entries.length === 0) return;
          if (prevLogIndex + 1 <= this.raftLog.lastIndex) this.truncateLog(prevLogIndex + 1);
          this.appendToLog(entries);
        },
      ),
  },
  {
    file: 'joint-majority.txt',
    breaks: 'during C_old,new a majority of C_new alone decides',
    shows: '1: leader term=1 vote=1 commit=3 last=1/3 config=(1,4,5) match=(4:3,5:3)',
    install: () =>
      patchAll(
        () => patch('quorumIndex', () => (config: Configuration, matchOf: (id: NodeId) => number) => majorityIndex(config.voters, matchOf)),
        () => patch('voteOutcome', () => (config: Configuration, votes: ReadonlyMap<NodeId, boolean>) => majorityVote(config.voters, votes)),
      ),
  },
  {
    file: 'single-server-change-bug.txt',
    breaks: 'a new leader may change the configuration before committing an entry of its term',
    shows: '2 accepted config change #1 to (2,3)\n\nraft-log 2',
    install: () =>
      patch('becomeLeader', (original) =>
        function (this: Internals) {
          original.call(this);
          this.noopIndex = 0;
        },
      ),
  },
  {
    file: 'remove-leader.txt',
    breaks: 'a leader outside C_new keeps leading after C_new is committed',
    shows: '1: leader term=1',
    install: () =>
      patch('onCommitAdvanced', (original) =>
        function (this: Internals) {
          const config = this.config!;
          if (config.outgoing || config.voters.includes(this.id)) return original.call(this);
          this.config = { voters: [...config.voters, this.id] };
          try {
            return original.call(this);
          } finally {
            this.config = config;
          }
        },
      ),
  },
  {
    file: 'disruptive-removed-server.txt',
    breaks: 'a server adopts the higher term of a vote request from outside its configuration',
    shows: '1 became follower at term 2',
    install: () =>
      patch('acceptTerm', (original) =>
        function (this: Internals, ...args: never[]) {
          const m = args[0] as unknown as Message;
          if (m.type === 'RequestVote' && m.term > this.currentTerm) this.becomeFollower(m.term, 0);
          return original.call(this, m as never);
        },
      ),
  },
  {
    file: 'vote-persistence.txt',
    breaks: 'the vote is not part of the persisted hard state',
    shows: 'BUG: election safety: 3 and 1 are both leaders of term 1',
    install: () =>
      patch('hardState', (original) =>
        function (this: Internals) {
          return { ...(original.call(this) as object), vote: 0 };
        },
      ),
  },
  {
    file: 'partitioned-old-leader.txt',
    breaks: 'CheckQuorum: a leader cut off from a majority does not step down',
    shows: '1 proposed 1/4 cmd:lost3',
    install: () => patch('quorumActive', () => () => true),
  },
  {
    file: 'check-quorum.txt',
    breaks: 'the leader lease: a server that hears from a leader still adopts a higher term from a vote request',
    shows: '1 became follower at term 2',
    install: () => patch('inLease', () => () => false),
  },
  {
    file: 'prevote.txt',
    breaks: 'PreVote: a server raises its term as soon as it times out',
    shows: '3 became candidate at term 2',
    install: () =>
      patch('campaign', (original) =>
        function (this: Internals) {
          return original.call(this, 'vote' as never);
        },
      ),
  },
  {
    file: 'add-node-catch-up.txt',
    breaks: 'C_old,new is appended before the new server has caught up',
    shows: '1: leader term=1 vote=1 commit=5 last=1/5 config=(1,2,3,4) match=(2:5,3:5,4:0)',
    install: () =>
      patch('advanceChange', (original) =>
        function (this: Internals) {
          const change = this.pendingChange;
          if (change?.phase !== 'catch-up') return original.call(this);
          change.phase = 'joint';
          change.index = this.appendAsLeader('config', new Uint8Array(0), { voters: change.target, outgoing: this.config!.voters }).index;
          return undefined;
        },
      ),
  },
  {
    file: 'conflict-hint.txt',
    breaks: 'the leader ignores the conflict hint and steps back one entry per rejection',
    shows: 'reject rejected=6',
    install: () =>
      patch('nextAfterRejection', () =>
        function (this: Internals, ...args: never[]) {
          return (args[0] as unknown as AppendEntriesResponse).rejectedIndex;
        },
      ),
  },
  {
    file: 'config-rollback.txt',
    breaks: 'a configuration stays in effect after its entry is truncated',
    shows: '1: follower term=2 vote=0 leader=2 commit=2 last=2/2 config=new(1,2)+old(1,2,3)',
    install: () =>
      patch('truncateLog', (original) =>
        function (this: Internals, ...args: never[]) {
          const { config, configIndex } = this;
          original.call(this, ...args);
          this.config = config;
          this.configIndex = configIndex;
        },
      ),
  },
  {
    file: 'joint-leader-crash.txt',
    breaks: 'only the leader that started a change moves it from C_old,new to C_new',
    shows: '2: leader term=2 vote=2 commit=3 last=2/3 config=new(2,3)+old(1,2,3)',
    install: () =>
      patch('onCommitAdvanced', (original) =>
        function (this: Internals) {
          if (this.config?.outgoing && !this.pendingChange) return undefined;
          return original.call(this);
        },
      ),
  },
];
