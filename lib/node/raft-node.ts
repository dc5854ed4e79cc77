import { BehaviorSubject, Observable, Subject, type Subscription, distinctUntilChanged, map } from 'rxjs';
import { sameIds, validateVoterIds } from '../core/configuration.js';
import { CommitsOverflowError, ConfigurationChangeError, LogCompactedError, NotLeaderError, RaftError, RaftInvariantError } from '../core/errors.js';
import { CommitFanout } from './commit-fanout.js';
import { RaftCore } from '../core/raft.js';
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  Configuration,
  ConfigurationChangeOutcome,
  Entry,
  EntryType,
  InstallSnapshotRequest,
  InstallSnapshotResponse,
  Message,
  NodeId,
  Ready,
  RequestVoteRequest,
  RequestVoteResponse,
  Role,
  SnapshotMetadata,
} from '../core/types.js';
import type { RaftStorage, StoredSnapshot } from '../storage/storage.js';
import type { CommandOutcome, RaftMember, RaftPeer, RaftRpcHandler, RaftTransport, RpcOptions } from '../transport/transport.js';
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
import { decodeSnapshot, encodeSnapshot } from './snapshot-envelope.js';
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
  /** For a `config` entry: the configuration it holds (committed now). */
  readonly configuration?: Configuration;
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
  /** The index of the latest snapshot this node holds (0: none); entries up to `logStartIndex` are compacted. */
  readonly snapshotIndex: number;
  readonly logStartIndex: number;
  /** The voting members in effect (during a change, C_new), with their addresses. */
  readonly members: RaftMember[];
  /** The learners (non-voting members) in effect, with their addresses. */
  readonly learners: RaftMember[];
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
  | { readonly type: 'append'; readonly to: NodeId; readonly entries: number; readonly bytes: number }
  /**
   * A snapshot at `index` of `bytes` bytes: `taken` by this node (the log before it was compacted),
   * `installed` from the leader (the state machine was replaced), or `sent` to follower `to`.
   */
  | { readonly type: 'snapshot'; readonly kind: 'taken' | 'installed' | 'sent'; readonly index: number; readonly bytes: number; readonly ms: number; readonly to?: NodeId };

