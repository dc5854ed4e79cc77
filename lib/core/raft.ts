import { formatConfiguration, isJoint, isVoter, membersOf, normalizeIds, sameIds, validateVoterIds, votersOf } from './configuration.js';
import { ConfigurationChangeError, NotLeaderError, RaftInvariantError } from './errors.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { jointMajorityIndex, jointVote, type VoteOutcome } from './quorum.js';
import {
  NO_NODE,
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type Configuration,
  type ConfigurationChangeOutcome,
  type Entry,
  type HardState,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type Message,
  type NodeId,
  type RaftCoreOptions,
  type Ready,
  type RecoveredState,
  type RequestVoteRequest,
  type ReadState,
  type RequestVoteResponse,
  type Role,
  type SnapshotMetadata,
  type SoftState,
  type TimeoutNowRequest,
} from './types.js';

const EMPTY = new Uint8Array(0);

/** Defaults of the optional engine options, in one place. */
export const CORE_DEFAULTS = {
  preVote: true,
  checkQuorum: true,
  maxEntriesPerAppend: 512,
  maxBytesPerAppend: 1024 * 1024,
  maxInflightAppends: 32,
  /** Catch-up budget for new servers, in election timeouts. */
  catchUpElectionTimeouts: 20,
  /** Heartbeat rounds without an answer before a pipelined follower is probed again. */
  silentHeartbeatsBeforeProbe: 2,
} as const;

/** A membership change the leader is driving: catch-up of new servers, then C_old,new, then C_new. */
interface PendingChange {
  readonly id: number;
  readonly target: readonly NodeId[];
  /** The learners after the change (carried in the joint and the final configuration). */
  readonly learners: readonly NodeId[];
  phase: 'catch-up' | 'joint' | 'final';
  /** Tick count after which catch-up gives up. */
  readonly deadline: number;
  /** Index of the entry that ends the current phase (the joint or the final configuration). */
  index: number;
  /** Addresses of old and new members, carried in the configuration entries. */
  readonly addresses: Readonly<Record<string, string>>;
}

/**
 * The Raft protocol as a deterministic state machine (DESIGN.md): no timers, no I/O, no clock, no
 * promises. A driver calls {@link tick}, {@link step} and {@link propose}, then collects the effects
 * with {@link ready}, carries them out in the documented order, and acknowledges with {@link advance}.
 *
 * The rules each method enforces cite the Raft paper (§) or Ongaro's thesis where they come from.
 * The `protected` decision points exist so that the simulator can break exactly one rule in a
 * subclass and show that its checkers notice; production code never overrides them.
 */
export class RaftCore {
  readonly id: NodeId;
  private readonly electionTimeout: number;
  private readonly heartbeatTimeout: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly leaseReads: boolean;
  private readonly maxEntriesPerAppend: number;
  private readonly maxBytesPerAppend: number;
  private readonly maxInflight: number;
  private readonly catchUpTimeout: number;
  private readonly random: () => number;

  protected readonly raftLog: RaftLog;

  private currentTerm: number;
  private votedFor: NodeId;
  private commit: number;
  private currentRole: Role = 'follower';
  private leader: NodeId = NO_NODE;

  /** The configuration in force at the log's start (the bootstrap configuration, or the one a compaction or snapshot recorded). */
  private baseConfiguration: Configuration | undefined;
  /** The latest configuration in the log (committed or not): it is in effect as soon as appended (thesis §4.1). */
  private config: Configuration | undefined;
  /** Index of the entry that holds `config`; the log's start index when it is the base configuration. */
  private configIndex = 0;

  /** Highest index handed out for applying. */
  private applied: number;
  /** The stored log agrees with the in-memory log up to here. */
  private persistedIndex: number;
  /** Highest index handed to the driver to persist (entries above it go into the next Ready). */
  private handedOutIndex: number;
  /** Lowest truncation not yet handed to the driver. */
  private pendingTruncateFrom: number | undefined;
  /** The latest snapshot this server holds durably (what it sends a follower whose entries were compacted). */
  private latestSnapshot: SnapshotMetadata | undefined;
  /** A snapshot from the leader accepted but not yet handed to the driver to persist and restore. */
  private pendingSnapshot: SnapshotMetadata | undefined;

  private ticks = 0;
  /** The tick of the last AppendEntries or InstallSnapshot from a leader (with lease reads: the promise not to vote). */
  private heardFromLeaderAt = Number.NEGATIVE_INFINITY;
  /** A leadership transfer was started in this term: its TimeoutNow may arrive any time, and voters skip their lease for it. */
  private transferredInTerm = false;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  private readonly votes = new Map<NodeId, boolean>();
  private readonly progress = new Map<NodeId, Progress>();
  /** Index of the no-op this leader appended in its term (§5.4.2, thesis §6.4). */
  private noopIndex = 0;
  private pendingChange: PendingChange | undefined;
  private nextChangeId = 1;

  /** ReadIndex (thesis §6.4): a counter stamped on AppendEntries, and reads waiting for a quorum to answer one. */
  private readRound = 0;
  private pendingReads: { id: number; index: number; round: number; acks: Map<NodeId, boolean> }[] = [];
  /** Reads that arrived before this leader committed an entry of its term: their index is not known yet. */
  private readsAwaitingNoop: number[] = [];
  private readStates: ReadState[] = [];

  /** Leadership transfer under way (thesis §3.10): the target, and the tick it must finish by. */
  private transfer: { to: NodeId; deadline: number } | undefined;

  private messages: Message[] = [];
  private outcomes: ConfigurationChangeOutcome[] = [];
  private lastHardState: HardState;
  private lastSoftState: SoftState;

