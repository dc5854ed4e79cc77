import { BehaviorSubject, Observable, Subject, distinctUntilChanged, map } from 'rxjs';
import { sameIds, validateVoterIds } from '../core/configuration.js';
import { ConfigurationChangeError, NotLeaderError, RaftError } from '../core/errors.js';
import { RaftCore } from '../core/raft.js';
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  ConfigurationChangeOutcome,
  Entry,
  EntryType,
  Message,
  NodeId,
  Ready,
  RequestVoteRequest,
  RequestVoteResponse,
  Role,
} from '../core/types.js';
import type { RaftStorage } from '../storage/storage.js';
import type { RaftMember, RaftPeer, RaftRpcHandler, RaftTransport, RpcOptions } from '../transport/transport.js';
import {
  CommandAbortedError,
  CommandForwardingError,
  CommandTimeoutError,
  ConfigurationChangeFailedError,
  LeadershipLostError,
  NodeStoppedError,
  RaftOptionsError,
  StorageFailureError,
} from './errors.js';
import { resolveTiming, validateMembers, validateNodeId, type RaftLogger, type RaftNodeOptions, type ResolvedTiming } from './options.js';
import { toStateMachine, type RaftStateMachine } from './state-machine.js';
import { decodeCommand, encodeCommand, isEnvelope, type CommandSession } from './command-envelope.js';
import { SessionTable, type SessionOutcome } from './session-table.js';
import { PeerUnreachableError } from '../transport/memory-transport.js';
import { randomBytes } from 'node:crypto';
import { failpoint } from '../failpoints.js';

/** A committed log entry, as `commits$` emits it. */
export interface CommittedEntry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** The command's bytes (empty for `noop` and `config` entries). */
  readonly command: Uint8Array;
}

/** Role, term and leader, as `state$` emits them. */
export interface RaftState {
  readonly role: Role | 'stopped';
  readonly term: number;
  readonly leaderId: NodeId;
}

/** A snapshot of a node, for dashboards and health checks. */
export interface RaftStatus extends RaftState {
  readonly nodeId: NodeId;
  readonly leaderUrl?: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** The members in effect (during a change, C_new), with their addresses. */
  readonly members: RaftMember[];
  /** True while C_old,new is in effect. */
  readonly joint: boolean;
  /** On the leader: how far each other server's log is known to match (its matchIndex); empty elsewhere. */
  readonly replication: { readonly id: NodeId; readonly matchIndex: number }[];
}

/** A member to add or keep: without an id, the node asks the server at `url` for it (`GET /raft/id`). */
export interface RaftMemberSpec {
  readonly id?: NodeId;
  readonly url?: string;
}

/** Operational events of a node, for metrics (`events$`). */
export type RaftNodeEvent =
  /** An outgoing AppendEntries or RequestVote settled (`ok`: the peer answered). */
  | { readonly type: 'rpc'; readonly rpc: string; readonly to: NodeId; readonly ms: number; readonly ok: boolean }
  /** A storage batch became durable, carrying `entries` new entries (group commit). */
  | { readonly type: 'persist'; readonly entries: number; readonly ms: number }
  /** An AppendEntries left for `to` with `entries` entries and `bytes` command bytes (0 entries: a heartbeat). */
  | { readonly type: 'append'; readonly to: NodeId; readonly entries: number; readonly bytes: number };

/** Options of one `command()` call. */
export interface CommandOptions {
  /** Give up after this long (CommandTimeoutError). Default: the node's `commandTimeoutMs`. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

interface CommandWaiter extends Waiter<SessionOutcome> {
  readonly term: number;
}

interface PendingReply {
  readonly from: NodeId;
  readonly type: 'AppendEntriesResponse' | 'RequestVoteResponse';
  readonly request: AppendEntriesRequest | RequestVoteRequest;
  readonly resolve: (response: Message) => void;
  readonly reject: (error: unknown) => void;
}

const encoder = new TextEncoder();

/**
 * A Raft server: the engine ({@link RaftCore}) plus everything it must not do itself — a clock,
 * durable storage, the network and the state machine. Usable without Nest; `RaftModule` wraps it.
 *
 * Its pipeline (DESIGN.md): collect a Ready → persist it in one storage batch → only then send its
 * messages and answer the RPCs that led to it → apply its committed entries in order. Proposals that
 * arrive while a batch is being persisted go into the next batch (group commit).
 */
export class RaftNode {
  readonly id: NodeId;
  private readonly timing: ResolvedTiming;
  private readonly storage: RaftStorage;
  private readonly transport: RaftTransport;
  private readonly stateMachine: RaftStateMachine;
  private readonly logger: RaftLogger | undefined;
  private readonly random: () => number;
  private readonly initialMembers: ReadonlyMap<NodeId, string | undefined>;
  private readonly ownUrl: string | undefined;

  private core: RaftCore | undefined;
  private running = false;
  private starting: Promise<void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private applyChain: Promise<void> = Promise.resolve();
  private applied = 0;

