import { SetMetadata } from '@nestjs/common';
import type { EntryType, NodeId } from '../../core/types.js';
import type { CommittedEntry } from '../../node/raft-node.js';

/** Metadata keys the {@link RaftExplorer} looks for on methods of providers and controllers. */
export const ON_LEADER_ELECTED_METADATA = 'nestjs-raft:on-leader-elected';
export const ON_LEADERSHIP_LOST_METADATA = 'nestjs-raft:on-leadership-lost';
export const ON_COMMIT_METADATA = 'nestjs-raft:on-commit';

/** What an `@OnLeaderElected()` handler receives: this node became the leader of `term`. */
export interface LeaderElectedEvent {
  readonly nodeId: NodeId;
  readonly term: number;
}

/**
 * What an `@OnLeadershipLost()` handler receives: this node was the leader of `term` and no longer is.
 * `newLeaderId` is the leader this node knows of at that moment, 0 when none is known yet (an
 * election is under way, the node stepped down on its own — CheckQuorum, removed from the
 * configuration — or it stopped). `currentTerm` is the node's term now (≥ `term`).
 */
export interface LeadershipLostEvent {
  readonly nodeId: NodeId;
  readonly term: number;
  readonly currentTerm: number;
  readonly newLeaderId: NodeId;
}

/** What an `@OnCommit()` handler receives: a committed entry, once applied by this node's state machine. */
export type CommitEvent = CommittedEntry;

/** Options of `@OnCommit()`. */
export interface OnCommitOptions {
  /** Only entries of these types (default: every entry — `command`, `noop` and `config`). */
  readonly types?: readonly EntryType[];
}

/**
 * Calls the method when this node becomes the leader, with a {@link LeaderElectedEvent}.
 *
 * Leadership handlers (`@OnLeaderElected` and `@OnLeadershipLost`, of every provider) are called one at
 * a time in the order the transitions happened, each awaited: a "lost" handler never starts before
 * the "elected" handlers of the same term have finished. A handler that throws is logged and the next
 * one runs. The node does not wait for them: by the time a handler runs, leadership may have moved on —
 * check `RaftService.isLeader()` (or use `@LeaderOnly()`) where that matters.
 */
export const OnLeaderElected = (): MethodDecorator => SetMetadata(ON_LEADER_ELECTED_METADATA, true);

/**
 * Calls the method when this node stops being the leader (it learnt of a higher term, stepped down,
 * or its node stopped on shutdown), with a {@link LeadershipLostEvent}. Ordering as for
 * {@link OnLeaderElected}.
 */
export const OnLeadershipLost = (): MethodDecorator => SetMetadata(ON_LEADERSHIP_LOST_METADATA, true);

/**
 * Calls the method for each committed entry once this node has applied it (the entries of
 * `RaftService.commits$`, with the command's own bytes), in index order and without gaps.
 *
 * Each `@OnCommit` handler has its own queue: it receives entry n+1 only after its call for entry n
 * has returned (or its promise settled), so a slow async handler sees the entries strictly in order
 * and falls behind rather than overlapping; it never slows the node or the other handlers (entries
 * wait in memory). A handler that throws is logged and then receives the next entry.
 *
 * Entries applied in this process only: an in-memory state machine replays the log at start, and
 * those entries come here too. To resume from a position after a restart, use
 * `RaftService.commitsFrom(index)` instead.
 */
export const OnCommit = (options: OnCommitOptions = {}): MethodDecorator => SetMetadata(ON_COMMIT_METADATA, options);