  constructor(options: RaftCoreOptions, recovered: RecoveredState) {
    if (!Number.isSafeInteger(options.id) || options.id <= 0) throw new RangeError(`node id must be a positive integer, got ${options.id}`);
    if (!(options.electionTimeoutTicks >= 1)) throw new RangeError('electionTimeoutTicks must be at least 1');
    if (!(options.heartbeatTicks >= 1 && options.heartbeatTicks < options.electionTimeoutTicks)) {
      throw new RangeError('heartbeatTicks must be at least 1 and below electionTimeoutTicks');
    }
    this.id = options.id;
    this.electionTimeout = options.electionTimeoutTicks;
    this.heartbeatTimeout = options.heartbeatTicks;
    this.preVote = options.preVote ?? CORE_DEFAULTS.preVote;
    this.checkQuorum = options.checkQuorum ?? CORE_DEFAULTS.checkQuorum;
    this.leaseReads = options.leaseReads ?? false;
    this.maxEntriesPerAppend = options.maxEntriesPerAppend ?? CORE_DEFAULTS.maxEntriesPerAppend;
    this.maxBytesPerAppend = options.maxBytesPerAppend ?? CORE_DEFAULTS.maxBytesPerAppend;
    this.maxInflight = options.maxInflightAppends ?? CORE_DEFAULTS.maxInflightAppends;
    this.catchUpTimeout = options.catchUpTimeoutTicks ?? CORE_DEFAULTS.catchUpElectionTimeouts * options.electionTimeoutTicks;
    this.random = options.random;

    this.raftLog = new RaftLog(recovered.entries, recovered.logStart);
    this.currentTerm = recovered.hardState.term;
    this.votedFor = recovered.hardState.vote;
    if (this.raftLog.lastTerm > this.currentTerm) {
      throw new RaftInvariantError(`stored log has term ${this.raftLog.lastTerm} above the stored current term ${this.currentTerm}`);
    }
    const start = this.raftLog.startIndex;
    const snapshot = recovered.snapshot;
    if (start > 0 && !snapshot) throw new RaftInvariantError(`the log starts after ${start} but there is no snapshot`);
    if (snapshot && (snapshot.index < start || snapshot.index > this.raftLog.lastIndex)) {
      throw new RaftInvariantError(`snapshot at ${snapshot.index} is outside the stored log (${start}..${this.raftLog.lastIndex})`);
    }
    this.latestSnapshot = snapshot;
    this.applied = recovered.appliedIndex ?? 0;
    if (this.applied < start) {
      throw new RaftInvariantError(`applied index ${this.applied} is below the compacted log (it starts after ${start}): restore the snapshot first`);
    }
    this.commit = Math.min(Math.max(recovered.hardState.commit, this.applied), this.raftLog.lastIndex);
    if (this.applied > this.raftLog.lastIndex) {
      throw new RaftInvariantError(`applied index ${this.applied} is beyond the stored log (${this.raftLog.lastIndex})`);
    }
    this.persistedIndex = this.raftLog.lastIndex;
    this.handedOutIndex = this.raftLog.lastIndex;
    this.baseConfiguration = recovered.baseConfiguration;
    this.recomputeConfiguration();

    this.lastHardState = this.hardState();
    this.lastSoftState = this.softState();
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------- accessors

  get role(): Role {
    return this.currentRole;
  }
  get term(): number {
    return this.currentTerm;
  }
  get vote(): NodeId {
    return this.votedFor;
  }
  get leaderId(): NodeId {
    return this.leader;
  }
  get commitIndex(): number {
    return this.commit;
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get lastIndex(): number {
    return this.raftLog.lastIndex;
  }
  /** The configuration in effect (the latest in the log, committed or not); undefined while joining. */
  get configuration(): Configuration | undefined {
    return this.config;
  }
  /** The engine's view of its log (after its compaction point), for checkers and tests. */
  log(): readonly Entry[] {
    return this.raftLog.slice(1);
  }
  /** Where the in-memory log starts: entries up to here were compacted into a snapshot. */
  get logStartIndex(): number {
    return this.raftLog.startIndex;
  }
  /** The latest snapshot this server holds (its own or one installed from the leader). */
  get snapshot(): SnapshotMetadata | undefined {
    return this.latestSnapshot;
  }
  /** The leader's view of each follower's match index (empty on other roles). */
  matchIndexes(): ReadonlyMap<NodeId, number> {
    return new Map([...this.progress].map(([id, pr]) => [id, pr.match]));
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick: election timeouts, heartbeats, CheckQuorum, catch-up deadlines. */
  tick(): void {
    this.ticks++;
    if (this.currentRole === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Feeds one incoming message. Messages for another server, or from a stale term, are dropped or answered as §5.1 says. */
  step(message: Message): void {
    if (message.to !== this.id) return;
    if (!this.acceptTerm(message)) return;
    switch (message.type) {
      case 'AppendEntries':
        return this.handleAppendEntries(message);
      case 'AppendEntriesResponse':
        return this.handleAppendEntriesResponse(message);
      case 'RequestVote':
        return this.handleRequestVote(message);
      case 'RequestVoteResponse':
        return this.handleRequestVoteResponse(message);
      case 'TimeoutNow':
        return this.handleTimeoutNow(message);
      case 'InstallSnapshot':
        return this.handleInstallSnapshot(message);
      case 'InstallSnapshotResponse':
        return this.handleInstallSnapshotResponse(message);
    }
  }

  // ---------------------------------------------------------------- snapshots and compaction

  /**
   * What a snapshot of the state machine at `index` covers: the term of that entry and the
   * configuration in force there. `index` must be applied (handed out in `committedEntries`) and
   * still in the log.
   */
  snapshotMetadata(index: number): SnapshotMetadata {
    const term = this.raftLog.term(index);
    if (index > this.applied || term === undefined) {
      throw new RaftInvariantError(`no snapshot possible at ${index} (applied ${this.applied}, log ${this.raftLog.startIndex}..${this.raftLog.lastIndex})`);
    }
    return { index, term, configuration: this.configurationAt(index)! };
  }

  /** The configuration in force at `index` (which must be at or after the log's start). */
  configurationAt(index: number): Configuration | undefined {
    return this.configurationBefore(index + 1);
  }

  /**
   * Tells the engine that `snapshot` is durable and that every stored entry up to `compactTo` was
   * dropped (the driver wrote both in one batch): the in-memory log drops them too. Entries between
   * `compactTo` and the snapshot stay, for followers that are only a little behind. A snapshot older
   * than the one held, or a compaction below the log's start, changes nothing of that part.
   */
  compact(snapshot: SnapshotMetadata, compactTo: number): void {
    if (compactTo > snapshot.index) throw new RaftInvariantError(`cannot compact to ${compactTo}, past the snapshot at ${snapshot.index}`);
    if (snapshot.index > (this.latestSnapshot?.index ?? -1)) this.latestSnapshot = snapshot;
    if (compactTo <= this.raftLog.startIndex) return;
    if (compactTo > this.applied || compactTo > this.handedOutIndex) {
      throw new RaftInvariantError(`cannot compact to ${compactTo}: only applied, persisted entries may be (applied ${this.applied})`);
    }
    const configuration = this.configurationAt(compactTo);
    this.raftLog.compact(compactTo);
    this.baseConfiguration = configuration;
    if (this.configIndex < compactTo) this.configIndex = compactTo;
  }

  /**
   * The driver could not deliver the InstallSnapshot to `to` (no answer, a transport failure): go back
   * to probing, which sends the snapshot again at the next heartbeat if it is still needed (not before).
   */
  snapshotFailed(to: NodeId): void {
    const pr = this.progress.get(to);
    if (this.currentRole !== 'leader' || pr?.state !== 'snapshot') return;
    pr.becomeProbe(pr.match + 1);
    pr.paused = true; // not at once (a failing transport would loop): the next heartbeat probes again
  }

  private sendSnapshot(node: NodeId, pr: Progress): void {
    const snapshot = this.latestSnapshot;
    if (!snapshot) throw new RaftInvariantError(`node ${node} needs entries before ${this.raftLog.firstIndex} but there is no snapshot`);
    this.send({ type: 'InstallSnapshot', from: this.id, to: node, term: this.currentTerm, snapshot });
    pr.becomeSnapshot(snapshot.index, this.ticks);
  }

  /**
   * A follower receives the leader's snapshot (thesis §5.4.1 / Figure 5.3): one that does not go
   * beyond what is committed here changes nothing; otherwise it replaces the log up to its index,
   * keeping a suffix that agrees with it, and the state machine is restored from it.
   */
  private handleInstallSnapshot(m: InstallSnapshotRequest): void {
    if (this.currentRole !== 'follower') this.becomeFollower(this.currentTerm, m.from);
    this.leader = m.from;
    this.electionElapsed = 0;
    this.heardFromLeaderAt = this.ticks;
    const s = m.snapshot;
    if (s.index <= this.commit) {
      // Everything up to our commit index agrees with the leader's log (Leader Completeness).
      this.send(this.snapshotResponse(m.from, this.commit));
      return;
    }
    if (this.keepsLogAfterSnapshot(s)) {
      // Log Matching: the entries after the snapshot agree with the leader's too; keep them.
      this.raftLog.compact(s.index);
    } else {
      if (this.handedOutIndex > s.index) this.pendingTruncateFrom = Math.min(this.pendingTruncateFrom ?? s.index + 1, s.index + 1);
      this.raftLog.reset({ index: s.index, term: s.term });
      this.persistedIndex = Math.min(this.persistedIndex, this.commit);
    }
    this.handedOutIndex = Math.max(this.handedOutIndex, s.index);
    if (this.pendingTruncateFrom !== undefined && this.pendingTruncateFrom <= s.index) this.pendingTruncateFrom = undefined;
    this.commit = s.index;
    this.applied = s.index;
    this.baseConfiguration = s.configuration;
    this.recomputeConfiguration();
    this.latestSnapshot = s;
    this.pendingSnapshot = s;
    this.send(this.snapshotResponse(m.from, s.index));
  }

  private snapshotResponse(to: NodeId, matchIndex: number): InstallSnapshotResponse {
    return { type: 'InstallSnapshotResponse', from: this.id, to, term: this.currentTerm, matchIndex };
  }

  private handleInstallSnapshotResponse(m: InstallSnapshotResponse): void {
    if (this.currentRole !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    const advanced = m.matchIndex > 0 && pr.acknowledge(m.matchIndex);
    if (pr.state === 'snapshot') pr.becomeProbe(pr.match + 1);
    if (advanced) {
      this.maybeCommit();
      this.advanceChange();
      if (this.transfer?.to === m.from) this.maybeSendTimeoutNow();
    }
  }

  /**
   * Appends a command to the leader's log. It is replicated with the next {@link ready}; its answer
   * comes when an entry of this index and term is handed out in `committedEntries`.
   * @throws NotLeaderError on any other role.
   */
  propose(command: Uint8Array): { index: number; term: number } {
    if (this.currentRole !== 'leader') throw new NotLeaderError(this.leader);
    // While handing over, new entries would only delay the target; the caller retries at the new leader.
    if (this.transfer) throw new NotLeaderError(this.transfer.to);
    const entry = this.appendAsLeader('command', command);
    return { index: entry.index, term: entry.term };
  }

  /**
   * Starts a membership change to the voter set `voters` and the learner set `learners` (joint
   * consensus, §6 / thesis §4.3): new voters first catch up without a vote, then C_old,new is
   * appended, then C_new. A change of learners alone moves no majority and takes one entry. The
   * returned id reappears in a Ready's `configurationChanges` when the change is committed or
   * abandoned. A learner becomes a voter by naming it in `voters` (promotion); a voter cannot become
   * a learner in one change (remove it first).
   * @throws NotLeaderError on any other role.
   * @throws ConfigurationChangeError when the sets are invalid, a change is already under way, or this
   *   leader has not yet committed an entry of its own term (the single-server-change bug of 2015:
   *   a new leader must commit its no-op before it may change the configuration).
   */
  proposeConfiguration(voters: readonly NodeId[], addresses?: Readonly<Record<string, string>>, learners: readonly NodeId[] = this.config?.learners ?? []): number {
    if (this.currentRole !== 'leader') throw new NotLeaderError(this.leader);
    const problem = validateVoterIds(voters, learners);
    if (problem) throw new ConfigurationChangeError('invalid', problem);
    if (this.commit < this.noopIndex) {
      throw new ConfigurationChangeError('leader-not-ready', 'the leader has not yet committed an entry of its term');
    }
    const config = this.config!;
    if (this.pendingChange || isJoint(config) || this.configIndex > this.commit) {
      throw new ConfigurationChangeError('in-progress', `another change is under way (configuration ${formatConfiguration(config)})`);
    }
    const target = normalizeIds(voters);
    const newLearners = normalizeIds(learners);
    const demoted = newLearners.find((node) => config.voters.includes(node));
    if (demoted !== undefined) {
      throw new ConfigurationChangeError('invalid', `voter ${demoted} cannot become a learner in one change: remove it first, then add it as a learner`);
    }
    const id = this.nextChangeId++;
    const sameLearners = sameIds(newLearners, config.learners ?? []);
    if (sameIds(target, config.voters) && sameLearners) {
      this.outcomes.push({ id, status: 'committed', configuration: config });
      return id;
    }
    const allAddresses = { ...config.addresses, ...addresses };
    if (sameIds(target, config.voters)) {
      // Learners only: no majority moves, so one entry does it (and its servers catch up as learners).
      const entry = this.appendAsLeader('config', EMPTY, configuration(target, undefined, newLearners, allAddresses));
      this.pendingChange = { id, target, learners: newLearners, phase: 'final', deadline: 0, index: entry.index, addresses: allAddresses };
      return id;
    }
    this.pendingChange = {
      id,
      target,
      learners: newLearners,
      phase: 'catch-up',
      deadline: this.ticks + this.catchUpTimeout,
      index: 0,
      addresses: allAddresses,
    };
    for (const node of target) {
      if (node !== this.id && !this.progress.has(node)) {
        const pr = new Progress(this.raftLog.lastIndex + 1);
        this.progress.set(node, pr);
        this.sendAppend(node, pr, true); // start catching it up now rather than at the next heartbeat
      }
    }
    this.advanceChange();
    return id;
  }

  /**
   * Hands leadership to `to` (thesis §3.10): the leader stops taking proposals, brings `to` up to date,
   * then tells it to campaign at once (TimeoutNow), so the cluster does not wait an election timeout.
   * Abandoned after one election timeout if it has not happened.
   * @throws NotLeaderError on any other role; ConfigurationChangeError('invalid') if `to` is not a voter.
   */
  transferLeadership(to: NodeId): void {
    if (this.currentRole !== 'leader') throw new NotLeaderError(this.leader);
    if (to === this.id) return;
    if (!isVoter(this.config, to) || !this.progress.has(to)) throw new ConfigurationChangeError('invalid', `node ${to} is not a voter of this cluster`);
    this.transfer = { to, deadline: this.ticks + this.electionTimeout };
    this.transferredInTerm = true;
    this.maybeSendTimeoutNow();
  }

  /** The leadership transfer under way, if any. */
  get transferee(): NodeId {
    return this.transfer?.to ?? NO_NODE;
  }

  /**
   * Whether this leader started a leadership transfer in its current term, even one given up since:
   * a TimeoutNow it sent may still arrive, and voters skip their lease for it. No lease reads then.
   */
  get transferStartedInTerm(): boolean {
    return this.transferredInTerm;
  }

  private maybeSendTimeoutNow(): void {
    const transfer = this.transfer;
    if (!transfer) return;
    const pr = this.progress.get(transfer.to);
    if (pr && pr.match === this.raftLog.lastIndex) this.send({ type: 'TimeoutNow', from: this.id, to: transfer.to, term: this.currentTerm });
  }

  private handleTimeoutNow(m: TimeoutNowRequest): void {
    // Only our own leader may ask, and only a voter can stand.
    if (m.from !== this.leader || !this.promotable()) return;
    this.campaign('transfer');
  }

  /**
   * Asks for a linearizable read point without writing to the log (ReadIndex, thesis §6.4): the
   * current commit index, once a quorum has confirmed after this call that this server still leads.
   * The answer comes as a `readStates` entry with this `id`. A leader that has not yet committed an
   * entry of its own term waits for that first, since before it the commit index may be stale.
   * @throws NotLeaderError on any other role.
   */
  readIndex(id: number): void {
    if (this.currentRole !== 'leader') throw new NotLeaderError(this.leader);
    if (this.commit < this.noopIndex) {
      this.readsAwaitingNoop.push(id);
      return;
    }
    this.registerRead(id);
  }

  private registerRead(id: number): void {
    const round = ++this.readRound;
    this.pendingReads.push({ id, index: this.commit, round, acks: new Map([[this.id, true]]) });
    // Every AppendEntries sent from now on carries this round; send some at once rather than waiting for the heartbeat.
    for (const [node, pr] of this.progress) this.send(this.heartbeat(node, pr));
    this.releaseConfirmedReads();
  }

  /** A read is confirmed once a quorum (joint: of both sets) answered after it arrived (thesis §6.4). */
  protected readConfirmed(acks: ReadonlyMap<NodeId, boolean>): boolean {
    return this.voteOutcome(this.config!, acks) === 'won';
  }

  private releaseConfirmedReads(): void {
    while (this.pendingReads.length > 0 && this.readConfirmed(this.pendingReads[0]!.acks)) {
      const read = this.pendingReads.shift()!;
      this.readStates.push({ id: read.id, index: read.index });
    }
  }

  // ---------------------------------------------------------------- outputs

  /** Whether {@link ready} would return anything. */
  hasReady(): boolean {
    if (this.currentRole === 'leader') this.sendAppends();
    return (
      this.messages.length > 0 ||
      this.raftLog.lastIndex > this.handedOutIndex ||
      this.pendingTruncateFrom !== undefined ||
      this.pendingSnapshot !== undefined ||
      this.commit > this.applied ||
      this.outcomes.length > 0 ||
      this.readStates.length > 0 ||
      !sameHardState(this.hardState(), this.lastHardState) ||
      !sameSoftState(this.softState(), this.lastSoftState)
    );
  }

  /** Collects the effects accumulated since the previous call; see {@link Ready} for the order to carry them out. */
  ready(): Ready {
    if (this.currentRole === 'leader') this.sendAppends();
    const hardState = this.hardState();
    const softState = this.softState();
    const hardChanged = !sameHardState(hardState, this.lastHardState);
    const softChanged = !sameSoftState(softState, this.lastSoftState);
    const ready: Ready = {
      ...(hardChanged ? { hardState } : {}),
      ...(this.pendingTruncateFrom !== undefined ? { truncateFrom: this.pendingTruncateFrom } : {}),
      ...(this.pendingSnapshot ? { snapshot: this.pendingSnapshot } : {}),
      entries: this.raftLog.slice(this.handedOutIndex + 1),
      messages: this.messages,
      committedEntries: this.raftLog.slice(this.applied + 1, this.commit),
      ...(softChanged ? { softState } : {}),
      configurationChanges: this.outcomes,
      readStates: this.readStates,
    };
    this.lastHardState = hardState;
    this.lastSoftState = softState;
    this.handedOutIndex = this.raftLog.lastIndex;
    this.pendingTruncateFrom = undefined;
    this.pendingSnapshot = undefined;
    this.applied = this.commit;
    this.messages = [];
    this.outcomes = [];
    this.readStates = [];
    return ready;
  }

  /** Acknowledges that `ready` is durable. Only now does a leader count its own entries (thesis §10.2.1). */
  advance(ready: Ready): void {
    if (ready.snapshot && this.raftLog.term(ready.snapshot.index) === ready.snapshot.term) {
      this.persistedIndex = Math.max(this.persistedIndex, ready.snapshot.index);
    }
    const last = ready.entries.at(-1);
    if (last && this.raftLog.term(last.index) === last.term) {
      // Same index and term means the same prefix (Log Matching), so the store agrees up to here.
      this.persistedIndex = Math.max(this.persistedIndex, last.index);
    }
    if (this.currentRole === 'leader') this.maybeCommit();
  }

  // ---------------------------------------------------------------- decision points (overridden only by the simulator's negative controls)

  /** §5.4.2: a leader commits by counting replicas only entries of its own term. */
  protected isCommittable(index: number): boolean {
    return this.raftLog.term(index) === this.currentTerm;
  }

  /** The highest index stored on a majority; during C_old,new, on a majority of each (§6). */
  protected quorumIndex(config: Configuration, matchOf: (id: NodeId) => number): number {
    return jointMajorityIndex(config, matchOf);
  }

  /** An election is won with a majority; during C_old,new, with a majority of each (§6). */
  protected voteOutcome(config: Configuration, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
    return jointVote(config, votes);
  }

  /**
   * Appends a leader's entries after a successful consistency check (§5.3 rule 3-4): skips the ones
   * already present with the same term and truncates only from the first conflicting one, so a late
   * or duplicated AppendEntries can never erase an entry that matches.
   */
  protected appendFromLeader(prevLogIndex: number, entries: readonly Entry[]): void {
    let i = 0;
    while (i < entries.length && this.raftLog.term(entries[i]!.index) === entries[i]!.term) i++;
    if (i === entries.length) return;
    const first = entries[i]!;
    if (first.index <= this.raftLog.lastIndex) this.truncateLog(first.index);
    this.appendToLog(entries.slice(i));
    void prevLogIndex;
  }

  /**
   * Whether a follower keeps its entries after an installed snapshot (thesis §5.4.1 / Figure 5.3): only
   * when its log holds the snapshot's last entry with the same term; otherwise the whole log goes.
   */
  protected keepsLogAfterSnapshot(snapshot: SnapshotMetadata): boolean {
    return this.raftLog.term(snapshot.index) === snapshot.term;
  }

  /** Drops the log suffix from `from`, rolling back a configuration that lived there (thesis §4.1). */
  protected truncateLog(from: number): void {
    if (from <= this.commit) throw new RaftInvariantError(`refusing to truncate committed entry ${from} (commit index ${this.commit})`);
    this.raftLog.truncate(from);
    if (from <= this.handedOutIndex) {
      this.pendingTruncateFrom = Math.min(this.pendingTruncateFrom ?? from, from);
      this.handedOutIndex = from - 1;
    }
    this.persistedIndex = Math.min(this.persistedIndex, from - 1);
    if (this.configIndex >= from) this.recomputeConfiguration();
  }

  protected appendToLog(entries: readonly Entry[]): void {
    this.raftLog.append(entries);
    for (const entry of entries) if (entry.type === 'config') this.setConfiguration(entry.config!, entry.index);
  }

  // ---------------------------------------------------------------- terms and roles

  /** §5.1: a higher term makes any server a follower; a lower-term request is answered, a lower-term response dropped. */
  private acceptTerm(m: Message): boolean {
    if (m.term > this.currentTerm) {
      if (m.type === 'RequestVote') {
        if (this.ignoresCandidate(m)) return false; // a removed server cannot disrupt us
        // A server that hears from a live leader ignores a higher-term election (thesis §4.2.3 / §9.6),
        // unless the leader itself is handing over (transfer).
        if (this.inLease() && !m.transfer) return false;
        if (m.preVote) return true; // a pre-vote changes no state
      }
      if (m.type === 'RequestVoteResponse' && m.preVote && m.voteGranted) return true;
      this.becomeFollower(m.term, m.type === 'AppendEntries' || m.type === 'InstallSnapshot' ? m.from : NO_NODE);
      return true;
    }
    if (m.term < this.currentTerm) {
      if (m.type === 'AppendEntries') {
        // Tell a stale leader about the newer term so it steps down.
        this.send(this.appendResponse(m.from, false, 0, m.prevLogIndex, 0, 0));
      } else if (m.type === 'RequestVote') {
        this.send({ type: 'RequestVoteResponse', from: this.id, to: m.from, term: this.currentTerm, voteGranted: false, preVote: m.preVote });
      } else if (m.type === 'InstallSnapshot') {
        this.send(this.snapshotResponse(m.from, 0));
      }
      return false;
    }
    return true;
  }

  /**
   * Whether this server keeps a leader's lease: it heard from a leader less than an election timeout
   * ago (CheckQuorum), or, where leaders serve lease reads, it started less than one ago (it may have
   * granted a lease before a restart and forgotten it).
   */
  private inLease(): boolean {
    if (!this.checkQuorum) return false;
    return (this.leader !== NO_NODE && this.electionElapsed < this.electionTimeout) || this.promisedLease();
  }

  /**
   * With lease reads, the promise a leader's lease rests on: no vote (but for a transfer) within an
   * election timeout of hearing from a leader, whatever happened since (a higher term learnt from a
   * stray answer forgets the leader, not the promise), nor within one of starting.
   */
  private promisedLease(): boolean {
    return this.leaseReads && (this.ticks - this.heardFromLeaderAt < this.electionTimeout || this.ticks < this.electionTimeout);
  }

  private becomeFollower(term: number, leader: NodeId): void {
    const wasLeader = this.currentRole === 'leader';
    if (term !== this.currentTerm) {
      this.currentTerm = term;
      this.votedFor = NO_NODE;
      this.transferredInTerm = false;
    }
    this.currentRole = 'follower';
    this.leader = leader;
    this.resetElectionTimer();
    if (wasLeader) this.stopLeading();
  }

  private stopLeading(): void {
    this.transfer = undefined;
    this.progress.clear();
    this.noopIndex = 0;
    // Reads not yet confirmed are dropped; the driver fails them when it sees the role change.
    this.pendingReads = [];
    this.readsAwaitingNoop = [];
    if (this.pendingChange) {
      const appended = this.pendingChange.phase !== 'catch-up';
      this.failChange(appended ? 'leadership lost; a later leader may still complete the change' : 'leadership lost');
    }
  }

  private becomeLeader(): void {
    this.currentRole = 'leader';
    this.leader = this.id;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.progress.clear();
    for (const node of membersOf(this.config!)) {
      if (node !== this.id) this.progress.set(node, new Progress(this.raftLog.lastIndex + 1));
    }
    // §5.4.2 / thesis §6.4: commit an entry of this term at once, which also commits every earlier one.
    this.noopIndex = this.appendAsLeader('noop', EMPTY).index;
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    // §5.2: randomized in [min, 2·min) so that split votes are rare.
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
  }

  // ---------------------------------------------------------------- elections

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.resetElectionTimer();
      if (this.promotable()) this.campaign(this.preVote ? 'pre-vote' : 'vote');
    }
  }

  /**
   * Whether this server may campaign: it votes in the latest configuration, or that configuration is
   * not committed yet and it votes in the one before. Without the second case a leader that appended
   * C_new without itself and crashed before C_new reached anyone leaves the others deadlocked: they
   * still need its vote for C_old's majority, it holds the newest log so nobody else can win, and it
   * would never stand (ScyllaDB's Raft hit the same case).
   */
  private promotable(): boolean {
    if (isVoter(this.config, this.id)) return true;
    return this.configIndex > this.commit && isVoter(this.configurationBefore(this.configIndex), this.id);
  }

  /** The configuration in force just before the entry at `index`. */
  private configurationBefore(index: number): Configuration | undefined {
    for (let i = index - 1; i > this.raftLog.startIndex; i--) {
      const entry = this.raftLog.entry(i)!;
      if (entry.type === 'config') return entry.config;
    }
    return this.baseConfiguration;
  }

  /**
   * A vote request from outside our configuration is ignored when the candidate's log is behind ours:
   * that is a removed server, which must not disrupt the cluster. One whose log is at least as up to
   * date is heard (thesis §4.1: servers vote for candidates outside their configuration), else a
   * member that has not yet seen the configuration that added the candidate can deadlock an election.
   */
  private ignoresCandidate(m: RequestVoteRequest): boolean {
    return !isVoter(this.config, m.from) && !this.raftLog.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  }

  private campaign(kind: 'pre-vote' | 'vote' | 'transfer'): void {
    const preVote = kind === 'pre-vote';
    if (preVote) {
      this.currentRole = 'pre-candidate'; // thesis §9.6: ask first, change nothing
    } else {
      this.currentRole = 'candidate';
      this.currentTerm++;
      this.transferredInTerm = false;
      this.votedFor = this.id; // persisted (hardState) before the requests leave
    }
    this.leader = NO_NODE;
    this.votes.clear();
    this.votes.set(this.id, true);
    const term = preVote ? this.currentTerm + 1 : this.currentTerm;
    for (const node of votersOf(this.config!)) {
      if (node === this.id) continue;
      this.send({
        type: 'RequestVote',
        from: this.id,
        to: node,
        term,
        lastLogIndex: this.raftLog.lastIndex,
        lastLogTerm: this.raftLog.lastTerm,
        preVote,
        ...(kind === 'transfer' ? { transfer: true } : {}),
      });
    }
    this.tallyVotes();
  }

  private handleRequestVote(m: RequestVoteRequest): void {
    if (this.ignoresCandidate(m)) return;
    // One vote per term (§5.2): already ours for this candidate, or not cast and no leader known.
    // A pre-vote for a higher term promises nothing, so it may be granted regardless (thesis §9.6).
    const free = this.votedFor === m.from || (this.votedFor === NO_NODE && this.leader === NO_NODE) || (m.preVote && m.term > this.currentTerm);
    // A real vote at this term, too, waits for the lease promise (the higher-term check is in acceptTerm).
    const promised = !m.preVote && !m.transfer && this.votedFor !== m.from && this.promisedLease();
    const grant = free && !promised && this.raftLog.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (grant && !m.preVote) {
      this.votedFor = m.from;
      this.resetElectionTimer();
    }
    this.send({
      type: 'RequestVoteResponse',
      from: this.id,
      to: m.from,
      term: grant && m.preVote ? m.term : this.currentTerm,
      voteGranted: grant,
      preVote: m.preVote,
    });
  }

  private handleRequestVoteResponse(m: RequestVoteResponse): void {
    const expected: Role = m.preVote ? 'pre-candidate' : 'candidate';
    if (this.currentRole !== expected || !isVoter(this.config, m.from)) return;
    this.votes.set(m.from, m.voteGranted);
    this.tallyVotes();
  }

  private tallyVotes(): void {
    const outcome = this.voteOutcome(this.config!, this.votes);
    if (outcome === 'won') {
      if (this.currentRole === 'pre-candidate') this.campaign('vote');
      else this.becomeLeader();
    } else if (outcome === 'lost') {
      this.becomeFollower(this.currentTerm, NO_NODE);
    }
  }

  // ---------------------------------------------------------------- replication: follower side

  private handleAppendEntries(m: AppendEntriesRequest): void {
    if (this.currentRole !== 'follower') this.becomeFollower(this.currentTerm, m.from);
    this.leader = m.from;
    this.electionElapsed = 0;
    this.heardFromLeaderAt = this.ticks;

    const last = this.raftLog.lastIndex;
    const echo = m.context !== undefined ? { context: m.context } : {};
    if (m.prevLogIndex < this.raftLog.startIndex) {
      // Compacted here, hence committed, hence the same as the leader's up to our commit index.
      this.send({ ...this.appendResponse(m.from, true, this.commit, 0, 0, 0), ...echo });
      return;
    }
    if (m.prevLogIndex > last) {
      this.send({ ...this.appendResponse(m.from, false, 0, m.prevLogIndex, 0, last + 1), ...echo });
      return;
    }
    const localTerm = this.raftLog.term(m.prevLogIndex)!;
    if (localTerm !== m.prevLogTerm) {
      this.send({ ...this.appendResponse(m.from, false, 0, m.prevLogIndex, localTerm, this.raftLog.firstIndexOfTerm(localTerm, m.prevLogIndex)), ...echo });
      return;
    }
    this.appendFromLeader(m.prevLogIndex, m.entries);
    // Only what this message proved to match may be committed: entries beyond it may be stale (Figure 2, rule 5).
    const lastNew = m.prevLogIndex + m.entries.length;
    if (m.leaderCommit > this.commit) this.commit = Math.max(this.commit, Math.min(m.leaderCommit, lastNew));
    this.send({ ...this.appendResponse(m.from, true, lastNew, 0, 0, 0), ...echo });
  }

  private appendResponse(
    to: NodeId,
    success: boolean,
    matchIndex: number,
    rejectedIndex: number,
    conflictTerm: number,
    conflictIndex: number,
  ): AppendEntriesResponse {
    return { type: 'AppendEntriesResponse', from: this.id, to, term: this.currentTerm, success, matchIndex, rejectedIndex, conflictTerm, conflictIndex };
  }

  // ---------------------------------------------------------------- replication: leader side

  private tickLeader(): void {
    this.electionElapsed++;
    this.heartbeatElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.currentTerm, NO_NODE); // thesis §6.2: a leader cut off from a quorum steps down
        return;
      }
      for (const pr of this.progress.values()) pr.recentActive = false;
    }
    if (this.transfer && this.ticks > this.transfer.deadline) this.transfer = undefined; // the target did not take over: lead on
    if (this.pendingChange?.phase === 'catch-up' && this.ticks > this.pendingChange.deadline) {
      this.failChange('new servers did not catch up in time');
    }
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    const config = this.config!;
    const active = (id: NodeId) => (id === this.id || this.progress.get(id)?.recentActive ? 1 : 0);
    return this.quorumIndex(config, active) >= 1;
  }

  private broadcastHeartbeat(): void {
    for (const [node, pr] of this.progress) {
      if (pr.inflight.length === 0) pr.silentHeartbeats = 0;
      else if (++pr.silentHeartbeats >= CORE_DEFAULTS.silentHeartbeatsBeforeProbe) {
        // An AppendEntries of the pipeline was probably lost; fall back to probing from what is known to match.
        pr.becomeProbe(pr.match + 1);
      }
      if (pr.state === 'snapshot' && this.ticks - pr.snapshotSentAt > 2 * this.electionTimeout) {
        pr.becomeProbe(pr.match + 1); // the snapshot was neither answered nor reported failed: try again
      }
      if (pr.state === 'probe') {
        pr.paused = false;
        this.sendAppend(node, pr, true);
      } else {
        this.send(this.heartbeat(node, pr));
      }
    }
  }

  /** Sends new entries to every follower whose pacing allows it. */
  private sendAppends(): void {
    for (const [node, pr] of this.progress) {
      while (pr.next <= this.raftLog.lastIndex && pr.canSend(this.maxInflight)) this.sendAppend(node, pr, false);
    }
  }

  /**
   * An empty AppendEntries at the confirmed match point, which always passes the consistency check;
   * at the log's start when that point was compacted (a follower being sent a snapshot).
   */
  private heartbeat(node: NodeId, pr: Progress): AppendEntriesRequest {
    return this.appendRequest(node, Math.max(pr.match, this.raftLog.startIndex), []);
  }

  private sendAppend(node: NodeId, pr: Progress, evenIfEmpty: boolean): void {
    if (pr.next <= this.raftLog.startIndex) {
      this.sendSnapshot(node, pr); // the entries it needs are gone: only the snapshot can catch it up
      return;
    }
    const entries = this.raftLog.sliceForAppend(pr.next, this.maxEntriesPerAppend, this.maxBytesPerAppend);
    if (entries.length === 0 && !evenIfEmpty) return;
    this.send(this.appendRequest(node, pr.next - 1, entries));
    pr.sent(pr.next - 1 + entries.length);
  }

  private appendRequest(to: NodeId, prevLogIndex: number, entries: Entry[]): AppendEntriesRequest {
    return {
      type: 'AppendEntries',
      from: this.id,
      to,
      term: this.currentTerm,
      prevLogIndex,
      prevLogTerm: this.raftLog.term(prevLogIndex)!,
      entries,
      leaderCommit: this.commit,
      context: this.readRound,
    };
  }

  private handleAppendEntriesResponse(m: AppendEntriesResponse): void {
    if (this.currentRole !== 'leader') return;
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.context !== undefined && this.pendingReads.length > 0) {
      // An answer in our term to a message sent after a read arrived: this server still followed us then.
      for (const read of this.pendingReads) if (read.round <= m.context) read.acks.set(m.from, true);
      this.releaseConfirmedReads();
    }
    if (m.success) {
      const advanced = pr.acknowledge(m.matchIndex);
      if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= this.raftLog.startIndex)) {
        pr.becomeReplicate(); // the logs agree up to match: pipeline from here
      }
      if (advanced) {
        this.maybeCommit();
        this.advanceChange();
        if (this.transfer?.to === m.from) this.maybeSendTimeoutNow();
      }
      return;
    }
    // A rejection of something already known to match is late or duplicated: ignore it. While a
    // snapshot is out, rejections of heartbeats say only what the snapshot will fix.
    if (m.rejectedIndex <= pr.match || pr.state === 'snapshot') return;
    if (pr.state === 'probe' && m.rejectedIndex !== pr.next - 1) return;
    pr.becomeProbe(this.nextAfterRejection(m));
  }

  /** Fast backtracking (§5.3): skip a whole conflicting term per round trip instead of one entry. */
  private nextAfterRejection(m: AppendEntriesResponse): number {
    let next = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const ours = this.raftLog.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
      if (ours > 0) next = ours + 1;
    }
    return Math.max(1, Math.min(next, m.rejectedIndex));
  }

  private appendAsLeader(type: Entry['type'], command: Uint8Array, config?: Configuration): Entry {
    const entry: Entry = { index: this.raftLog.lastIndex + 1, term: this.currentTerm, type, command, ...(config ? { config } : {}) };
    this.appendToLog([entry]);
    return entry;
  }

  private maybeCommit(): void {
    const index = this.quorumIndex(this.config!, (id) => (id === this.id ? this.persistedIndex : (this.progress.get(id)?.match ?? 0)));
    if (index <= this.commit || index > this.raftLog.lastIndex || !this.isCommittable(index)) return;
    this.commit = index;
    if (this.readsAwaitingNoop.length > 0 && this.commit >= this.noopIndex) {
      const waiting = this.readsAwaitingNoop;
      this.readsAwaitingNoop = [];
      for (const id of waiting) this.registerRead(id);
    }
    this.onCommitAdvanced();
  }

  private onCommitAdvanced(): void {
    const config = this.config!;
    if (isJoint(config) && this.configIndex <= this.commit) {
      // C_old,new is committed: move on to C_new (§6), whoever started the change.
      const entry = this.appendAsLeader('config', EMPTY, configuration(config.voters, undefined, config.learners ?? [], config.addresses ?? {}));
      if (this.pendingChange?.phase === 'joint') {
        this.pendingChange.phase = 'final';
        this.pendingChange.index = entry.index;
      }
      return;
    }
    if (!isJoint(config) && this.configIndex <= this.commit) {
      const change = this.pendingChange;
      if (change?.phase === 'final' && this.commit >= change.index) {
        this.pendingChange = undefined;
        this.outcomes.push({ id: change.id, status: 'committed', configuration: config });
      }
      if (!config.voters.includes(this.id)) {
        this.becomeFollower(this.currentTerm, NO_NODE); // a leader outside C_new steps down once C_new commits
      }
    }
  }

  /** Moves a membership change on from catch-up to C_old,new once every new server has caught up. */
  private advanceChange(): void {
    const change = this.pendingChange;
    if (!change || change.phase !== 'catch-up') return;
    const current = this.config!.voters;
    const caughtUp = change.target.every((node) => node === this.id || current.includes(node) || (this.progress.get(node)?.match ?? 0) >= this.commit);
    if (!caughtUp) return;
    change.phase = 'joint';
    // A learner being promoted is a voter of C_new and no longer a learner.
    const learners = change.learners.filter((node) => !change.target.includes(node));
    change.index = this.appendAsLeader('config', EMPTY, configuration(change.target, current, learners, change.addresses)).index;
  }

  private failChange(reason: string): void {
    const change = this.pendingChange!;
    this.pendingChange = undefined;
    this.outcomes.push({ id: change.id, status: 'failed', reason, configuration: this.config! });
    if (this.currentRole === 'leader') this.syncProgressWithConfiguration();
  }

  // ---------------------------------------------------------------- configuration

  private setConfiguration(config: Configuration, index: number): void {
    this.config = config;
    this.configIndex = index;
    if (this.currentRole === 'leader') this.syncProgressWithConfiguration();
  }

  private recomputeConfiguration(): void {
    for (let index = this.raftLog.lastIndex; index > this.raftLog.startIndex; index--) {
      const entry = this.raftLog.entry(index)!;
      if (entry.type === 'config') {
        this.config = entry.config;
        this.configIndex = index;
        return;
      }
    }
    this.config = this.baseConfiguration;
    this.configIndex = this.raftLog.startIndex;
  }

  /** The leader replicates to every member of the configuration, plus servers catching up for a change. */
  private syncProgressWithConfiguration(): void {
    const wanted = new Set(membersOf(this.config!));
    if (this.pendingChange) for (const node of this.pendingChange.target) wanted.add(node);
    wanted.delete(this.id);
    for (const node of wanted) if (!this.progress.has(node)) this.progress.set(node, new Progress(this.raftLog.lastIndex + 1));
    for (const node of [...this.progress.keys()]) if (!wanted.has(node)) this.progress.delete(node);
  }

  // ---------------------------------------------------------------- effects

  private send(message: Message): void {
    this.messages.push(message);
  }

  private hardState(): HardState {
    return { term: this.currentTerm, vote: this.votedFor, commit: this.commit };
  }

  private softState(): SoftState {
    return { role: this.currentRole, term: this.currentTerm, leaderId: this.leader };
  }
}

/** A configuration entry's content: C_new (with C_old while joint), its learners, and the addresses of all of them. */
function configuration(voters: readonly NodeId[], outgoing: readonly NodeId[] | undefined, learners: readonly NodeId[], addresses: Readonly<Record<string, string>>): Configuration {
  return {
    voters,
    ...(outgoing ? { outgoing } : {}),
    ...(learners.length > 0 ? { learners } : {}),
    ...onlyAddressesOf([...voters, ...(outgoing ?? []), ...learners], addresses),
  };
}

/** `{ addresses }` restricted to `ids`, or nothing when no address is known. */
function onlyAddressesOf(ids: readonly NodeId[], addresses: Readonly<Record<string, string>> | undefined): { addresses?: Record<string, string> } {
  if (!addresses) return {};
  const kept: Record<string, string> = {};
  for (const id of ids) if (addresses[id] !== undefined) kept[id] = addresses[id]!;
  return Object.keys(kept).length > 0 ? { addresses: kept } : {};
}

function sameHardState(a: HardState, b: HardState): boolean {
  // The commit index alone does not make a hard state worth a write: it is an optimisation (see HardState).
  return a.term === b.term && a.vote === b.vote;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.term === b.term && a.leaderId === b.leaderId;
}