  private readonly peers = new Map<string, RaftPeer>();
  /** This node's client session (thesis §6.3): a random id for the life of the process. */
  private readonly clientId = randomBytes(16).toString('hex');
  private nextSequence = 1;
  private lowestPending = 1;
  private readonly unanswered = new Set<number>();
  private sessions!: SessionTable;
  /** Addresses learned from membership requests, for servers not yet in any configuration entry (catching up). */
  private readonly learnedUrls = new Map<NodeId, string>();
  private pendingReplies: PendingReply[] = [];
  private readonly commandWaiters = new Map<number, CommandWaiter>();
  private readonly readWaiters = new Map<number, Waiter<number>>();
  private nextReadId = 1;
  private readonly changeWaiters = new Map<number, Waiter<void>>();
  private readonly stateSubject = new BehaviorSubject<RaftState>({ role: 'stopped', term: 0, leaderId: 0 });
  private readonly commitSubject = new Subject<CommittedEntry>();
  private readonly eventSubject = new Subject<RaftNodeEvent>();
  private readonly appliedWaiters: Array<{ index: number; resolve: () => void; reject: (error: unknown) => void }> = [];
  /** Public operations (commands, reads, membership changes) under way, so a graceful stop can let them finish. */
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];

  /** Committed entries, in index order, gapless, as they are applied (live only; see {@link commitsFrom}). */
  readonly commits$: Observable<CommittedEntry> = this.commitSubject.asObservable();
  /** Role, term and leader; emits the current value on subscription. */
  readonly state$: Observable<RaftState> = this.stateSubject.asObservable();
  /** The leader's id (0 while none is known); emits the current value on subscription, then changes. */
  readonly leader$: Observable<NodeId> = this.state$.pipe(
    map((s) => s.leaderId),
    distinctUntilChanged(),
  );

  /** RPC latencies, persisted batch sizes and AppendEntries sizes, for metrics. Emits only while observed. */
  readonly events$: Observable<RaftNodeEvent> = this.eventSubject.asObservable();

  /** The receiving side of the RPCs, for a transport to deliver into (HTTP controllers, MemoryNetwork). */
  readonly rpcHandler: RaftRpcHandler;

