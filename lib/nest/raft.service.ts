import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Observable } from 'rxjs';
import type { NodeId } from '../core/types.js';
import type { CommandOptions, CommittedEntry, MembershipOptions, RaftMemberSpec, RaftNode, RaftState, RaftStatus } from '../node/raft-node.js';
import { RAFT_NODE } from './raft.constants.js';

/**
 * The application's handle on its Raft node: inject it anywhere in the module's scope.
 *
 * The node starts when the application bootstraps and stops on shutdown (`app.close()`), rejecting
 * what is still waiting with `NodeStoppedError`.
 */
@Injectable()
export class RaftService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  constructor(@Inject(RAFT_NODE) readonly node: RaftNode) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.node.start();
  }

  /** A leader hands over first, while every endpoint is still up, so the others need not wait an election timeout. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.node.handOverLeadership();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.node.stop();
  }

  /**
   * Replicates `command` and resolves with the state machine's answer once it is committed and applied.
   * On a follower the command is forwarded to the leader.
   * @throws NotLeaderError (with the leader's id and url when known), CommandTimeoutError,
   *   LeadershipLostError, CommandForwardingError, NodeStoppedError
   */
  command<TAnswer = unknown>(command: Uint8Array | string, options?: CommandOptions): Promise<TAnswer> {
    return this.node.command(command, options) as Promise<TAnswer>;
  }

  /**
   * Linearizable read without writing to the log (ReadIndex, thesis §6.4): runs `query` against this
   * node's state machine once it reflects every write committed before the call. Works on followers
   * too (they ask the leader for the read index).
   */
  read<T>(query: () => T | Promise<T>, options?: CommandOptions): Promise<T> {
    return this.node.read(query, options);
  }

  /**
   * Hands leadership to `toId` (default: the most up-to-date other voter) without an election timeout
   * (thesis §3.10); resolves with the new leader's id. A leader also does this on shutdown.
   */
  transferLeadership(toId?: NodeId, options?: CommandOptions): Promise<NodeId> {
    return this.node.transferLeadership(toId, options);
  }

  /** Waits until this node has applied every write committed before the call; resolves with that index. */
  barrier(options?: CommandOptions): Promise<number> {
    return this.node.barrier(options);
  }

  /** Committed entries as they are applied, in index order, gapless (live). */
  get commits$(): Observable<CommittedEntry> {
    return this.node.commits$;
  }

  /** Committed entries from `index` on: stored ones first, then live — to resume after a restart. */
  commitsFrom(index: number): Observable<CommittedEntry> {
    return this.node.commitsFrom(index);
  }

  /** Role, term and leader; emits the current value on subscription. */
  get state$(): Observable<RaftState> {
    return this.node.state$;
  }

  /** The leader's id (0 while none is known); emits the current value, then each change. */
  get leader$(): Observable<NodeId> {
    return this.node.leader$;
  }

  isLeader(): boolean {
    return this.node.isLeader();
  }

  get nodeId(): NodeId {
    return this.node.id;
  }

  get leaderId(): NodeId {
    return this.node.leaderId;
  }

  get term(): number {
    return this.node.term;
  }

  get commitIndex(): number {
    return this.node.commitIndex;
  }

  status(): RaftStatus {
    return this.node.status();
  }

  /**
   * Changes the voting members to exactly `members` through joint consensus, and the learners to
   * `options.learners` when given; resolves when C_new is committed.
   */
  setConfiguration(members: readonly RaftMemberSpec[], options?: MembershipOptions): Promise<void> {
    return this.node.setConfiguration(members, options);
  }

  /** Adds one voting member (a learner named here is promoted); a member without an id is asked for it at its url (`GET /raft/id`). */
  addMember(member: RaftMemberSpec, options?: CommandOptions): Promise<void> {
    return this.node.addMember(member, options);
  }

  /** Adds a learner: a non-voting member that receives the log (a read replica, or a server to catch up before it votes). */
  addLearner(member: RaftMemberSpec, options?: CommandOptions): Promise<void> {
    return this.node.addLearner(member, options);
  }

  /** Makes learner `id` a voter, through joint consensus. */
  promoteLearner(id: NodeId, options?: CommandOptions): Promise<void> {
    return this.node.promoteLearner(id, options);
  }

  /** Removes one member, voter or learner; a removed leader steps down once the change is committed. */
  removeMember(id: NodeId, options?: CommandOptions): Promise<void> {
    return this.node.removeMember(id, options);
  }
}