/** Options of one `command()` call. */
export interface CommandOptions {
  /** Give up after this long (CommandTimeoutError). Default: the node's `commandTimeoutMs`. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Options of a membership change. */
export interface MembershipOptions extends CommandOptions {
  /**
   * The complete new set of learners (non-voting members that receive the log, e.g. read replicas).
   * Left out: the learners stay as they are.
   */
  readonly learners?: readonly RaftMemberSpec[];
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
  readonly type: 'AppendEntriesResponse' | 'RequestVoteResponse' | 'InstallSnapshotResponse';
  readonly request: AppendEntriesRequest | RequestVoteRequest | InstallSnapshotRequest;
  readonly resolve: (response: Message) => void;
  readonly reject: (error: unknown) => void;
}

const encoder = new TextEncoder();

/**
 * Forwarded batches in flight to one leader at a time; commands that arrive meanwhile wait for the next
 * batch. Batches form per event-loop turn (see `forward`), so this bounds only how many turns' worth
 * are outstanding: 16 rather than 4 measured a lower tail through followers at 64 clients.
 */
const MAX_FORWARD_BATCHES_IN_FLIGHT = 16;
/** Most commands in one forwarded batch. */
const MAX_FORWARD_BATCH = 1024;

/** A command waiting to be forwarded to the leader with others. */
interface ForwardItem {
  readonly bytes: Uint8Array;
  readonly deadline: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  settled: boolean;
}

/** Commands forwarded to one leader: those waiting for a batch, and batches outstanding. */
interface ForwardLane {
  inFlight: number;
  readonly queue: ForwardItem[];
  /** A flush is due at the end of this event-loop turn. */
  flushScheduled: boolean;
}

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
  /** Commands being forwarded to the leader, per peer (group forwarding, like group commit). */
  private readonly forwarding = new Map<RaftPeer, ForwardLane>();
  /** This node's client session (thesis §6.3): a random id for the life of the process. */
  private readonly clientId = randomBytes(16).toString('hex');
  private nextSequence = 1;
  private lowestPending = 1;
  private readonly unanswered = new Set<number>();
  private sessions!: SessionTable;
  /** Addresses learned from membership requests, for servers not yet in any configuration entry (catching up). */
  private readonly learnedUrls = new Map<NodeId, string>();
  private pendingReplies: PendingReply[] = [];
  /** Index of the latest snapshot taken, restored or installed here. */
  private snapshotIndex = 0;
  /** The next snapshot comes early by this node's stagger (see maybeTakeSnapshot): after a start or an install. */
  private staggerNextSnapshot = true;
  /** The latest snapshot with its bytes, once loaded (what a follower that is far behind is sent). */
  private snapshotCache: StoredSnapshot | undefined;
  /** A snapshot of this node's own, taken between two applies, waiting for its turn to be saved. */
  private ownSnapshot: { readonly stored: StoredSnapshot; readonly compactTo: number; readonly ms: number } | undefined;
  /** Snapshot bytes that arrived from the leader (`index/term`), for the Ready that accepts one. */
  private readonly arrivedSnapshots = new Map<string, Uint8Array>();
  /** Followers a snapshot is being sent to. */
  private readonly snapshotTransfers = new Set<NodeId>();
  private readonly commandWaiters = new Map<number, CommandWaiter>();
  private readonly readWaiters = new Map<number, Waiter<number>>();
  /** With `leaseReads`: until when (performance.now) this leader may answer reads without a round. */
  private lease: { until: number; term: number; configuration: Configuration | undefined } | undefined;
  private nextReadId = 1;
  private readonly changeWaiters = new Map<number, Waiter<void>>();
  private readonly stateSubject = new BehaviorSubject<RaftState>({ role: 'stopped', term: 0, leaderId: 0 });
  private readonly commitFanout: CommitFanout<CommittedEntry>;
  private readonly eventSubject = new Subject<RaftNodeEvent>();
  private readonly appliedWaiters: Array<{ index: number; resolve: () => void; reject: (error: unknown) => void }> = [];
  /** Public operations (commands, reads, membership changes) under way, so a graceful stop can let them finish. */
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];

  /**
   * Committed entries, in index order, gapless, as they are applied (live only; see {@link commitsFrom}).
   * Delivered asynchronously through a bounded buffer per subscriber, a few milliseconds at a time,
   * so a slow subscriber cannot stall the node; one that falls `commitsBufferEntries` behind is ended
   * with {@link CommitsOverflowError} (resume with `commitsFrom(error.lastDeliveredIndex + 1)`).
   */
  readonly commits$: Observable<CommittedEntry>;
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
    this.commitFanout = new CommitFanout<CommittedEntry>(this.timing.commitsBufferEntries, (last, limit) => new CommitsOverflowError(last, limit));
    this.commits$ = this.commitFanout.observable;
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
      commands: (commands, rpcOptions) => node.proposeBatchHere(commands, rpcOptions),
      setConfiguration: (members, rpcOptions, learners) => node.changeConfigurationHere(members, rpcOptions, learners),
      readIndex: (rpcOptions) => node.readIndexHere(rpcOptions),
      installSnapshot: (request, data) => node.receiveSnapshot(request, data),
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
    let appliedIndex = (await this.stateMachine.appliedIndex?.()) ?? 0;
    this.sessions = new SessionTable(this.timing.sessionExpiryEntries);
    this.snapshotIndex = recovered.snapshot?.index ?? 0;
    this.staggerNextSnapshot = true;
    this.snapshotCache = undefined;
    this.ownSnapshot = undefined;
    this.arrivedSnapshots.clear();
    if (recovered.snapshot && appliedIndex < recovered.snapshot.index) {
      // The state machine is behind the snapshot (an in-memory one always is): restore it first.
      const stored = await this.storage.loadSnapshot();
      if (!stored || stored.metadata.index !== recovered.snapshot.index) {
        throw new RaftInvariantError(`the store names a snapshot at ${recovered.snapshot.index} but holds ${stored ? `one at ${stored.metadata.index}` : 'none'}`);
      }
      await this.restoreStateMachine(stored);
      appliedIndex = stored.metadata.index;
      this.logger?.log(`${this.who()}: restored the state machine from the snapshot at ${appliedIndex}`);
    }
    const electionTimeoutTicks = ticksOf(this.timing.electionTimeoutMs, this.timing.tickMs);
    this.core = new RaftCore(
      {
        id: this.id,
        electionTimeoutTicks,
        heartbeatTicks: Math.min(ticksOf(this.timing.heartbeatIntervalMs, this.timing.tickMs), electionTimeoutTicks - 1),
        preVote: this.timing.preVote,
        checkQuorum: this.timing.checkQuorum,
        leaseReads: this.timing.leaseReads,
        maxEntriesPerAppend: this.timing.maxEntriesPerAppend,
        maxBytesPerAppend: this.timing.maxBytesPerAppend,
        maxInflightAppends: this.timing.maxInflightAppends,
        random: this.random,
      },
      { ...recovered, ...(baseConfiguration ? { baseConfiguration } : {}), appliedIndex },
    );
    this.applied = appliedIndex;
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
    this.commitFanout.complete();
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
      snapshotIndex: this.snapshotIndex,
      logStartIndex: core?.logStartIndex ?? 0,
      members: (config?.voters ?? []).map((id) => this.memberOf(id)),
      learners: (config?.learners ?? []).map((id) => this.memberOf(id)),
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
    let attempted = false;
    for (;;) {
      this.ensureRunning();
      signal?.throwIfAborted();
      const core = this.core!;
      const leaderId = core.leaderId;
      const remaining = () => Math.max(1, deadline - Date.now());
      try {
        if (core.role === 'leader') {
          attempted = true;
          const outcome = await this.proposeOutcome(bytes, { timeoutMs: remaining(), ...(signal ? { signal } : {}) });
          if (outcome.ok) return outcome.value;
          throw new AnswerError(outcome.error);
        }
        if (leaderId) {
          const peer = this.peerFor(leaderId);
          if (!peer) throw new NotLeaderError(leaderId);
          attempted = true;
          return await this.forward(peer, bytes, remaining(), signal);
        }
      } catch (error) {
        if (error instanceof AnswerError) throw error.answer; // the state machine's own verdict
        // The session makes every retry safe; these failures only say "not answered (yet)". A storage
        // failure of the leader we forwarded to stopped that leader: retry at the next one (ours stops us).
        if (!isRetryable(error) && !(error instanceof StorageFailureError && this.running)) throw error;
        this.logger?.debug?.(`${this.who()}: retrying a command after ${(error as Error).message}`);
      }
      // Once an attempt reached a leader the command may have been applied: that is a timeout, not "no leader".
      if (Date.now() >= deadline) throw this.leaderId || attempted ? new CommandTimeoutError(timeoutMs) : new NotLeaderError(0);
      await this.waitForLeaderChange(this.leaderId === leaderId ? leaderId : -1, Math.min(remaining(), this.timing.electionTimeoutMs), signal);
    }
  }

  /** The lowest sequence this client still waits for (answers below it may be forgotten by the cluster). */
  private lowestUnanswered(): number {
    while (this.lowestPending < this.nextSequence && !this.unanswered.has(this.lowestPending)) this.lowestPending++;
    return this.lowestPending;
  }

  /**
   * Forwards `bytes` to the leader `peer`. With a few requests already in flight to it, commands wait
   * and leave together in one request (`commands`), so a busy follower costs the leader one request
   * per batch rather than one per command; alone, a command leaves at once by itself.
   */
  private forward(peer: RaftPeer, bytes: Uint8Array, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    if (!peer.commands) return peer.command(bytes, { timeoutMs, ...(signal ? { signal } : {}) });
    let lane = this.forwarding.get(peer);
    if (!lane) this.forwarding.set(peer, (lane = { inFlight: 0, queue: [], flushScheduled: false }));
    const queue = lane;
    return new Promise<unknown>((resolve, reject) => {
      const item: ForwardItem = { bytes, deadline: Date.now() + timeoutMs, resolve, reject, settled: false };
      const settle = (action: () => void) => {
        if (item.settled) return;
        item.settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        action();
      };
      const onAbort = () => settle(() => reject(new CommandAbortedError()));
      // The item's own deadline, whatever batch it ends up in (the answer may still come: at most once).
      const timer = setTimeout(() => settle(() => reject(new CommandTimeoutError(timeoutMs))), Math.max(1, timeoutMs));
      signal?.addEventListener('abort', onAbort);
      (item as { resolve: (value: unknown) => void }).resolve = (value) => settle(() => resolve(value));
      (item as { reject: (error: unknown) => void }).reject = (error) => settle(() => reject(error));
      queue.queue.push(item);
      // Sent at the end of this event-loop turn, with every command that arrived in it: the requests
      // a busy follower reads in one turn leave as one batch instead of one RPC each (measured: from
      // mostly single commands to about 4 per batch at 64 clients, less CPU on both ends).
      if (!queue.flushScheduled) {
        queue.flushScheduled = true;
        setImmediate(() => {
          queue.flushScheduled = false;
          this.flushForwarding(peer, queue);
        });
      }
    });
  }

  private flushForwarding(peer: RaftPeer, lane: ForwardLane): void {
    while (lane.inFlight < MAX_FORWARD_BATCHES_IN_FLIGHT && lane.queue.length > 0) {
      const batch = lane.queue.splice(0, MAX_FORWARD_BATCH).filter((item) => !item.settled);
      if (batch.length === 0) continue;
      lane.inFlight++;
      const timeoutMs = Math.max(1, Math.max(...batch.map((item) => item.deadline)) - Date.now());
      const call: Promise<CommandOutcome[]> =
        batch.length === 1
          ? peer.command(batch[0]!.bytes, { timeoutMs }).then(
              (value) => [{ ok: true, value }],
              (error: unknown) => [{ ok: false, error }],
            )
          : peer.commands!(
              batch.map((item) => item.bytes),
              { timeoutMs },
            );
      call
        .then(
          (outcomes) => batch.forEach((item, i) => (outcomes[i]!.ok ? item.resolve(outcomes[i]!.value) : item.reject((outcomes[i] as { error: unknown }).error))),
          (error: unknown) => batch.forEach((item) => item.reject(error)),
        )
        .finally(() => {
          lane.inFlight--;
          this.flushForwarding(peer, lane);
        });
    }
  }

  /** Proposes several forwarded commands on this leader together: one outcome each, in order. */
  private proposeBatchHere(commands: readonly Uint8Array[], options: RpcOptions = {}): Promise<CommandOutcome[]> {
    // One abort listener for the whole batch, not one per command on the shared signal.
    const aborted = options.signal
      ? new Promise<CommandOutcome>((resolve) => {
          const onAbort = () => resolve({ ok: false, error: new CommandAbortedError() });
          if (options.signal!.aborted) onAbort();
          else options.signal!.addEventListener('abort', onAbort, { once: true });
        })
      : undefined;
    const each: RpcOptions = options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {};
    return Promise.all(
      commands.map((command) => {
        let outcome: Promise<SessionOutcome>;
        try {
          outcome = this.proposeOutcome(command, each);
        } catch (error) {
          return { ok: false as const, error };
        }
        if (aborted) outcome = Promise.race([outcome, aborted.then((o) => ({ ok: false as const, error: (o as { error: unknown }).error }))]);
        return outcome.then(
          (o): CommandOutcome => (o.ok ? { ok: true, value: o.value } : { ok: false, error: o.error }),
          (error: unknown): CommandOutcome => ({ ok: false, error }),
        );
      }),
    );
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
    core.transferLeadership(target); // throws on a target that is not a voter: before anything is set up
    let subscription: Subscription | undefined;
    const handedOver = new Promise<NodeId>((resolve) => {
      // Every published state wakes it, and the engine says who leads (see waitForLeaderChange).
      subscription = this.stateSubject.subscribe(() => {
        const leader = this.leaderId;
        if (leader !== 0 && leader !== this.id) resolve(leader);
      });
    }).finally(() => queueMicrotask(() => subscription?.unsubscribe()));
    this.schedule();
    return this.withDeadline(handedOver, timeoutMs, options.signal, () => subscription?.unsubscribe());
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

  /**
   * How long a lease lasts after the heartbeats that confirmed it were sent. A follower refuses votes
   * for `electionTimeoutTicks` of its ticks after it heard from the leader; counted short here: one
   * tick less (its first may come at once), each tick 1 ms short (timers round to milliseconds), and
   * 10 % less for clocks that run at different rates (the assumption: no clock runs more than 10 %
   * faster than another's, and no process sleeps through its timers without noticing).
   */
  private leaseMs(): number {
    const { tickMs, electionTimeoutMs } = this.timing;
    return Math.max(0, (ticksOf(electionTimeoutMs, tickMs) - 1) * (tickMs - 1)) * 0.9;
  }

  /** Runs `query` against this node's state machine once it reflects every write committed before the call. */
  async read<T>(query: () => T | Promise<T>, options?: CommandOptions): Promise<T> {
    await this.barrier(options);
    return query();
  }

  /**
   * On the leader: a read index confirmed by a quorum (not yet necessarily applied here). With
   * `leaseReads`, while the lease of the last confirmed round holds, the commit index at once.
   */
  private readIndexHere(options: RpcOptions = {}): Promise<number> {
    this.ensureRunning();
    const core = this.core!;
    if (core.role !== 'leader') throw new NotLeaderError(core.leaderId, this.urlOf(core.leaderId));
    const lease = this.lease;
    if (lease && performance.now() < lease.until && leaseFits(core, lease.term, lease.configuration)) return Promise.resolve(core.commitIndex);
    const id = this.nextReadId++;
    const askedAt = performance.now();
    const term = core.term;
    const configuration = core.configuration;
    const confirmed = new Promise<number>((resolve, reject) =>
      this.readWaiters.set(id, {
        resolve: (index) => {
          // A quorum answered heartbeats sent after `askedAt`: none of them votes for another
          // candidate for an election timeout from then (counted short, see leaseMs), unless this
          // leader handed over (then voters skip the promise) or the configuration changed meanwhile.
          const now = this.core;
          if (this.timing.leaseReads && now && leaseFits(now, term, configuration)) {
            const until = askedAt + this.leaseMs();
            if (!this.lease || this.lease.term !== term || this.lease.until < until) this.lease = { until, term, configuration };
          }
          resolve(index);
        },
        reject,
      }),
    );
    core.readIndex(id);
    this.schedule();
    return this.withDeadline(confirmed, options.timeoutMs ?? this.timing.commandTimeoutMs, options.signal, () => this.readWaiters.delete(id));
  }

  // ---------------------------------------------------------------- membership

  /**
   * Changes the cluster's voting members to exactly `members` through joint consensus (new servers
   * first catch up without a vote), and its learners to `options.learners` when given. Resolves when
   * C_new is committed. A member without an id is asked for it at its url (`GET /raft/id`), as the Go
   * model did.
   */
  async setConfiguration(members: readonly RaftMemberSpec[], options: MembershipOptions = {}): Promise<void> {
    this.ensureRunning();
    const resolved = await this.resolveMemberIds(members, options);
    const learners = options.learners ? await this.resolveMemberIds(options.learners, options, true) : undefined;
    const timeoutMs = options.timeoutMs ?? this.timing.commandTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.ensureRunning();
      const core = this.core!;
      if (core.role === 'leader') {
        try {
          return await this.changeConfigurationHere(resolved, { timeoutMs: deadline - Date.now(), ...(options.signal ? { signal: options.signal } : {}) }, learners);
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
          const rpc = { timeoutMs: Math.max(1, deadline - Date.now()), ...(options.signal ? { signal: options.signal } : {}) };
          return await (learners ? peer.setConfiguration(resolved, rpc, learners) : peer.setConfiguration(resolved, rpc));
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

  /** Adds one voting member (keeping the others); a learner named here is promoted to voter. */
  async addMember(member: RaftMemberSpec, options?: CommandOptions): Promise<void> {
    const [resolved] = await this.resolveMemberIds([member], options ?? {});
    const { members, learners } = this.status();
    const current = members.filter((m) => m.id !== resolved!.id);
    await this.setConfiguration([...current, resolved!], { ...options, learners: learners.filter((m) => m.id !== resolved!.id) });
  }

  /**
   * Adds a learner: a non-voting member that receives the log (a read replica, or a server that
   * should catch up before it votes). It never counts toward a majority; {@link promoteLearner} makes it a voter.
   */
  async addLearner(member: RaftMemberSpec, options?: CommandOptions): Promise<void> {
    const [resolved] = await this.resolveMemberIds([member], options ?? {});
    const { members, learners } = this.status();
    if (members.some((m) => m.id === resolved!.id)) {
      throw new ConfigurationChangeError('invalid', `node ${resolved!.id} is a voter: remove it first to make it a learner`);
    }
    await this.setConfiguration(members, { ...options, learners: [...learners.filter((m) => m.id !== resolved!.id), resolved!] });
  }

  /** Makes learner `id` a voter (joint consensus). */
  async promoteLearner(id: NodeId, options?: CommandOptions): Promise<void> {
    validateNodeId('id', id);
    const learner = this.status().learners.find((m) => m.id === id);
    if (!learner) throw new ConfigurationChangeError('invalid', `node ${id} is not a learner`);
    await this.addMember(learner, options);
  }

  /** Removes one member, voter or learner (keeping the others); removing the leader makes it step down once done. */
  async removeMember(id: NodeId, options?: CommandOptions): Promise<void> {
    validateNodeId('id', id);
    const { members, learners } = this.status();
    if (learners.some((m) => m.id === id)) {
      await this.setConfiguration(members, { ...options, learners: learners.filter((m) => m.id !== id) });
      return;
    }
    await this.setConfiguration(members.filter((m) => m.id !== id), options);
  }

  private async changeConfigurationHere(members: readonly RaftMember[], options: RpcOptions = {}, learners?: readonly RaftMember[]): Promise<void> {
    this.ensureRunning();
    const core = this.core!;
    if (core.role !== 'leader') throw new NotLeaderError(core.leaderId, this.urlOf(core.leaderId));
    validateMembers('members', members);
    if (learners) validateMembers('learners', learners);
    const ids = members.map((m) => m.id);
    const learnerIds = learners ? learners.map((m) => m.id) : (core.configuration?.learners ?? []);
    const problem = validateVoterIds(ids, learnerIds);
    if (problem) throw new ConfigurationChangeError('invalid', problem);
    const addresses: Record<string, string> = {};
    for (const m of [...members, ...(learners ?? [])]) {
      const url = m.url ?? this.urlOf(m.id);
      if (url) addresses[m.id] = url;
      if (m.url) this.learnedUrls.set(m.id, m.url); // a new server is contacted before any entry names it
    }
    const id = core.proposeConfiguration(ids, addresses, learnerIds);
    const done = new Promise<void>((resolve, reject) => this.changeWaiters.set(id, { resolve, reject }));
    this.schedule();
    return this.withDeadline(done, options.timeoutMs ?? this.timing.commandTimeoutMs, options.signal, () => this.changeWaiters.delete(id));
  }

  private async resolveMemberIds(members: readonly RaftMemberSpec[], options: CommandOptions, mayBeEmpty = false): Promise<RaftMember[]> {
    if (!Array.isArray(members) || (members.length === 0 && !mayBeEmpty)) throw new ConfigurationChangeError('invalid', 'a configuration needs at least one member');
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
      const live = this.commits$.subscribe({
        next: (entry) => (replaying ? buffered.push(entry) : emit(entry)),
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      });
      const upTo = this.applied;
      void (async () => {
        try {
          const chunk = 1000;
          for (let from = next; from <= upTo && !subscriber.closed; from += chunk) {
            const entries = await this.storage.entries(from, Math.min(upTo, from + chunk - 1));
            // Compacted into a snapshot: those entries cannot be replayed any more.
            if ((entries[0]?.index ?? upTo + 1) > from) throw new LogCompactedError(next, entries[0]?.index ?? (this.core?.logStartIndex ?? 0) + 1);
            for (const entry of entries) emit(toCommitted(entry));
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
    if (!this.ownSnapshot && !this.core!.hasReady()) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      // Work that arrived during the last await of the loop.
      if (this.running && (this.ownSnapshot || this.core?.hasReady())) this.schedule();
    });
  }

  private async pump(): Promise<void> {
    while (this.running && (this.ownSnapshot || this.core!.hasReady())) {
      const core = this.core!;
      if (this.ownSnapshot) {
        // Saves happen one at a time and in order: the node's own snapshot waits its turn like a Ready.
        // (The pump waits for each save, so a slow snapshot write pauses replication from this node for
        // its duration; see the README's "Known limits".)
        try {
          await this.saveOwnSnapshot(core);
        } catch (error) {
          this.onStorageFailure(error, []);
          return;
        }
        continue;
      }
      const ready = core.ready();
      // Every RPC stepped so far is answered by this Ready (or was ignored by the engine).
      const replies = this.pendingReplies;
      this.pendingReplies = [];
      // Thesis §10.2.1: the leader may send its entries while it writes them itself, because it counts
      // its own copy toward a majority only after advance(). Only when the batch carries no new term or
      // vote: nothing that leaves may depend on state that is not yet durable.
      const early = ready.hardState === undefined ? ready.messages.filter((m) => m.type === 'AppendEntries') : [];
      for (const message of early) this.send(message);
      let installed: StoredSnapshot | undefined;
      try {
        if (ready.snapshot) installed = this.takeArrivedSnapshot(ready.snapshot);
        if (ready.hardState || ready.truncateFrom !== undefined || ready.entries.length > 0 || installed) {
          const startedAt = this.eventSubject.observed ? performance.now() : 0;
          await this.storage.save({
            ...(ready.hardState ? { hardState: ready.hardState } : {}),
            ...(ready.truncateFrom !== undefined ? { truncateFrom: ready.truncateFrom } : {}),
            ...(installed
              ? {
                  snapshot: installed,
                  compact: { index: installed.metadata.index, term: installed.metadata.term, configuration: installed.metadata.configuration },
                }
              : {}),
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
      if (installed) {
        failpoint('after-snapshot-install');
        this.enqueueInstall(installed);
      }
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
      if (message.type === 'AppendEntriesResponse' || message.type === 'RequestVoteResponse' || message.type === 'InstallSnapshotResponse') {
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

  private refusalFor(request: AppendEntriesRequest | RequestVoteRequest | InstallSnapshotRequest): Message {
    const term = this.core!.term;
    if (request.type === 'InstallSnapshot') return { type: 'InstallSnapshotResponse', from: this.id, to: request.from, term, matchIndex: 0 };
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
    if (message.type === 'InstallSnapshot') {
      void this.sendSnapshot(peer, message);
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
  private receive(request: AppendEntriesRequest | RequestVoteRequest | InstallSnapshotRequest, type: PendingReply['type']): Promise<Message> {
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
      if (this.commitFanout.observed) {
        this.commitFanout.publish({ index: entry.index, term: entry.term, type: entry.type, command: payload, ...(entry.config ? { configuration: entry.config } : {}) });
      }
      for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
        if (this.appliedWaiters[i]!.index <= entry.index) this.appliedWaiters.splice(i, 1)[0]!.resolve();
      }
    }
    await this.maybeTakeSnapshot();
  }

  // ---------------------------------------------------------------- snapshots

  /**
   * Between two applies: once `snapshotEvery` entries were applied since the last snapshot, asks the
   * state machine for its state and queues it, with the session table, to be saved by the pipeline;
   * the log before it (less `snapshotTrailingEntries`) is then compacted.
   */
  private async maybeTakeSnapshot(): Promise<void> {
    const every = this.timing.snapshotEvery;
    const core = this.core;
    if (!every || !core || this.ownSnapshot || !this.stateMachine.snapshot || !this.stateMachine.restore) return;
    const index = this.applied;
    // Servers apply the same log, so with the same interval they would snapshot at the same indexes,
    // and their pauses (the state machine's snapshot(), then the write, which holds up the pipeline)
    // would line up and stall the whole cluster at once. The first snapshot after a start or an
    // install comes early, by up to half an interval depending on the node id; the interval then keeps
    // the servers apart, so a follower's pause is hidden by the others' majority.
    const due = this.staggerNextSnapshot ? every - Math.floor((every * ((this.id * 0.6180339887498949) % 1)) / 2) : every;
    // A snapshot from the leader accepted meanwhile already covers these entries.
    if (index - this.snapshotIndex < due || index <= core.logStartIndex) return;
    // A server that joined with an empty store holds no configuration before the entry that added it:
    // no snapshot until one is known (a snapshot and the log start must each name their configuration).
    if (!core.configurationAt(index)) return;
    let compactTo = Math.max(core.logStartIndex, index - this.timing.snapshotTrailingEntries);
    if (!core.configurationAt(compactTo)) compactTo = index; // keep no trailing entries rather than start the log without a configuration
    const startedAt = performance.now();
    const metadata = core.snapshotMetadata(index);
    const state = await this.stateMachine.snapshot();
    if (!(state instanceof Uint8Array)) throw new TypeError('stateMachine.snapshot() must return a Uint8Array');
    const data = encodeSnapshot({ sessions: this.sessions.toState(), state });
    this.snapshotIndex = index;
    this.staggerNextSnapshot = false;
    this.ownSnapshot = {
      stored: { metadata, data },
      compactTo,
      ms: performance.now() - startedAt,
    };
    this.schedule();
  }

  /** Saves the node's own snapshot and compaction in one batch, then tells the engine (called by the pump only). */
  private async saveOwnSnapshot(core: RaftCore): Promise<void> {
    const own = this.ownSnapshot!;
    this.ownSnapshot = undefined;
    // Overtaken by a snapshot installed from the leader: nothing to do.
    if (own.compactTo < core.logStartIndex || own.stored.metadata.index <= (core.snapshot?.index ?? 0)) return;
    const startedAt = performance.now();
    await this.storage.save({
      entries: [],
      snapshot: own.stored,
      compact: { index: own.compactTo, term: core.snapshotMetadata(own.compactTo).term, configuration: core.configurationAt(own.compactTo)! },
    });
    failpoint('after-snapshot-persist');
    if (this.core !== core || !this.running) return;
    // Only now, with the snapshot durable, may the engine forget the entries.
    core.compact(own.stored.metadata, own.compactTo);
    this.snapshotCache = own.stored;
    this.eventSubject.next({ type: 'snapshot', kind: 'taken', index: own.stored.metadata.index, bytes: own.stored.data.byteLength, ms: own.ms + performance.now() - startedAt });
    this.logger?.debug?.(`${this.who()}: snapshot at ${own.stored.metadata.index} (${own.stored.data.byteLength} bytes), log compacted up to ${own.compactTo}`);
  }

  /** The leader sends its latest snapshot (in the transport's chunks) to a follower whose entries were compacted. */
  private async sendSnapshot(peer: RaftPeer, message: InstallSnapshotRequest): Promise<void> {
    const core = this.core!;
    const to = message.to;
    if (this.snapshotTransfers.has(to)) return; // one transfer per follower; the engine asks again if it fails
    if (!peer.installSnapshot) {
      this.logger?.warn(`${this.who()}: node ${to} needs a snapshot but the transport cannot send one`);
      core.snapshotFailed(to);
      return;
    }
    this.snapshotTransfers.add(to);
    const startedAt = performance.now();
    try {
      let stored = this.snapshotCache;
      if (!stored || stored.metadata.index < message.snapshot.index) stored = this.snapshotCache = await this.storage.loadSnapshot();
      if (!stored || stored.metadata.index < message.snapshot.index) throw new RaftInvariantError(`no stored snapshot at or after ${message.snapshot.index}`);
      // The latest snapshot stored, which may be newer than the one the engine named when it asked.
      const request: InstallSnapshotRequest = { ...message, snapshot: stored.metadata };
      const response = await peer.installSnapshot(request, stored.data, { timeoutMs: Math.max(30_000, 20 * this.timing.rpcTimeoutMs) });
      this.eventSubject.next({ type: 'snapshot', kind: 'sent', index: stored.metadata.index, bytes: stored.data.byteLength, ms: performance.now() - startedAt, to });
      if (!this.running || this.core !== core) return;
      core.step({ ...response, from: to, to: this.id });
    } catch (error) {
      this.logger?.debug?.(`${this.who()}: InstallSnapshot to ${to} failed: ${(error as Error).message}`);
      if (this.running && this.core === core) core.snapshotFailed(to);
    } finally {
      this.snapshotTransfers.delete(to);
      this.schedule();
    }
  }

  /** A complete snapshot from the leader: the answer leaves once the Ready that accepts it is durable. */
  private receiveSnapshot(request: InstallSnapshotRequest, data: Uint8Array): Promise<InstallSnapshotResponse> {
    if (!this.running) return Promise.reject(new NodeStoppedError());
    if (!this.stateMachine.restore) return Promise.reject(new RaftOptionsError('stateMachine', 'cannot install a snapshot: it has no restore()'));
    const key = `${request.snapshot.index}/${request.snapshot.term}`;
    this.arrivedSnapshots.clear(); // only the latest matters
    this.arrivedSnapshots.set(key, data);
    return this.receive(request, 'InstallSnapshotResponse') as Promise<InstallSnapshotResponse>;
  }

  private takeArrivedSnapshot(metadata: SnapshotMetadata): StoredSnapshot {
    const data = this.arrivedSnapshots.get(`${metadata.index}/${metadata.term}`);
    this.arrivedSnapshots.clear();
    if (!data) throw new RaftInvariantError(`accepted the snapshot at ${metadata.index}/${metadata.term} but its bytes are gone`);
    return { metadata, data };
  }

  /** After the entries handed out before it: replace the state machine with an installed snapshot. */
  private enqueueInstall(stored: StoredSnapshot): void {
    this.snapshotIndex = Math.max(this.snapshotIndex, stored.metadata.index);
    this.staggerNextSnapshot = true; // else in step with the leader's, whose index it now shares
    this.snapshotCache = stored;
    this.applyChain = this.applyChain.then(async () => {
      const startedAt = performance.now();
      try {
        await this.restoreStateMachine(stored);
      } catch (error) {
        // The snapshot is durable, the state machine is not in its state: stop rather than diverge.
        this.onStorageFailure(error, []);
        return;
      }
      this.applied = stored.metadata.index;
      this.eventSubject.next({ type: 'snapshot', kind: 'installed', index: stored.metadata.index, bytes: stored.data.byteLength, ms: performance.now() - startedAt });
      this.logger?.log(`${this.who()}: installed the leader's snapshot at ${stored.metadata.index} (${stored.data.byteLength} bytes)`);
      for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
        if (this.appliedWaiters[i]!.index <= stored.metadata.index) this.appliedWaiters.splice(i, 1)[0]!.resolve();
      }
    });
  }

  /** Replaces the state machine and the session table with a snapshot's. */
  private async restoreStateMachine(stored: StoredSnapshot): Promise<void> {
    if (!this.stateMachine.restore) throw new RaftOptionsError('stateMachine', `the store holds a snapshot (at ${stored.metadata.index}) but the state machine has no restore()`);
    const contents = decodeSnapshot(stored.data);
    await this.stateMachine.restore(contents.state, stored.metadata.index);
    this.sessions = SessionTable.fromState(contents.sessions, this.timing.sessionExpiryEntries);
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

  private memberOf(id: NodeId): RaftMember {
    const url = this.urlOf(id);
    return url ? { id, url } : { id };
  }

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

  /**
   * Resolves once the engine knows a leader other than `current` (or after `timeoutMs`, or on abort).
   * Woken by every published state (not `leader$`: it lags the engine, which it follows through saved
   * Readys, and it drops repeats, so a leader lost and regained between two publications never shows
   * there), it asks the engine itself. A `leader$` still naming the old leader while the engine had
   * dropped it used to end every wait at once, and the caller's retry loop spun on microtasks, starving
   * the very save that ends the wait. The wake-up is a macrotask for the same reason.
   */
  private waitForLeaderChange(current: NodeId, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      let subscription: Subscription | undefined;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        subscription?.unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const changed = () => this.leaderId !== current && this.leaderId !== 0;
      subscription = this.stateSubject.subscribe(() => {
        if (changed()) setImmediate(done);
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
  return { index: entry.index, term: entry.term, type: entry.type, command, ...(entry.config ? { configuration: entry.config } : {}) };
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

/**
 * Whether a lease from a round in `term` under `configuration` may serve this leader now: still the
 * leader of that term and configuration, and no handover started in it (voters skip their promise for one).
 */
function leaseFits(core: RaftCore, term: number, configuration: Configuration | undefined): boolean {
  return core.role === 'leader' && core.term === term && core.configuration === configuration && !core.transferStartedInTerm;
}

/** A duration in whole ticks of the node's clock (at least one). */
function ticksOf(ms: number, tickMs: number): number {
  return Math.max(1, Math.round(ms / tickMs));
}