  constructor(options: RaftNodeOptions) {
    validateNodeId('nodeId', options.nodeId);
    if (options.peers) validateMembers('peers', options.peers);
    if (options.peers && options.peers.length > 0 && !options.peers.some((p) => p.id === options.nodeId)) {
      throw new RaftOptionsError('peers', `must include this node (id ${options.nodeId})`);
    }
    if (!options.storage) throw new RaftOptionsError('storage', 'is required');
    if (!options.transport) throw new RaftOptionsError('transport', 'is required');
    this.id = options.nodeId;
    this.timing = resolveTiming(options);
    this.storage = options.storage;
    this.transport = options.transport;
    this.stateMachine = toStateMachine(options.stateMachine);
    this.logger = options.logger;
    this.random = options.random ?? Math.random;
    this.ownUrl = options.url;
    this.initialMembers = new Map((options.peers ?? []).map((p) => [p.id, p.url]));
    const node = this;
    this.rpcHandler = {
      id: this.id,
      appendEntries: (request) => node.receive(request, 'AppendEntriesResponse') as Promise<AppendEntriesResponse>,
      requestVote: (request) => node.receive(request, 'RequestVoteResponse') as Promise<RequestVoteResponse>,
      command: (command, rpcOptions) => node.proposeHere(command, rpcOptions),
      setConfiguration: (members, rpcOptions) => node.changeConfigurationHere(members, rpcOptions),
      readIndex: (rpcOptions) => node.readIndexHere(rpcOptions),
      timeoutNow: async (request) => {
        if (!node.running) throw new NodeStoppedError();
        node.core!.step({ ...request, to: node.id });
        node.schedule();
      },
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /** Loads the store, bootstraps a new cluster if the store is empty and peers were given, and starts the clock. */
  start(): Promise<void> {
    this.starting ??= this.doStart().catch((error: unknown) => {
      this.starting = undefined;
      throw error;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const recovered = await this.storage.load();
    let baseConfiguration = recovered.baseConfiguration;
    const empty = recovered.hardState.term === 0 && recovered.entries.length === 0 && !baseConfiguration;
    if (empty && this.initialMembers.size > 0) {
      const voters = [...this.initialMembers.keys()].sort((a, b) => a - b);
      const addresses: Record<string, string> = {};
      for (const [id, url] of this.initialMembers) if (url) addresses[id] = url;
      baseConfiguration = { voters, ...(Object.keys(addresses).length ? { addresses } : {}) };
      await this.storage.save({ entries: [], baseConfiguration });
      this.logger?.log(`${this.who()}: bootstrapped a new cluster of [${voters.join(', ')}]`);
    } else if (baseConfiguration && this.initialMembers.size > 0 && !sameIds([...this.initialMembers.keys()].sort((a, b) => a - b), baseConfiguration.voters)) {
      this.logger?.warn(`${this.who()}: the peers option differs from the stored configuration; the stored one wins`);
    }
    const appliedIndex = (await this.stateMachine.appliedIndex?.()) ?? 0;
    const ticksOf = (ms: number) => Math.max(1, Math.round(ms / this.timing.tickMs));
    const electionTimeoutTicks = ticksOf(this.timing.electionTimeoutMs);
    this.core = new RaftCore(
      {
        id: this.id,
        electionTimeoutTicks,
        heartbeatTicks: Math.min(ticksOf(this.timing.heartbeatIntervalMs), electionTimeoutTicks - 1),
        preVote: this.timing.preVote,
        checkQuorum: this.timing.checkQuorum,
        maxEntriesPerAppend: this.timing.maxEntriesPerAppend,
        maxBytesPerAppend: this.timing.maxBytesPerAppend,
        maxInflightAppends: this.timing.maxInflightAppends,
        random: this.random,
      },
      { ...recovered, ...(baseConfiguration ? { baseConfiguration } : {}), appliedIndex },
    );
    this.applied = appliedIndex;
    this.sessions = new SessionTable(this.timing.sessionExpiryEntries);
    this.running = true;
    this.publishState();
    this.ticker = setInterval(() => this.tick(), this.timing.tickMs);
    this.ticker.unref?.();
    this.schedule();
  }

  /**
   * Stops the clock, waits for the batch being persisted, rejects what is still waiting with
   * {@link NodeStoppedError}, and closes transport and storage.
   */
  async stop(): Promise<void> {
    if (this.starting) await this.starting.catch(() => undefined);
    if (!this.running && !this.core) return;
    await this.handOverLeadership();
    // Let what is under way finish (now as a follower, forwarding to the new leader), within bounds.
    await this.drain(2 * this.timing.electionTimeoutMs);
    this.running = false;
    clearInterval(this.ticker);
    await this.pumping?.catch(() => undefined);
    this.failEverything(new NodeStoppedError('the Raft node is shutting down'));
    await this.applyChain.catch(() => undefined);
    this.core = undefined;
    this.starting = undefined;
    this.stateSubject.next({ role: 'stopped', term: this.stateSubject.value.term, leaderId: 0 });
    await Promise.allSettled([...this.peers.values()].map((p) => p.close()));
    this.peers.clear();
    await this.transport.close();
    await this.storage.close();
    this.commitSubject.complete();
    this.stateSubject.complete();
    this.eventSubject.complete();
  }

  get isRunning(): boolean {
    return this.running;
  }

  // ---------------------------------------------------------------- accessors

  isLeader(): boolean {
    return this.running && this.core?.role === 'leader';
  }
  get leaderId(): NodeId {
    return this.running ? (this.core?.leaderId ?? 0) : 0;
  }
  get term(): number {
    return this.core?.term ?? 0;
  }
  get commitIndex(): number {
    return this.core?.commitIndex ?? 0;
  }
  get appliedIndex(): number {
    return this.applied;
  }

  status(): RaftStatus {
    const core = this.core;
    const config = core?.configuration;
    const leaderId = this.leaderId;
    const leaderUrl = leaderId ? this.urlOf(leaderId) : undefined;
    return {
      nodeId: this.id,
      role: this.running && core ? core.role : 'stopped',
      term: core?.term ?? 0,
      leaderId,
      ...(leaderUrl ? { leaderUrl } : {}),
      commitIndex: core?.commitIndex ?? 0,
      appliedIndex: this.applied,
      lastIndex: core?.lastIndex ?? 0,
      members: (config?.voters ?? []).map((id) => {
        const url = this.urlOf(id);
        return url ? { id, url } : { id };
      }),
      joint: config?.outgoing !== undefined,
      replication: core && core.role === 'leader' ? [...core.matchIndexes()].map(([id, matchIndex]) => ({ id, matchIndex })) : [],
    };
  }

  // ---------------------------------------------------------------- commands

  /**
   * Replicates `command` and resolves with the state machine's answer once it is committed and
   * applied. On a follower it is forwarded to the leader; while no leader is known it waits for one.
   *
   * Exactly once (Raft thesis §6.3): the command carries this node's client session and a sequence
   * number, so it is retried on its own across leader changes, lost answers and forwarding failures
   * until the timeout, and a retry that was already applied gets the first answer back.
   * @throws CommandTimeoutError when no answer came in time (the command may still be applied, once).
   * @throws NotLeaderError when no leader emerged in time; NodeStoppedError, CommandAbortedError,
   *   SessionExpiredError, or whatever the state machine threw for this command.
   */
  command(command: Uint8Array | string, options: CommandOptions = {}): Promise<unknown> {
    return this.tracked(() => this.commandOnce(command, options));
  }

  private async commandOnce(command: Uint8Array | string, options: CommandOptions): Promise<unknown> {
    const payload = typeof command === 'string' ? encoder.encode(command) : command;
    this.checkCommandSize(payload);
    this.ensureRunning();
    const timeoutMs = options.timeoutMs ?? this.timing.commandTimeoutMs;
    const sequence = this.nextSequence++;
    this.unanswered.add(sequence);
    try {
      const bytes = encodeCommand(payload, { clientId: this.clientId, sequence, lowestUnanswered: this.lowestUnanswered() });
      return await this.route(bytes, Date.now() + timeoutMs, timeoutMs, options.signal);
    } finally {
      this.unanswered.delete(sequence);
    }
  }

  /** Proposes `bytes` on the leader, wherever it is, retrying what is safe to retry until `deadline`. */
  private async route(bytes: Uint8Array, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    for (;;) {
      this.ensureRunning();
      signal?.throwIfAborted();
      const core = this.core!;
      const leaderId = core.leaderId;
      const remaining = () => Math.max(1, deadline - Date.now());
      try {
        if (core.role === 'leader') {
          const outcome = await this.proposeOutcome(bytes, { timeoutMs: remaining(), ...(signal ? { signal } : {}) });
          if (outcome.ok) return outcome.value;
          throw new AnswerError(outcome.error);
        }
        if (leaderId) {
          const peer = this.peerFor(leaderId);
          if (!peer) throw new NotLeaderError(leaderId);
          return await peer.command(bytes, { timeoutMs: remaining(), ...(signal ? { signal } : {}) });
        }
      } catch (error) {
        if (error instanceof AnswerError) throw error.answer; // the state machine's own verdict
        // The session makes every retry safe; these failures only say "not answered (yet)".
        if (!isRetryable(error)) throw error;
        this.logger?.debug?.(`${this.who()}: retrying a command after ${(error as Error).message}`);
      }
      if (Date.now() >= deadline) throw this.leaderId ? new CommandTimeoutError(timeoutMs) : new NotLeaderError(0);
      await this.waitForLeaderChange(this.leaderId === leaderId ? leaderId : -1, Math.min(remaining(), this.timing.electionTimeoutMs), signal);
    }
  }

  /** The lowest sequence this client still waits for (answers below it may be forgotten by the cluster). */
  private lowestUnanswered(): number {
    while (this.lowestPending < this.nextSequence && !this.unanswered.has(this.lowestPending)) this.lowestPending++;
    return this.lowestPending;
  }

  /** Proposes on this node, which must be the leader (also the target of a forwarded command). */
  private async proposeHere(command: Uint8Array, options: RpcOptions = {}): Promise<unknown> {
    const outcome = await this.proposeOutcome(command, options);
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }

  /**
   * Appends `command` on this leader and resolves with what applying it produced. Rejects only when it
   * was not answered: not the leader, leadership lost, timeout, stop, abort.
   */
  private proposeOutcome(command: Uint8Array, options: RpcOptions = {}): Promise<SessionOutcome> {
    this.ensureRunning();
    // A bare command (a foreign client of /raft/command) gets an envelope without a session.
    if (!isEnvelope(command)) {
      this.checkCommandSize(command);
      command = encodeCommand(command);
    }
    const core = this.core!;
    if (core.role !== 'leader') throw new NotLeaderError(core.leaderId, this.urlOf(core.leaderId));
    const timeoutMs = options.timeoutMs ?? this.timing.commandTimeoutMs;
    const { index, term } = core.propose(command);
    const answer = new Promise<SessionOutcome>((resolve, reject) => {
      this.commandWaiters.set(index, { term, resolve, reject });
    });
    this.schedule();
    return this.withDeadline(answer, timeoutMs, options.signal, () => this.commandWaiters.delete(index));
  }

  // ---------------------------------------------------------------- leadership transfer

  /**
   * Hands leadership to `toId` (default: the most up-to-date other voter) without an election timeout
   * (thesis §3.10), and resolves once this node sees another leader. Commands proposed meanwhile wait
   * and go to the new leader.
   * @throws NotLeaderError on a follower; CommandTimeoutError if no other node took over in time;
   *   ConfigurationChangeError('invalid') if `toId` is not a voter.
   */
  async transferLeadership(toId?: NodeId, options: CommandOptions = {}): Promise<NodeId> {
    this.ensureRunning();
    const core = this.core!;
    if (core.role !== 'leader') throw new NotLeaderError(core.leaderId, this.urlOf(core.leaderId));
    const target = toId ?? this.bestTransferTarget();
    if (target === undefined) throw new ConfigurationChangeError('invalid', 'there is no other voter to hand leadership to');
    const timeoutMs = options.timeoutMs ?? 2 * this.timing.electionTimeoutMs;
    const handedOver = new Promise<NodeId>((resolve) => {
      const subscription = this.leader$.subscribe((leader) => {
        if (leader !== 0 && leader !== this.id) {
          queueMicrotask(() => subscription.unsubscribe());
          resolve(leader);
        }
      });
    });
    core.transferLeadership(target);
    this.schedule();
    return this.withDeadline(handedOver, timeoutMs, options.signal, () => undefined);
  }

  /**
   * If this node leads, hands leadership to the most up-to-date other voter and waits (at most two
   * election timeouts) until another node leads; what a graceful shutdown does first. Never throws.
   */
  async handOverLeadership(): Promise<void> {
    if (!this.isLeader() || this.bestTransferTarget() === undefined) return;
    await this.transferLeadership(undefined, { timeoutMs: 2 * this.timing.electionTimeoutMs }).catch((error: unknown) =>
      this.logger?.warn(`${this.who()}: leadership transfer before shutdown failed: ${(error as Error).message}`),
    );
  }

  private bestTransferTarget(): NodeId | undefined {
    const voters = new Set(this.core?.configuration?.voters ?? []);
    const candidates = this.status().replication.filter((p) => voters.has(p.id) && this.peerFor(p.id)?.timeoutNow);
    candidates.sort((a, b) => b.matchIndex - a.matchIndex || a.id - b.id);
    return candidates[0]?.id;
  }

  // ---------------------------------------------------------------- linearizable reads

  /**
   * Waits until this node's state machine reflects every write committed before the call
   * (ReadIndex, thesis §6.4), without writing to the log: the leader confirms with a quorum that it
   * still leads; a follower asks the leader for that index. Resolves with the read index.
   * @throws CommandTimeoutError, NotLeaderError (no leader, or its transport cannot serve read indexes), NodeStoppedError
   */
  barrier(options: CommandOptions = {}): Promise<number> {
    return this.tracked(() => this.barrierOnce(options));
  }

  private async barrierOnce(options: CommandOptions): Promise<number> {
    const timeoutMs = options.timeoutMs ?? this.timing.commandTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    const remaining = () => Math.max(1, deadline - Date.now());
    for (;;) {
      this.ensureRunning();
      options.signal?.throwIfAborted();
      const leaderId = this.core!.leaderId;
      const peer = !this.isLeader() && leaderId ? this.peerFor(leaderId) : undefined;
      // A transport that cannot ask the leader for a read index: the caller must go to the leader.
      if (peer && !peer.readIndex) throw new NotLeaderError(leaderId, this.urlOf(leaderId));
      const rpc = { timeoutMs: remaining(), ...(options.signal ? { signal: options.signal } : {}) };
      let index: number | undefined;
      try {
        if (this.isLeader()) index = await this.readIndexHere(rpc);
        else if (peer) index = await peer.readIndex!(rpc);
      } catch (error) {
        if (!isRetryable(error)) throw error; // reads change nothing: any failure to get an answer may be retried
      }
      if (index !== undefined) {
        await this.withDeadline(this.waitForApplied(index), remaining(), options.signal, () => undefined);
        return index;
      }
      if (Date.now() >= deadline) throw this.leaderId ? new CommandTimeoutError(timeoutMs) : new NotLeaderError(0);
      await this.waitForLeaderChange(leaderId, Math.min(remaining(), this.timing.electionTimeoutMs), options.signal);
    }
  }

  /** Runs `query` against this node's state machine once it reflects every write committed before the call. */
  async read<T>(query: () => T | Promise<T>, options?: CommandOptions): Promise<T> {
    await this.barrier(options);
    return query();
  }

  /** On the leader: a read index confirmed by a quorum (not yet necessarily applied here). */
  private readIndexHere(options: RpcOptions = {}): Promise<number> {
    this.ensureRunning();
    const core = this.core!;
    if (core.role !== 'leader') throw new NotLeaderError(core.leaderId, this.urlOf(core.leaderId));
    const id = this.nextReadId++;
    const confirmed = new Promise<number>((resolve, reject) => this.readWaiters.set(id, { resolve, reject }));
    core.readIndex(id);
    this.schedule();
    return this.withDeadline(confirmed, options.timeoutMs ?? this.timing.commandTimeoutMs, options.signal, () => this.readWaiters.delete(id));
  }

  // ---------------------------------------------------------------- membership

  /**
   * Changes the cluster's members to exactly `members` through joint consensus (new servers first
   * catch up without a vote). Resolves when C_new is committed. A member without an id is asked for
   * it at its url (`GET /raft/id`), as the Go model did.
   */
  async setConfiguration(members: readonly RaftMemberSpec[], options: CommandOptions = {}): Promise<void> {
    this.ensureRunning();
    const resolved = await this.resolveMemberIds(members, options);
    const timeoutMs = options.timeoutMs ?? this.timing.commandTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.ensureRunning();
      const core = this.core!;
      if (core.role === 'leader') {
        try {
          return await this.changeConfigurationHere(resolved, { timeoutMs: deadline - Date.now(), ...(options.signal ? { signal: options.signal } : {}) });
        } catch (error) {
          // A leader fresh in its term first commits its no-op (the single-server-change rule): that
          // takes a round trip, so wait for it rather than fail the caller.
          if (!(error instanceof ConfigurationChangeError && error.reason === 'leader-not-ready') || Date.now() >= deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, this.timing.heartbeatIntervalMs));
          continue;
        }
      }
      const leaderId = core.leaderId;
      const peer = leaderId ? this.peerFor(leaderId) : undefined;
      if (peer) {
        try {
          return await peer.setConfiguration(resolved, { timeoutMs: Math.max(1, deadline - Date.now()), ...(options.signal ? { signal: options.signal } : {}) });
        } catch (error) {
          if (!(error instanceof NotLeaderError)) throw error instanceof RaftError ? error : new CommandForwardingError(leaderId, error);
        }
      } else if (leaderId) {
        throw new NotLeaderError(leaderId);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw leaderId ? new CommandTimeoutError(timeoutMs) : new NotLeaderError(0);
      await this.waitForLeaderChange(leaderId, Math.min(remaining, 2 * this.timing.electionTimeoutMs), options.signal);
    }
  }

  /** Adds one member (keeping the others). */
  async addMember(member: RaftMemberSpec, options?: CommandOptions): Promise<void> {
    const [resolved] = await this.resolveMemberIds([member], options ?? {});
    const current = this.status().members.filter((m) => m.id !== resolved!.id);
    await this.setConfiguration([...current, resolved!], options);
  }

  /** Removes one member (keeping the others); removing the leader makes it step down once done. */
  async removeMember(id: NodeId, options?: CommandOptions): Promise<void> {
    validateNodeId('id', id);
    await this.setConfiguration(this.status().members.filter((m) => m.id !== id), options);
  }

  private async changeConfigurationHere(members: readonly RaftMember[], options: RpcOptions = {}): Promise<void> {
    this.ensureRunning();
    const core = this.core!;
    if (core.role !== 'leader') throw new NotLeaderError(core.leaderId, this.urlOf(core.leaderId));
    validateMembers('members', members);
    const ids = members.map((m) => m.id);
    const problem = validateVoterIds(ids);
    if (problem) throw new ConfigurationChangeError('invalid', problem);
    const addresses: Record<string, string> = {};
    for (const m of members) {
      const url = m.url ?? this.urlOf(m.id);
      if (url) addresses[m.id] = url;
      if (m.url) this.learnedUrls.set(m.id, m.url); // a new server is contacted before any entry names it
    }
    const id = core.proposeConfiguration(ids, addresses);
    const done = new Promise<void>((resolve, reject) => this.changeWaiters.set(id, { resolve, reject }));
    this.schedule();
    return this.withDeadline(done, options.timeoutMs ?? this.timing.commandTimeoutMs, options.signal, () => this.changeWaiters.delete(id));
  }

  private async resolveMemberIds(members: readonly RaftMemberSpec[], options: CommandOptions): Promise<RaftMember[]> {
    if (!Array.isArray(members) || members.length === 0) throw new ConfigurationChangeError('invalid', 'a configuration needs at least one member');
    return Promise.all(
      members.map(async (m, i) => {
        if (m.id !== undefined) return m.url !== undefined ? { id: m.id, url: m.url } : { id: m.id };
        if (!m.url || !this.transport.discoverId) throw new RaftOptionsError(`members[${i}].id`, 'is required (no url to ask it from)');
        const id = await this.transport.discoverId(m.url, { timeoutMs: this.timing.rpcTimeoutMs, ...(options.signal ? { signal: options.signal } : {}) });
        return { id, url: m.url };
      }),
    );
  }

  // ---------------------------------------------------------------- committed entries

  /**
   * Committed entries from `fromIndex` on: the stored ones first, then live ones, without gap or
   * repetition — so a consumer that restarts can resume where it stopped.
   */
  commitsFrom(fromIndex: number): Observable<CommittedEntry> {
    return new Observable<CommittedEntry>((subscriber) => {
      let next = Math.max(1, fromIndex);
      const buffered: CommittedEntry[] = [];
      let replaying = true;
      const emit = (entry: CommittedEntry) => {
        if (entry.index !== next) return; // already delivered (or not yet reachable in order)
        next++;
        subscriber.next(entry);
      };
      const live = this.commitSubject.subscribe({
        next: (entry) => (replaying ? buffered.push(entry) : emit(entry)),
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      });
      const upTo = this.applied;
      void (async () => {
        try {
          const chunk = 1000;
          for (let from = next; from <= upTo && !subscriber.closed; from += chunk) {
            for (const entry of await this.storage.entries(from, Math.min(upTo, from + chunk - 1))) emit(toCommitted(entry));
          }
          replaying = false;
          for (const entry of buffered) emit(entry);
          buffered.length = 0;
        } catch (error) {
          subscriber.error(error);
        }
      })();
      return () => live.unsubscribe();
    });
  }

  /** Resolves once this node has applied `index` (or rejects when it stops first). */
  waitForApplied(index: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    if (!this.running) return Promise.reject(new NodeStoppedError());
    return new Promise((resolve, reject) => this.appliedWaiters.push({ index, resolve, reject }));
  }

  /** Counts `work` as a public operation under way (see {@link stop}). */
  private async tracked<T>(work: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await work();
    } finally {
      if (--this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /** Waits until no public operation is under way, or `timeoutMs` passed. */
  private async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // ---------------------------------------------------------------- the pipeline

  private tick(): void {
    if (!this.running) return;
    this.core!.tick();
    this.schedule();
  }

  private schedule(): void {
    if (!this.running || this.pumping) return;
    if (!this.core!.hasReady()) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      // Work that arrived during the last await of the loop.
      if (this.running && this.core?.hasReady()) this.schedule();
    });
  }

  private async pump(): Promise<void> {
    while (this.running && this.core!.hasReady()) {
      const core = this.core!;
      const ready = core.ready();
      // Every RPC stepped so far is answered by this Ready (or was ignored by the engine).
      const replies = this.pendingReplies;
      this.pendingReplies = [];
      // Thesis §10.2.1: the leader may send its entries while it writes them itself, because it counts
      // its own copy toward a majority only after advance(). Only when the batch carries no new term or
      // vote: nothing that leaves may depend on state that is not yet durable.
      const early = ready.hardState === undefined ? ready.messages.filter((m) => m.type === 'AppendEntries') : [];
      for (const message of early) this.send(message);
      try {
        if (ready.hardState || ready.truncateFrom !== undefined || ready.entries.length > 0) {
          const startedAt = this.eventSubject.observed ? performance.now() : 0;
          await this.storage.save({
            ...(ready.hardState ? { hardState: ready.hardState } : {}),
            ...(ready.truncateFrom !== undefined ? { truncateFrom: ready.truncateFrom } : {}),
            entries: ready.entries,
          });
          if (startedAt) this.eventSubject.next({ type: 'persist', entries: ready.entries.length, ms: performance.now() - startedAt });
        }
      } catch (error) {
        this.onStorageFailure(error, replies);
        return;
      }
      if (!this.running) {
        for (const r of replies) r.reject(new NodeStoppedError());
        return;
      }
      if (ready.hardState) failpoint('after-vote-persist');
      if (ready.entries.some((e) => e.type === 'config')) failpoint('during-config-change');
      this.dispatch(early.length > 0 ? ready.messages.filter((m) => m.type !== 'AppendEntries') : ready.messages, replies);
      this.enqueueApply(ready.committedEntries);
      for (const read of ready.readStates) {
        const waiter = this.readWaiters.get(read.id);
        this.readWaiters.delete(read.id);
        waiter?.resolve(read.index);
      }
      if (ready.softState) this.onSoftState();
      this.onConfigurationChanges(ready.configurationChanges);
      core.advance(ready);
    }
  }

  private dispatch(messages: readonly Message[], replies: PendingReply[]): void {
    for (const message of messages) {
      if (message.type === 'AppendEntriesResponse' || message.type === 'RequestVoteResponse') {
        const i = replies.findIndex((r) => r.from === message.to && r.type === message.type);
        if (i >= 0) replies.splice(i, 1)[0]!.resolve(message);
        continue;
      }
      this.send(message);
    }
    // Requests the engine chose not to answer (a vote from a non-member, one during a leader's lease):
    // the caller still gets a refusal, carrying our term.
    for (const r of replies) r.resolve(this.refusalFor(r.request));
  }

  private refusalFor(request: AppendEntriesRequest | RequestVoteRequest): Message {
    const term = this.core!.term;
    if (request.type === 'RequestVote') {
      return { type: 'RequestVoteResponse', from: this.id, to: request.from, term, voteGranted: false, preVote: request.preVote };
    }
    return {
      type: 'AppendEntriesResponse',
      from: this.id,
      to: request.from,
      term,
      success: false,
      matchIndex: 0,
      rejectedIndex: request.prevLogIndex,
      conflictTerm: 0,
      conflictIndex: 0,
    };
  }

  private send(message: Message): void {
    const peer = this.peerFor(message.to);
    if (!peer) {
      this.logger?.debug?.(`${this.who()}: no address for node ${message.to}, dropping ${message.type}`);
      return;
    }
    const core = this.core;
    const options = { timeoutMs: this.timing.rpcTimeoutMs };
    if (message.type === 'TimeoutNow') {
      peer.timeoutNow?.(message, options).catch((error: unknown) => this.logger?.debug?.(`${this.who()}: TimeoutNow to ${message.to} failed: ${(error as Error).message}`));
      return;
    }
    const call =
      message.type === 'AppendEntries'
        ? peer.appendEntries(message, options)
        : message.type === 'RequestVote'
          ? peer.requestVote(message, options)
          : undefined;
    if (this.eventSubject.observed && call) {
      const startedAt = performance.now();
      const rpc = message.type === 'RequestVote' && message.preVote ? 'PreVote' : message.type;
      if (message.type === 'AppendEntries') {
        const bytes = message.entries.reduce((sum, e) => sum + e.command.byteLength, 0);
        this.eventSubject.next({ type: 'append', to: message.to, entries: message.entries.length, bytes });
      }
      call.then(
        () => this.eventSubject.next({ type: 'rpc', rpc, to: message.to, ms: performance.now() - startedAt, ok: true }),
        () => this.eventSubject.next({ type: 'rpc', rpc, to: message.to, ms: performance.now() - startedAt, ok: false }),
      );
    }
    call?.then(
      (response) => {
        // A reply for an engine that has since been replaced (stop/start) means nothing to it.
        if (!this.running || !core || this.core !== core) return;
        // The wire does not carry the read round: the answer belongs to this request, so it is its round.
        const context = message.type === 'AppendEntries' && message.context !== undefined ? { context: message.context } : {};
        core.step({ ...response, from: message.to, to: this.id, ...context } as Message);
        this.schedule();
      },
      (error: unknown) => this.logger?.debug?.(`${this.who()}: ${message.type} to ${message.to} failed: ${(error as Error).message}`),
    );
  }

  /** Delivers an incoming request to the engine; the answer leaves only after the Ready that holds it is durable. */
  private receive(request: AppendEntriesRequest | RequestVoteRequest, type: PendingReply['type']): Promise<Message> {
    if (!this.running) return Promise.reject(new NodeStoppedError());
    const message = { ...request, to: this.id };
    return new Promise<Message>((resolve, reject) => {
      this.pendingReplies.push({ from: request.from, type, request: message, resolve, reject });
      this.core!.step(message);
      this.schedule();
    });
  }

  private enqueueApply(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.applyChain = this.applyChain.then(() => this.applyEntries(entries));
  }

  private async applyEntries(entries: readonly Entry[]): Promise<void> {
    failpoint('after-commit-before-apply');
    for (const entry of entries) {
      let outcome: SessionOutcome = { ok: true, value: undefined };
      let payload = entry.command;
      if (entry.type === 'command') {
        let session: CommandSession | undefined;
        try {
          ({ session, payload } = decodeCommand(entry.command));
        } catch (error) {
          outcome = { ok: false, error }; // damaged framing: refused identically on every server
        }
        const decision = session ? this.sessions.decide(session, entry.index) : ({ kind: 'apply' } as const);
        if (outcome.ok && decision.kind === 'apply') {
          try {
            outcome = { ok: true, value: await this.stateMachine.apply(payload, entry.index) };
          } catch (error) {
            outcome = { ok: false, error }; // deterministic failures are the command's answer
          }
          if (session) this.sessions.record(session, outcome);
        } else if (decision.kind === 'duplicate') {
          outcome = decision.outcome; // applied before: the first answer, not a second application
        } else if (decision.kind === 'reject') {
          outcome = { ok: false, error: decision.error };
        }
      }
      this.applied = entry.index;
      const waiter = this.commandWaiters.get(entry.index);
      if (waiter) {
        this.commandWaiters.delete(entry.index);
        if (waiter.term !== entry.term) waiter.reject(new LeadershipLostError('the command was overwritten by a later leader and not applied'));
        else waiter.resolve(outcome);
      }
      this.commitSubject.next({ index: entry.index, term: entry.term, type: entry.type, command: payload });
      for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
        if (this.appliedWaiters[i]!.index <= entry.index) this.appliedWaiters.splice(i, 1)[0]!.resolve();
      }
    }
  }

  private onSoftState(): void {
    const core = this.core!;
    if (core.role !== 'leader' && this.commandWaiters.size + this.readWaiters.size > 0) {
      const lost = new LeadershipLostError();
      for (const waiter of this.commandWaiters.values()) waiter.reject(lost);
      this.commandWaiters.clear();
      for (const waiter of this.readWaiters.values()) waiter.reject(lost);
      this.readWaiters.clear();
    }
    this.publishState();
  }

  private onConfigurationChanges(outcomes: readonly ConfigurationChangeOutcome[]): void {
    for (const outcome of outcomes) {
      const waiter = this.changeWaiters.get(outcome.id);
      if (!waiter) continue;
      this.changeWaiters.delete(outcome.id);
      if (outcome.status === 'committed') waiter.resolve();
      else if (outcome.reason?.startsWith('leadership lost')) waiter.reject(new LeadershipLostError(outcome.reason));
      else waiter.reject(new ConfigurationChangeFailedError(outcome.reason ?? 'unknown'));
    }
  }

  private onStorageFailure(error: unknown, replies: PendingReply[]): void {
    // The engine has moved past what is durable: continuing could break a promise made to a peer.
    this.logger?.error(`${this.who()}: storage failed, stopping: ${(error as Error)?.message ?? String(error)}`);
    const failure = new StorageFailureError(error);
    for (const r of replies) r.reject(failure);
    this.running = false;
    clearInterval(this.ticker);
    this.failEverything(failure);
    this.stateSubject.next({ role: 'stopped', term: this.core?.term ?? 0, leaderId: 0 });
  }

  private failEverything(error: unknown): void {
    for (const r of this.pendingReplies) r.reject(error);
    this.pendingReplies = [];
    for (const w of this.commandWaiters.values()) w.reject(error);
    this.commandWaiters.clear();
    for (const w of this.changeWaiters.values()) w.reject(error);
    this.changeWaiters.clear();
    for (const w of this.readWaiters.values()) w.reject(error);
    this.readWaiters.clear();
    for (const w of this.appliedWaiters.splice(0)) w.reject(error);
  }

  private publishState(): void {
    const core = this.core!;
    const previous = this.stateSubject.value;
    const next: RaftState = { role: core.role, term: core.term, leaderId: core.leaderId };
    if (previous.role === next.role && previous.term === next.term && previous.leaderId === next.leaderId) return;
    this.stateSubject.next(next);
  }

  // ---------------------------------------------------------------- helpers

  private urlOf(id: NodeId): string | undefined {
    if (id === this.id && this.ownUrl) return this.ownUrl;
    return this.core?.configuration?.addresses?.[id] ?? this.learnedUrls.get(id) ?? this.initialMembers.get(id);
  }

  private peerFor(id: NodeId): RaftPeer | undefined {
    if (id === this.id) return undefined;
    const url = this.urlOf(id);
    const key = `${id} ${url ?? ''}`;
    let peer = this.peers.get(key);
    if (!peer) {
      try {
        peer = this.transport.peer(id, url);
      } catch (error) {
        // e.g. a network transport with no address for this server: it cannot be reached for now
        this.logger?.debug?.(`${this.who()}: cannot reach node ${id}: ${(error as Error).message}`);
        return undefined;
      }
      this.peers.set(key, peer);
    }
    return peer;
  }

  /** `node 3 term 7`: the prefix of every log line, so a line says who and when in Raft's own terms. */
  private who(): string {
    return `node ${this.id} term ${this.core?.term ?? 0}`;
  }

  private ensureRunning(): void {
    if (!this.running || !this.core) throw new NodeStoppedError();
  }

  private checkCommandSize(command: Uint8Array): void {
    if (!(command instanceof Uint8Array)) throw new TypeError('a command must be a Uint8Array or a string');
    if (command.byteLength > this.timing.maxCommandBytes) {
      throw new RaftOptionsError('command', `is ${command.byteLength} bytes, above maxCommandBytes (${this.timing.maxCommandBytes})`);
    }
  }

  private waitForLeaderChange(current: NodeId, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        subscription.unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const subscription = this.leader$.subscribe((leader) => {
        if (leader !== current && leader !== 0) queueMicrotask(done);
      });
      signal?.addEventListener('abort', done);
    });
  }

