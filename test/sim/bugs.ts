import { RaftInvariantError } from '../../lib/core/errors.js';
import { RaftCore } from '../../lib/core/raft.js';
import type { Configuration, Entry, NodeId, RaftCoreOptions, RecoveredState, SnapshotMetadata } from '../../lib/core/types.js';

/**
 * The engine as the simulator runs it: {@link RaftCore} plus O(1) access to its log for the
 * checkers (`log()` copies the whole log, which would make per-event checks quadratic).
 */
export class SimCore extends RaftCore {
  entryAt(index: number): Entry | undefined {
    return this.raftLog.entry(index);
  }
}

/**
 * Negative controls: each breaks exactly one rule, to show that the checkers notice. The first,
 * third and fifth override a decision point of the engine; the other two break the driver or the
 * disk, which the simulator does itself.
 */
export const BUGS = {
  'commit-previous-term': 'a leader commits entries of earlier terms by counting replicas (breaks §5.4.2, Figure 8)',
  'forget-vote-on-restart': 'the vote is not read back from disk after a restart (one vote per term, §5.2)',
  'truncate-after-prev': 'a follower drops everything after prevLogIndex before appending, as the Go model did (§5.3)',
  'reply-before-persist': "the driver sends a Ready's messages before its state is durable (Figure 2)",
  'no-joint-majority': 'during C_old,new only C_new counts, for commits and elections (§6)',
  'read-without-quorum': 'a leader answers a ReadIndex read without hearing from a quorum first (thesis §6.4): stale reads',
  'snapshot-keeps-conflicting-log': 'a follower installing a snapshot keeps its entries after it even when its entry at the snapshot index has another term (Figure 5.3)',
} as const;

export type BugName = keyof typeof BUGS;

export function isBugName(name: string): name is BugName {
  return Object.hasOwn(BUGS, name);
}

/** §5.4.2 broken: any index replicated on a majority is committed, whatever its term. */
class CommitPreviousTermCore extends SimCore {
  protected override isCommittable(_index: number): boolean {
    return true;
  }
}

/** §6 broken: the outgoing configuration C_old is ignored during C_old,new. */
class NoJointMajorityCore extends SimCore {
  protected override quorumIndex(config: Configuration, matchOf: (id: NodeId) => number): number {
    return super.quorumIndex({ voters: config.voters }, matchOf);
  }

  protected override voteOutcome(config: Configuration, votes: ReadonlyMap<NodeId, boolean>): 'won' | 'lost' | 'pending' {
    return super.voteOutcome({ voters: config.voters }, votes);
  }
}

/**
 * §5.3 broken the way peterbourgon/raft broke it: after a successful consistency check the follower
 * drops every entry after prevLogIndex, even matching ones, so a late or duplicated AppendEntries
 * (or a heartbeat sent from the leader's confirmed match point) erases entries it had acknowledged.
 * The engine's own guard still refuses to truncate committed entries; that refusal is not the
 * signal we want the checkers to depend on, so the bug then falls back to the correct rule.
 */
class TruncateAfterPrevCore extends SimCore {
  protected override appendFromLeader(prevLogIndex: number, entries: readonly Entry[]): void {
    if (prevLogIndex < this.raftLog.lastIndex) {
      try {
        this.truncateLog(prevLogIndex + 1);
      } catch (error) {
        if (!(error instanceof RaftInvariantError)) throw error;
        super.appendFromLeader(prevLogIndex, entries);
        return;
      }
    }
    this.appendToLog(entries);
  }
}

/** Thesis §6.4 broken: the read index is trusted at once, so a deposed leader can serve stale reads. */
class ReadWithoutQuorumCore extends SimCore {
  protected override readConfirmed(): boolean {
    return true;
  }
}

/** Figure 5.3 broken: the follower keeps its log after a snapshot whenever it reaches the snapshot's index, whatever the term there. */
class SnapshotKeepsConflictingLogCore extends SimCore {
  protected override keepsLogAfterSnapshot(snapshot: SnapshotMetadata): boolean {
    return this.raftLog.lastIndex >= snapshot.index;
  }
}

export type CoreFactory = (options: RaftCoreOptions, recovered: RecoveredState) => SimCore;

export function coreFactory(bug: BugName | undefined): CoreFactory {
  switch (bug) {
    case 'commit-previous-term':
      return (o, r) => new CommitPreviousTermCore(o, r);
    case 'no-joint-majority':
      return (o, r) => new NoJointMajorityCore(o, r);
    case 'truncate-after-prev':
      return (o, r) => new TruncateAfterPrevCore(o, r);
    case 'read-without-quorum':
      return (o, r) => new ReadWithoutQuorumCore(o, r);
    case 'snapshot-keeps-conflicting-log':
      return (o, r) => new SnapshotKeepsConflictingLogCore(o, r);
    default:
      return (o, r) => new SimCore(o, r);
  }
}