  private withDeadline<T>(promise: Promise<T>, timeoutMs: number, signal: AbortSignal | undefined, forget: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = (action: () => void) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        action();
      };
      const onAbort = () => {
        forget();
        finish(() => reject(new CommandAbortedError()));
      };
      const timer = setTimeout(() => {
        forget();
        finish(() => reject(new CommandTimeoutError(timeoutMs)));
      }, Math.max(1, timeoutMs));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort);
      promise.then(
        (value) => finish(() => resolve(value)),
        (error: unknown) => finish(() => reject(error)),
      );
    });
  }
}

function toCommitted(entry: Entry): CommittedEntry {
  let command = entry.command;
  if (entry.type === 'command') {
    try {
      command = decodeCommand(entry.command).payload;
    } catch {
      // a damaged envelope is shown as stored
    }
  }
  return { index: entry.index, term: entry.term, type: entry.type, command };
}

/** Carries the state machine's own error through the retry loop, so it is never mistaken for a transport failure. */
class AnswerError {
  constructor(readonly answer: unknown) {}
}

/** Failures after which proposing the same (session-stamped) command again is safe and may succeed. */
function isRetryable(error: unknown): boolean {
  return (
    error instanceof NotLeaderError ||
    error instanceof LeadershipLostError ||
    error instanceof CommandForwardingError ||
    error instanceof PeerUnreachableError ||
    error instanceof NodeStoppedError || // the remote leader is shutting down; if we are, route() stops first
    !(error instanceof RaftError) // a network failure while forwarding
  );
}

