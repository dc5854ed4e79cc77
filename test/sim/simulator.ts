import { formatConfiguration, votersOf } from '../../lib/core/configuration.js';
import { ConfigurationChangeError, NotLeaderError } from '../../lib/core/errors.js';
import type { Configuration, Entry, Message, NodeId, Ready, RecoveredState, Role } from '../../lib/core/types.js';
import { coreFactory, type BugName, type CoreFactory, type SimCore } from './bugs.js';
import { SafetyChecker } from './checkers.js';
import { TextDigest } from './digest.js';
import { Disk, type SimSnapshot } from './disk.js';
import { EventQueue } from './event-queue.js';
import { formatEntry, formatMessage, formatTime, formatWrite } from './format.js';
import { decodeCommand, formatResult, KvStore, type KvCommand, encodeCommand } from './kv.js';
import { checkLinearizable } from './linearizability.js';
import { CALM_NETWORK, Network } from './network.js';
import { Prng } from './prng.js';
import { drawScenario, TICK_US, type Scenario } from './scenario.js';
import { Workload, type ClientReply } from './workload.js';

export interface RunOptions {
  readonly seed: number;
  /** Size of the initial cluster: 3, 5 or 7. Default 3. */
  readonly nodes?: number;
  readonly bug?: BugName | undefined;
  /** Virtual time with faults (ms). Default 20 000. */
  readonly durationMs?: number;
  /** Virtual time of calm at the end, before the final checks (ms). Default 4 000. */
  readonly quietMs?: number;
  /** Stop after this many events (a safety net for `--steps`). */
  readonly maxEvents?: number;
  /** Receives one line per event of interest (`--trace`). Tracing never changes the run. */
  readonly trace?: ((line: string) => void) | undefined;
  /** Budget of the linearizability check; running out is a violation. Default 10 000 ms. */
  readonly linearizabilityTimeoutMs?: number;
  /**
   * Check each server's own promises too (default true); false leaves only the cluster-wide
   * invariants, linearizability and the durability of acknowledged writes (see SafetyChecker).
   */
  readonly promiseChecks?: boolean;
  /** Adjusts the drawn scenario (tests use it to make runs shorter or denser). */
  readonly tweak?: ((scenario: Scenario) => Scenario) | undefined;
}

export interface RunStats {
  events: number;
  virtualMs: number;
  messagesSent: number;
  messagesDelivered: number;
  messagesDropped: number;
  saves: number;
  crashes: number;
  networkChanges: number;
  transfers: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  /** Reads answered from a leader's lease, without a round. */
  leaseReads: number;
  leaderTerms: number;
  maxTerm: number;
  configChangesProposed: number;
  configChangesCommitted: number;
  configChangesFailed: number;
  committedEntries: number;
  opsOk: number;
  opsFailed: number;
  opsUnknown: number;
  opsRefused: number;
  finalConfiguration: string;
}

export interface RunResult {
  readonly seed: number;
  readonly nodes: number;
  readonly bug: BugName | undefined;
  readonly violations: readonly string[];
  readonly stats: RunStats;
  /** A digest of the run's observable outcome; equal seeds give equal digests. */
  readonly digest: string;
  /** Wall-clock time of the linearizability check (ms); the only host-dependent figure, kept out of the digest. */
  readonly linearizabilityMs: number;
}

/** Runs one seed of the simulation and checks it. */
export function runSeed(options: RunOptions): RunResult {
  return new Simulation(options).run();
}

/** The command that replays a seed with a trace. */
export function replayCommand(seed: number, nodes: number, bug: BugName | undefined, extra = ''): string {
  return `npm run sim -- --seed ${seed} --nodes ${nodes}${bug ? ` --bug ${bug}` : ''}${extra} --trace`;
}

interface Pending {
  readonly term: number;
  readonly reply: (r: ClientReply) => void;
}

interface SimNode {
  readonly id: NodeId;
  readonly disk: Disk;
  core: SimCore | undefined;
  up: boolean;
  /** Bumped on every start and crash: events of an older incarnation are ignored. */
  incarnation: number;
  /** A save is in progress: the next Ready waits for it. */
  saving: boolean;
  kv: KvStore;
  applied: number;
  /** Proposals accepted by this process, by index, waiting to be applied. */
  readonly pending: Map<number, Pending[]>;
  /** ReadIndex reads (thesis §6.4) this process accepted: waiting for the quorum, then for the apply. */
  readonly reads: Map<
    number,
    { readonly key: string; readonly reply: (r: ClientReply) => void; readonly askedAt: number; readonly term: number; readonly configuration: Configuration | undefined }
  >;
  /** With lease reads: until when (virtual µs) this leader answers reads without a round. */
  lease: { readonly untilUs: number; readonly term: number; readonly configuration: Configuration | undefined } | undefined;
  confirmedReads: { readonly index: number; readonly key: string; readonly reply: (r: ClientReply) => void }[];
  /** Index of the latest snapshot this process took or restored. */
  snapshotIndex: number;
  /** A snapshot of its own taken at apply time, waiting for its turn to be saved. */
  ownSnapshot: { readonly snapshot: SimSnapshot; readonly compactTo: number } | undefined;
  /** Snapshot bytes that arrived with InstallSnapshot messages (by `index/term`), for the Ready that accepts one. */
  readonly arrived: Map<string, SimSnapshot>;
  seenRole: Role;
  seenTerm: number;
  seenLeader: NodeId;
}

const DEFAULT_DURATION_MS = 20_000;
const DEFAULT_QUIET_MS = 4_000;
const MAX_EXTRA_CALM_US = 30_000_000;

class Simulation {
  private readonly queue = new EventQueue();
  private readonly scenario: Scenario;
  private readonly netRng: Prng;
  private readonly faultRng: Prng;
  private readonly diskRng: Prng;
  private readonly engineRng: Prng;
  private readonly adminRng: Prng;
  private readonly network: Network;
  private readonly nodes = new Map<NodeId, SimNode>();
  private live: SimCore[] = [];
  private readonly checker: SafetyChecker;
  private readonly workload: Workload;
  private readonly factory: CoreFactory;
  private readonly bug: BugName | undefined;
  private readonly tracer: ((line: string) => void) | undefined;
  private quiet = false;
  private failed = false;
  private nextReadId = 1;
  private linearizabilityMs = 0;
  private readonly stats: RunStats;
  private readonly initialVoters: NodeId[];

  constructor(private readonly options: RunOptions) {
    const nodes = options.nodes ?? 3;
    if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`nodes must be a positive integer, got ${nodes}`);
    this.bug = options.bug;
    this.tracer = options.trace;
    const root = new Prng(options.seed);
    let scenario = drawScenario(root.fork(1), {
      nodes,
      durationMs: options.durationMs ?? DEFAULT_DURATION_MS,
      quietMs: options.quietMs ?? DEFAULT_QUIET_MS,
      bug: options.bug,
    });
    if (options.tweak) scenario = options.tweak(scenario);
    this.scenario = scenario;
    this.netRng = root.fork(2);
    this.faultRng = root.fork(3);
    this.diskRng = root.fork(4);
    this.engineRng = root.fork(5);
    this.adminRng = root.fork(6);
    const clientRng = root.fork(7);
    this.network = new Network(scenario.network);
    this.factory = coreFactory(options.bug);
    this.checker = new SafetyChecker(
      () => this.queue.now,
      () => this.live,
      options.promiseChecks ?? true,
    );
    this.initialVoters = Array.from({ length: nodes }, (_, i) => i + 1);
    this.stats = {
      events: 0,
      virtualMs: 0,
      messagesSent: 0,
      messagesDelivered: 0,
      messagesDropped: 0,
      saves: 0,
      crashes: 0,
      networkChanges: 0,
      transfers: 0,
      snapshotsTaken: 0,
      snapshotsInstalled: 0,
      leaseReads: 0,
      leaderTerms: 0,
      maxTerm: 0,
      configChangesProposed: 0,
      configChangesCommitted: 0,
      configChangesFailed: 0,
      committedEntries: 0,
      opsOk: 0,
      opsFailed: 0,
      opsUnknown: 0,
      opsRefused: 0,
      finalConfiguration: '',
    };
    this.workload = new Workload(clientRng, scenario.clients, {
      schedule: (delay, run) => void this.queue.schedule(delay, run),
      now: () => this.queue.now,
      servers: () => [...this.nodes.keys()],
      submit: (server, command, reply) => this.submit(server, command, reply),
      trace: this.tracer ? (line) => this.trace(line) : undefined,
    });
  }

  run(): RunResult {
    const s = this.scenario;
    if (this.tracer) {
      this.trace(
        `seed ${this.options.seed}: ${s.nodes} nodes${this.bug ? `, bug ${this.bug}` : ''}; ` +
          `loss ${pct(s.network.lossRate)}, duplicates ${pct(s.network.duplicateRate)}, reordering ${pct(s.network.reorderRate)} ` +
          `(+≤${s.network.maxReorderDelayUs / 1000}ms), delay ${s.network.minDelayUs / 1000}–${s.network.maxDelayUs / 1000}ms; ` +
          `preVote ${s.engine.preVote}, checkQuorum ${s.engine.checkQuorum}, ≤${s.engine.maxEntriesPerAppend} entries/append, ` +
          `≤${s.engine.maxInflightAppends} in flight; a crash every ~${s.crashes.meanIntervalUs / 1000}ms, ` +
          `a network change every ~${s.partitions.meanIntervalUs / 1000}ms, a membership change every ~${s.membership.meanIntervalUs / 1000}ms`,
      );
    }
    for (const id of this.initialVoters) this.createNode(id, { voters: this.initialVoters });
    for (const node of this.nodes.values()) this.start(node);
    this.scheduleCrash();
    this.scheduleNetworkChange();
    this.scheduleMembershipChange();
    this.scheduleTransfer();
    this.workload.start();
    this.queue.at(s.durationUs, () => this.calmDown());
    const end = s.durationUs + s.quietUs;
    // A long catch-up (say one entry per round trip) may need more calm than `quietUs`: allow it,
    // up to a bound, rather than report slowness as unavailability.
    const hardEnd = end + MAX_EXTRA_CALM_US;
    const maxEvents = this.options.maxEvents ?? Infinity;

    for (;;) {
      const next = this.queue.peekTime();
      if (next === undefined || next > hardEnd || this.stats.events >= maxEvents) break;
      if (next > end && this.converged()) break;
      const event = this.queue.pop()!;
      this.stats.events++;
      event.run();
      if (this.failed) break;
      this.observe();
      if (!this.checker.ok) break;
    }
    if (this.checker.ok && !this.failed && this.stats.events < maxEvents) this.finalChecks();
    return this.result();
  }

  // ------------------------------------------------------------------ servers

  private createNode(id: NodeId, base: Configuration | undefined): SimNode {
    const node: SimNode = {
      id,
      disk: new Disk(base),
      core: undefined,
      lease: undefined,
      up: false,
      incarnation: 0,
      saving: false,
      kv: new KvStore(),
      applied: 0,
      pending: new Map(),
      reads: new Map(),
      confirmedReads: [],
      snapshotIndex: 0,
      ownSnapshot: undefined,
      arrived: new Map(),
      seenRole: 'follower',
      seenTerm: 0,
      seenLeader: 0,
    };
    this.nodes.set(id, node);
    return node;
  }

  private start(node: SimNode): void {
    const firstStart = node.incarnation === 0;
    const recovered: RecoveredState = node.disk.load({ forgetVote: this.bug === 'forget-vote-on-restart' && !firstStart });
    node.incarnation++;
    const random = this.engineRng.fork(node.id * 1000 + node.incarnation);
    const s = this.scenario.engine;
    let core: SimCore;
    try {
      core = this.factory(
        {
          id: node.id,
          electionTimeoutTicks: s.electionTimeoutTicks,
          heartbeatTicks: s.heartbeatTicks,
          preVote: s.preVote,
          checkQuorum: s.checkQuorum,
          maxEntriesPerAppend: s.maxEntriesPerAppend,
          maxBytesPerAppend: s.maxBytesPerAppend,
          maxInflightAppends: s.maxInflightAppends,
          leaseReads: s.leaseReads,
          random: () => random.next(),
        },
        recovered,
      );
    } catch (error) {
      this.engineFailure(node, 'start', error);
      return;
    }
    node.core = core;
    node.up = true;
    node.saving = false;
    // The state machine is in memory: restore it from the stored snapshot, then the engine applies the rest.
    const stored = node.disk.snapshot;
    node.kv = stored ? KvStore.restore(stored.data) : new KvStore();
    node.applied = recovered.appliedIndex ?? 0;
    node.snapshotIndex = stored?.metadata.index ?? 0;
    node.ownSnapshot = undefined;
    node.arrived.clear();
    node.pending.clear();
    node.reads.clear();
    node.lease = undefined;
    node.confirmedReads = [];
    node.seenRole = core.role;
    node.seenTerm = core.term;
    node.seenLeader = core.leaderId;
    this.refreshLive();
    if (this.tracer) {
      this.trace(
        `n${node.id} ${firstStart ? 'starts' : 'restarts'}: term ${recovered.hardState.term}, vote ${recovered.hardState.vote ? `n${recovered.hardState.vote}` : '-'}, ` +
          `commit ${recovered.hardState.commit}, log ${recovered.entries.length} entries${recovered.logStart ? ` after ${recovered.logStart.index}` : ''}` +
          `${stored ? `, state machine restored from the snapshot at ${stored.metadata.index}` : ''}, configuration ${formatConfiguration(core.configuration)}`,
      );
    }
    this.checker.nodeStarted(core, recovered);
    const incarnation = node.incarnation;
    const tick = (): void => {
      if (node.incarnation !== incarnation) return;
      if (!this.call(node, 'tick', (c) => c.tick())) return;
      this.pump(node);
      this.queue.schedule(TICK_US, tick);
    };
    this.queue.schedule(this.faultRng.between(1, TICK_US), tick);
    this.pump(node);
  }

  private crash(node: SimNode, why: string): void {
    if (!node.up) return;
    node.up = false;
    node.core = undefined;
    node.incarnation++;
    node.saving = false;
    node.pending.clear();
    node.reads.clear();
    node.lease = undefined;
    node.confirmedReads = [];
    node.ownSnapshot = undefined;
    node.arrived.clear();
    this.stats.crashes++;
    this.refreshLive();
    this.checker.nodeCrashed(node.id);
    this.trace(`n${node.id} CRASHES (${why}); unsaved state is lost`);
  }

  private refreshLive(): void {
    this.live = [];
    for (const node of this.nodes.values()) if (node.up && node.core) this.live.push(node.core);
  }

  /** Calls into an engine; an exception is a violation (the engine must never throw on these inputs). */
  private call(node: SimNode, what: string, fn: (core: SimCore) => void): boolean {
    try {
      fn(node.core!);
      return true;
    } catch (error) {
      this.engineFailure(node, what, error);
      return false;
    }
  }

  private engineFailure(node: SimNode, what: string, error: unknown): void {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.checker.violation(`n${node.id}'s engine threw during ${what}: ${text}`);
    this.failed = true;
  }

  // ------------------------------------------------------------------ the driver: persist → send → apply → advance

  private pump(node: SimNode): void {
    while (node.up && !node.saving && !this.failed) {
      const core = node.core!;
      // Saves happen one at a time, in order: the node's own snapshot waits its turn like a Ready.
      if (node.ownSnapshot) {
        this.saveOwnSnapshot(node);
        continue;
      }
      if (!core.hasReady()) return;
      const ready = core.ready();
      this.checker.readyTaken(core, ready);
      if (!Disk.needsWrite(ready)) {
        this.finish(node, ready, true);
        continue;
      }
      node.saving = true;
      const early = this.bug === 'reply-before-persist';
      if (early) this.sendAll(node, ready.messages);
      const incarnation = node.incarnation;
      const arrived = ready.snapshot ? node.arrived.get(`${ready.snapshot.index}/${ready.snapshot.term}`) : undefined;
      if (ready.snapshot) node.arrived.clear();
      this.queue.schedule(this.diskRng.between(this.scenario.persist.minUs, this.scenario.persist.maxUs), () => {
        if (node.incarnation !== incarnation) return; // crashed meanwhile: the batch is lost
        if (ready.snapshot && !this.quiet && this.faultRng.chance(this.scenario.snapshots.crashRate)) {
          this.crash(node, 'while installing a snapshot, before it was durable');
          this.scheduleRestart(node);
          return;
        }
        const problem = node.disk.save(ready, arrived);
        if (problem !== undefined) {
          this.checker.violation(`n${node.id}'s Ready cannot be saved: ${problem}`);
          this.failed = true;
          return;
        }
        this.stats.saves++;
        if (this.tracer) this.trace(`n${node.id} saved ${formatWrite(ready)}`);
        node.saving = false;
        if (!this.quiet && this.faultRng.chance(this.scenario.crashes.afterSaveRate)) {
          this.crash(node, 'right after a save, before sending or applying');
          this.scheduleRestart(node);
          return;
        }
        this.finish(node, ready, !early);
        this.pump(node);
      });
      return;
    }
  }

  /**
   * Saves the node's own snapshot and compacts its log (one atomic write, taking virtual time), then
   * tells the engine. One that an installed snapshot overtook meanwhile is dropped.
   */
  private saveOwnSnapshot(node: SimNode): void {
    const own = node.ownSnapshot!;
    node.ownSnapshot = undefined;
    const core = node.core!;
    if (own.compactTo < core.logStartIndex || own.snapshot.metadata.index <= (core.snapshot?.index ?? 0)) return;
    const compactTo = { index: own.compactTo, term: core.snapshotMetadata(own.compactTo).term };
    const configuration = core.configurationAt(own.compactTo)!;
    node.saving = true;
    const incarnation = node.incarnation;
    this.queue.schedule(this.diskRng.between(this.scenario.persist.minUs, this.scenario.persist.maxUs), () => {
      if (node.incarnation !== incarnation) return;
      if (!this.quiet && this.faultRng.chance(this.scenario.snapshots.crashRate)) {
        this.crash(node, 'while saving its own snapshot, before it was durable');
        this.scheduleRestart(node);
        return;
      }
      const problem = node.disk.saveSnapshot(own.snapshot, compactTo, configuration);
      if (problem !== undefined) {
        this.checker.violation(`n${node.id}'s snapshot cannot be saved: ${problem}`);
        this.failed = true;
        return;
      }
      this.stats.saves++;
      this.stats.snapshotsTaken++;
      this.trace(`n${node.id} saved its snapshot at ${own.snapshot.metadata.index}/${own.snapshot.metadata.term}, log compacted up to ${compactTo.index}`);
      node.saving = false;
      if (!this.quiet && this.faultRng.chance(this.scenario.snapshots.crashRate)) {
        this.crash(node, 'right after saving its snapshot, before the engine compacted');
        this.scheduleRestart(node);
        return;
      }
      if (!this.call(node, 'compact', (c) => c.compact(own.snapshot.metadata, compactTo.index))) return;
      this.pump(node);
    });
  }

  /** Takes a snapshot of the state machine once `every` entries were applied since the last one. */
  private maybeSnapshot(node: SimNode): void {
    const { every, trailing } = this.scenario.snapshots;
    if (every === 0 || node.ownSnapshot || node.applied - node.snapshotIndex < every) return;
    const core = node.core!;
    // A snapshot from the leader was accepted while these entries were being applied: it replaces them.
    if (node.applied <= core.logStartIndex) return;
    let metadata;
    try {
      metadata = core.snapshotMetadata(node.applied);
    } catch (error) {
      this.engineFailure(node, 'snapshotMetadata', error);
      return;
    }
    node.snapshotIndex = node.applied;
    node.ownSnapshot = {
      snapshot: { metadata, data: node.kv.serialize() },
      compactTo: Math.max(core.logStartIndex, node.applied - trailing),
    };
  }

  private finish(node: SimNode, ready: Ready, send: boolean): void {
    if (send) this.sendAll(node, ready.messages);
    if (ready.snapshot) {
      // Restore the state machine from the snapshot (the save checked its bytes arrived with it).
      const snapshot = node.disk.snapshot!;
      node.kv = KvStore.restore(snapshot.data);
      node.applied = ready.snapshot.index;
      node.snapshotIndex = ready.snapshot.index;
      this.stats.snapshotsInstalled++;
      this.checker.restored(node.core!, ready.snapshot.index, ready.snapshot.term);
      if (this.tracer) this.trace(`n${node.id} restores its state machine from the snapshot at ${ready.snapshot.index}/${ready.snapshot.term}`);
    }
    if (ready.committedEntries.length > 0) this.apply(node, ready.committedEntries);
    for (const state of ready.readStates) {
      const read = node.reads.get(state.id);
      if (!read) continue;
      node.reads.delete(state.id);
      node.confirmedReads.push({ index: state.index, key: read.key, reply: read.reply });
      const core = node.core!;
      if (this.scenario.engine.leaseReads && core.role === 'leader' && core.term === read.term && core.configuration === read.configuration && !core.transferStartedInTerm) {
        // A quorum answered heartbeats sent after the read was asked: none of them votes for another
        // candidate for an election timeout of its ticks (one may come at once: one tick less).
        const untilUs = read.askedAt + (this.scenario.engine.electionTimeoutTicks - 1) * TICK_US;
        if (!node.lease || node.lease.term !== core.term || node.lease.untilUs < untilUs) node.lease = { untilUs, term: core.term, configuration: read.configuration };
      }
    }
    this.serveReads(node);
    for (const outcome of ready.configurationChanges) {
      if (outcome.status === 'committed') this.stats.configChangesCommitted++;
      else this.stats.configChangesFailed++;
      this.trace(
        `n${node.id} membership change #${outcome.id} ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}: now ${formatConfiguration(outcome.configuration)}`,
      );
    }
    if (node.up) this.call(node, 'advance', (c) => c.advance(ready));
  }

  /** Answers confirmed ReadIndex reads whose index this node has applied, from its own state machine. */
  private serveReads(node: SimNode): void {
    if (node.confirmedReads.length === 0) return;
    const ready = node.confirmedReads.filter((r) => r.index <= node.applied);
    node.confirmedReads = node.confirmedReads.filter((r) => r.index > node.applied);
    for (const read of ready) {
      const result = node.kv.get(read.key);
      if (this.tracer) this.trace(`n${node.id} serves a read of ${read.key} at read index ${read.index} → ${formatResult(result)}`);
      read.reply({ kind: 'ok', result, index: read.index, term: node.core!.term });
    }
  }

  private apply(node: SimNode, entries: readonly Entry[]): void {
    const core = node.core!;
    for (const entry of entries) {
      this.checker.applied(core, entry);
      node.applied = entry.index;
      let result: ReturnType<KvStore['apply']> = null;
      if (entry.type === 'command') {
        let command: KvCommand;
        try {
          command = decodeCommand(entry.command);
        } catch (error) {
          this.checker.violation(`n${node.id} applied ${entry.index}/${entry.term} whose command does not decode: ${String(error)}`);
          continue;
        }
        result = node.kv.apply(command);
      }
      if (this.tracer) this.trace(`n${node.id} applies ${formatEntry(entry)}${entry.type === 'command' ? ` → ${formatResult(result)}` : ''}`);
      const waiting = node.pending.get(entry.index);
      if (waiting === undefined) continue;
      node.pending.delete(entry.index);
      for (const p of waiting) {
        if (p.term === entry.term) p.reply({ kind: 'ok', result, index: entry.index, term: entry.term });
        else p.reply({ kind: 'fail', reason: `index ${entry.index} was committed with term ${entry.term}, not ${p.term}` });
      }
    }
    this.maybeSnapshot(node);
  }

  // ------------------------------------------------------------------ network

  private sendAll(node: SimNode, messages: readonly Message[]): void {
    for (let msg of messages) {
      let bytes: SimSnapshot | undefined;
      if (msg.type === 'InstallSnapshot') {
        // The transport carries the snapshot's bytes beside the message: the sender's stored snapshot,
        // which may be newer than the one the engine named if a save completed since (a driver does
        // the same: it sends the latest snapshot it has).
        bytes = node.disk.snapshot;
        if (!bytes || bytes.metadata.index < msg.snapshot.index) {
          this.checker.violation(`n${node.id} sent a snapshot at ${msg.snapshot.index}/${msg.snapshot.term} that its disk does not hold`);
          this.failed = true;
          return;
        }
        msg = { ...msg, snapshot: bytes.metadata };
      }
      this.checker.messageSent(msg);
      this.stats.messagesSent++;
      const target = this.nodes.get(msg.to);
      const delays = this.network.plan(msg.from, msg.to, this.netRng);
      if (target === undefined || delays.length === 0) {
        this.stats.messagesDropped++;
        if (this.tracer) {
          const why = target === undefined ? 'no such server' : this.network.isCut(msg.from, msg.to) ? 'link cut' : 'lost';
          this.trace(`n${node.id} → n${msg.to} ${formatMessage(msg)} DROPPED (${why})`);
        }
        if (msg.type === 'InstallSnapshot' && this.netRng.chance(this.scenario.snapshots.reportFailureRate)) this.reportSnapshotFailure(node, msg.to);
        continue;
      }
      const incarnation = target.incarnation;
      for (const delay of delays) this.queue.schedule(delay, () => this.deliver(target, incarnation, msg, bytes));
    }
  }

  /** The transport tells the leader its snapshot did not get through, after a timeout's worth of time. */
  private reportSnapshotFailure(node: SimNode, to: NodeId): void {
    const incarnation = node.incarnation;
    this.queue.schedule(this.netRng.between(10_000, 100_000), () => {
      if (node.incarnation !== incarnation || !node.up) return;
      if (this.call(node, 'snapshotFailed', (c) => c.snapshotFailed(to))) this.pump(node);
    });
  }

  private deliver(target: SimNode, incarnation: number, msg: Message, bytes?: SimSnapshot): void {
    if (target.incarnation !== incarnation || !target.up || this.network.isCut(msg.from, msg.to)) {
      this.stats.messagesDropped++;
      if (this.tracer) {
        const why = !target.up ? 'server down' : target.incarnation !== incarnation ? 'server restarted since' : 'link cut';
        this.trace(`n${msg.to} ← n${msg.from} ${formatMessage(msg)} DROPPED (${why})`);
      }
      return;
    }
    this.stats.messagesDelivered++;
    if (this.tracer) this.trace(`n${msg.to} ← n${msg.from} ${formatMessage(msg)}`);
    if (bytes) target.arrived.set(`${bytes.metadata.index}/${bytes.metadata.term}`, bytes);
    if (this.call(target, `step(${msg.type} from n${msg.from})`, (c) => c.step(msg))) this.pump(target);
  }

  // ------------------------------------------------------------------ clients

  private submit(server: NodeId, command: KvCommand, reply: (r: ClientReply) => void): void {
    const answer = (r: ClientReply): void => void this.queue.schedule(this.netRng.between(100, 1_000), () => reply(r));
    this.queue.schedule(this.netRng.between(100, 1_000), () => {
      const node = this.nodes.get(server);
      if (node === undefined || !node.up) return; // no answer: the client times out
      if (command.op === 'get' && this.netRng.chance(this.scenario.readIndexRatio)) {
        const core = node.core!;
        const lease = node.lease;
        if (lease && core.role === 'leader' && this.queue.now < lease.untilUs && lease.term === core.term && lease.configuration === core.configuration && !core.transferStartedInTerm) {
          // A lease read (thesis §6.4.1): the commit index, without a round.
          this.stats.leaseReads++;
          if (this.tracer) this.trace(`n${node.id} accepts read #${command.id} of ${command.key} from c${command.client} (lease until ${lease.untilUs} µs, at ${core.commitIndex})`);
          node.confirmedReads.push({ index: core.commitIndex, key: command.key, reply: answer });
          this.serveReads(node);
          return;
        }
        // A read through ReadIndex: no log entry, answered from this node's state once confirmed.
        const id = this.nextReadId++;
        try {
          node.core!.readIndex(id);
        } catch (error) {
          if (error instanceof NotLeaderError) answer({ kind: 'not-leader', leaderId: error.leaderId });
          else this.engineFailure(node, 'readIndex', error);
          return;
        }
        if (this.tracer) this.trace(`n${node.id} accepts read #${command.id} of ${command.key} from c${command.client} (ReadIndex ${id})`);
        node.reads.set(id, { key: command.key, reply: answer, askedAt: this.queue.now, term: node.core!.term, configuration: node.core!.configuration });
        this.pump(node);
        return;
      }
      let placed: { index: number; term: number } | undefined;
      try {
        placed = node.core!.propose(encodeCommand(command));
      } catch (error) {
        if (error instanceof NotLeaderError) {
          answer({ kind: 'not-leader', leaderId: error.leaderId });
          return;
        }
        this.engineFailure(node, 'propose', error);
        return;
      }
      if (this.tracer) this.trace(`n${node.id} accepts #${command.id} from c${command.client} at ${placed.index}/${placed.term}`);
      let waiting = node.pending.get(placed.index);
      if (waiting === undefined) {
        waiting = [];
        node.pending.set(placed.index, waiting);
      }
      waiting.push({ term: placed.term, reply: answer });
      this.pump(node);
    });
  }

  // ------------------------------------------------------------------ faults

  private interval(mean: number): number {
    return this.faultRng.between(Math.round(mean * 0.2), Math.round(mean * 1.8));
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (node.up && node.core!.role === 'leader' && (best === undefined || node.core!.term > best.core!.term)) best = node;
    }
    return best;
  }

  private scheduleCrash(): void {
    const c = this.scenario.crashes;
    this.queue.schedule(this.interval(c.meanIntervalUs), () => {
      if (this.quiet) return;
      const leader = this.currentLeader();
      const up = [...this.nodes.values()].filter((n) => n.up);
      if (up.length > 0) {
        const victim = leader !== undefined && this.faultRng.chance(c.leaderBias) ? leader : this.faultRng.pick(up);
        this.crash(victim, victim === leader ? 'the leader' : 'random');
        this.scheduleRestart(victim);
      }
      this.scheduleCrash();
    });
  }

  private scheduleRestart(node: SimNode): void {
    const c = this.scenario.crashes;
    this.queue.schedule(this.faultRng.between(c.minDownUs, c.maxDownUs), () => {
      if (!node.up && !this.failed) this.start(node);
    });
  }

  /**
   * The nemesis strikes a fresh leader with some probability: it crashes it or cuts it off soon
   * after its election, often before its first entries are replicated (how Figure 8 histories arise).
   */
  private huntNewLeader(node: SimNode): void {
    const rng = this.faultRng;
    if (this.quiet || !rng.chance(this.scenario.crashes.newLeaderRate)) return;
    const incarnation = node.incarnation;
    const crash = rng.chance(0.5);
    this.queue.schedule(rng.between(0, this.scenario.crashes.newLeaderDelayUs), () => {
      if (this.quiet || node.incarnation !== incarnation || !node.up) return;
      if (crash) {
        this.crash(node, 'the nemesis hunts a new leader');
        this.scheduleRestart(node);
      } else {
        this.network.heal();
        this.network.isolate(
          node.id,
          [...this.nodes.keys()].filter((id) => id !== node.id),
        );
        this.stats.networkChanges++;
        this.trace(`network isolates new leader n${node.id} (the nemesis hunts a new leader)`);
      }
    });
  }

  /** Now and then the leader hands leadership to another voter (thesis §3.10), during all the other faults. */
  private scheduleTransfer(): void {
    this.queue.schedule(this.interval(this.scenario.transferMeanIntervalUs), () => {
      if (this.quiet) return;
      const leader = this.currentLeader();
      const voters = leader?.core!.configuration?.voters.filter((id) => id !== leader.id) ?? [];
      if (leader && voters.length > 0) {
        const target = this.faultRng.pick(voters);
        try {
          leader.core!.transferLeadership(target);
          this.stats.transfers++;
          this.trace(`n${leader.id} hands leadership to n${target}`);
          this.pump(leader);
        } catch (error) {
          if (!(error instanceof NotLeaderError) && !(error instanceof ConfigurationChangeError)) this.engineFailure(leader, 'transferLeadership', error);
        }
      }
      this.scheduleTransfer();
    });
  }

  private scheduleNetworkChange(): void {
    this.queue.schedule(this.interval(this.scenario.partitions.meanIntervalUs), () => {
      if (this.quiet) return;
      this.changeNetwork();
      this.scheduleNetworkChange();
    });
  }

  private changeNetwork(): void {
    const rng = this.faultRng;
    const ids = [...this.nodes.keys()];
    const roll = rng.next();
    this.stats.networkChanges++;
    if (roll < 0.3) {
      this.network.heal();
      this.trace(`network heals`);
    } else if (roll < 0.55) {
      const leader = this.currentLeader();
      const victim = leader?.id ?? rng.pick(ids);
      this.network.heal();
      this.network.isolate(
        victim,
        ids.filter((id) => id !== victim),
      );
      this.trace(`network isolates ${leader ? 'the leader ' : ''}n${victim}`);
    } else if (roll < 0.85) {
      const shuffled = rng.shuffle(ids.slice());
      const groups = rng.chance(0.7) ? 2 : 3;
      const split: NodeId[][] = Array.from({ length: groups }, () => []);
      shuffled.forEach((id, i) => split[i < groups ? i : rng.int(groups)]!.push(id));
      for (const g of split) g.sort((a, b) => a - b);
      this.network.partition(split);
      this.trace(`network partitions into ${split.map((g) => `{${g.map((id) => `n${id}`).join(',')}}`).join(' ')}`);
    } else {
      const cuts = rng.between(1, ids.length);
      for (let i = 0; i < cuts; i++) {
        const from = rng.pick(ids);
        const to = rng.pick(ids);
        this.network.cutLink(from, to);
      }
      this.trace(`network drops some one-way links: ${this.network.describe()}`);
    }
    // The weather changes too: loss comes and goes within the seed's range.
    const base = this.scenario.network;
    this.network.conditions = { ...base, lossRate: rng.chance(0.3) ? 0 : rng.uniform(0, base.lossRate) };
  }

  /** The administrator asks for a membership change every so often; when it cannot, it tries again soon. */
  private scheduleMembershipChange(delayUs = this.interval(this.scenario.membership.meanIntervalUs)): void {
    this.queue.schedule(delayUs, () => {
      if (this.quiet) return;
      const asked = this.changeMembership();
      this.scheduleMembershipChange(asked ? undefined : this.adminRng.between(50_000, 200_000));
    });
  }

  /** Returns whether a change was started. */
  private changeMembership(): boolean {
    const leader = this.currentLeader();
    if (leader === undefined) return false;
    const core = leader.core!;
    const config = core.configuration;
    if (config === undefined || config.outgoing !== undefined) return false;
    const m = this.scenario.membership;
    const rng = this.adminRng;
    const voters = new Set(config.voters);
    const pool = Array.from({ length: this.initialVoters.length + 2 }, (_, i) => i + 1);
    const learners = new Set(config.learners ?? []);
    if (rng.chance(0.3)) {
      // Learners: add one (a new or a removed server), promote one to voter, or remove one.
      const roll = rng.next();
      const outsiders = pool.filter((id) => !voters.has(id) && !learners.has(id));
      if (learners.size > 0 && roll < 0.4) {
        const promoted = rng.pick([...learners]);
        learners.delete(promoted);
        voters.add(promoted);
      } else if (learners.size > 0 && roll < 0.6) {
        learners.delete(rng.pick([...learners]));
      } else if (outsiders.length > 0) {
        learners.add(rng.pick(outsiders));
      } else {
        return false;
      }
      return this.proposeChange(leader, [...voters].sort((a, b) => a - b), [...learners].sort((a, b) => a - b));
    }
    const outside = pool.filter((id) => !voters.has(id));
    const count = rng.chance(m.multiRate) ? 2 : 1;
    const roll = rng.next();
    const removeOne = (): void => {
      const candidates = [...voters];
      const victim = voters.has(leader.id) && rng.chance(m.removeLeaderRate) ? leader.id : rng.pick(candidates);
      voters.delete(victim);
    };
    const addOne = (): void => {
      const choices = pool.filter((id) => !voters.has(id));
      if (choices.length > 0) voters.add(rng.pick(choices));
    };
    // Drift back towards the initial size, so that the cluster is neither tiny nor huge for long.
    const n = this.initialVoters.length;
    const [removeBelow, addBelow] = voters.size < n ? [0.15, 0.75] : voters.size > n ? [0.6, 0.75] : [0.3, 0.6];
    if (roll < removeBelow) {
      for (let i = 0; i < count && voters.size > m.minVoters; i++) removeOne();
    } else if (roll < addBelow) {
      for (let i = 0; i < count && voters.size < m.maxVoters && outside.length > 0; i++) addOne();
    } else {
      for (let i = 0; i < count; i++) {
        removeOne();
        addOne();
      }
    }
    const target = [...voters].sort((a, b) => a - b);
    if (target.length === config.voters.length && target.every((id, i) => id === config.voters[i])) return false;
    // A voter removed in this change cannot stay a learner (a voter never becomes a learner in one change).
    for (const id of learners) if (target.includes(id)) learners.delete(id);
    return this.proposeChange(leader, target, [...learners].sort((a, b) => a - b));
  }

  /** Asks `leader` for the configuration `target` + `learners`, starting any server that does not exist yet. */
  private proposeChange(leader: SimNode, target: NodeId[], learners: NodeId[]): boolean {
    const core = leader.core!;
    const config = core.configuration!;
    const m = this.scenario.membership;
    const rng = this.adminRng;
    for (const id of [...target, ...learners]) {
      if (!this.nodes.has(id)) {
        const node = this.createNode(id, undefined);
        this.start(node);
      }
    }
    try {
      const id = core.proposeConfiguration(target, undefined, learners);
      this.stats.configChangesProposed++;
      this.trace(`admin asks leader n${leader.id} to change ${formatConfiguration(config)} → [${target.join(',')}]${learners.length ? `+learners[${learners.join(',')}]` : ''} (change #${id})`);
      if (rng.chance(m.partitionRate)) {
        // The servers joining (and the leader) on one side, the rest of C_old on the other.
        const side = new Set([leader.id, ...target.filter((id) => !config.voters.includes(id))]);
        let inTarget = target.filter((id) => side.has(id)).length;
        for (const id of rng.shuffle(target.filter((id) => !side.has(id)))) {
          if (inTarget * 2 > target.length) break;
          side.add(id);
          inTarget++;
        }
        const a = [...side].sort((x, y) => x - y);
        const b = [...this.nodes.keys()].filter((id) => !side.has(id));
        this.network.partition([a, b]);
        this.stats.networkChanges++;
        this.trace(`network partitions into {${a.map((id) => `n${id}`).join(',')}} {${b.map((id) => `n${id}`).join(',')}} during the change`);
      }
    } catch (error) {
      if (error instanceof NotLeaderError || error instanceof ConfigurationChangeError) {
        this.trace(`admin asks leader n${leader.id} for [${target.join(',')}]: refused (${error.message})`);
        return false;
      }
      this.engineFailure(leader, 'proposeConfiguration', error);
      return true;
    }
    this.pump(leader);
    return true;
  }

  /** The end of the faults: heal everything, restart every server, stop new operations. */
  private calmDown(): void {
    this.quiet = true;
    this.network.heal();
    this.network.conditions = { ...CALM_NETWORK };
    this.workload.stop();
    this.trace(`faults stop: network healed, every server restarted, clients stop issuing; ${this.scenario.quietUs / 1000}ms of calm follow`);
    for (const node of this.nodes.values()) if (!node.up) this.start(node);
  }

  // ------------------------------------------------------------------ checks

  /** After every event: the per-step invariants, and role changes for the trace. */
  private observe(): void {
    this.checker.afterEvent(this.live);
    for (const node of this.nodes.values()) {
      const core = node.core;
      if (!node.up || core === undefined) continue;
      if (core.role !== node.seenRole || core.term !== node.seenTerm || core.leaderId !== node.seenLeader) {
        if (this.tracer) {
          this.trace(
            `n${node.id} is ${core.role} in term ${core.term}${core.role !== 'leader' && core.leaderId ? ` (leader n${core.leaderId})` : ''}` +
              `${core.role === 'leader' ? `, configuration ${formatConfiguration(core.configuration)}` : ''}`,
          );
        }
        if (core.role === 'leader' && node.seenRole !== 'leader') this.huntNewLeader(node);
        node.seenRole = core.role;
        node.seenTerm = core.term;
        node.seenLeader = core.leaderId;
      }
    }
  }

  /** The cluster has a leader and every member applied every acknowledged operation. */
  private converged(): boolean {
    const leader = this.currentLeader();
    if (leader === undefined) return false;
    let needed = 0;
    for (const ack of this.workload.acknowledged) if (ack.index > needed) needed = ack.index;
    for (const id of votersOf(leader.core!.configuration!)) {
      const node = this.nodes.get(id);
      if (node === undefined || !node.up || node.applied < needed) return false;
    }
    return true;
  }

  private finalChecks(): void {
    const leader = this.currentLeader();
    if (leader === undefined) {
      this.checker.violation(`no leader after ${(this.queue.now - this.scenario.durationUs) / 1000}ms of calm (liveness)`);
    } else {
      const config = leader.core!.configuration!;
      this.stats.finalConfiguration = formatConfiguration(config);
      const members = votersOf(config);
      for (const id of members) {
        const node = this.nodes.get(id);
        if (node === undefined || !node.up) {
          this.checker.violation(`member n${id} of ${formatConfiguration(config)} is not running at the end`);
          continue;
        }
        for (const ack of this.workload.acknowledged) {
          if (node.applied < ack.index) {
            this.checker.violation(
              `acknowledged #${ack.op.id} (${ack.op.kind} of ${ack.op.key}, applied at ${ack.index}/${ack.term}) is not applied on member n${id} ` +
                `after ${(this.queue.now - this.scenario.durationUs) / 1000}ms of calm (it applied up to ${node.applied})`,
            );
            break;
          }
        }
      }
      for (const ack of this.workload.acknowledged) {
        const committed = this.checker.committedAt(ack.index);
        if (committed === undefined || committed.term !== ack.term) {
          this.checker.violation(`acknowledged #${ack.op.id} was answered from ${ack.index}/${ack.term}, but ${ack.index} is committed as ${committed ? `${ack.index}/${committed.term}` : 'nothing'}`);
          break;
        }
      }
    }
    // State Machine Safety, end to end: servers that applied up to the same index hold the same state,
    // however they got there (applying entries, restoring snapshots, or both).
    const states = new Map<number, { id: NodeId; state: string }>();
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      const state = node.kv.serialize();
      const other = states.get(node.applied);
      if (other === undefined) states.set(node.applied, { id: node.id, state });
      else if (other.state !== state) this.checker.violation(`n${node.id} and n${other.id} both applied up to ${node.applied} but hold different states`);
    }
    const started = performance.now();
    const verdict = checkLinearizable(this.workload.history, { timeoutMs: this.options.linearizabilityTimeoutMs ?? 10_000 });
    this.linearizabilityMs = performance.now() - started;
    if (!verdict.ok) {
      this.checker.violation(
        verdict.timedOut ? `linearizability check ran out of time (counts as a violation): ${verdict.explanation ?? ''}` : `not linearizable: ${verdict.explanation ?? ''}`,
      );
    }
    this.trace(`final checks: ${this.checker.ok ? 'ok' : `${this.checker.violations.length} violation(s)`}`);
  }

  private result(): RunResult {
    const st = this.stats;
    st.virtualMs = this.queue.now / 1000;
    st.leaderTerms = this.checker.leadersByTerm.size;
    st.maxTerm = Math.max(0, ...this.checker.leadersByTerm.keys());
    st.committedEntries = this.checker.highestCommitted;
    st.opsOk = this.workload.counts.ok;
    st.opsFailed = this.workload.counts.fail;
    st.opsRefused = this.workload.counts.notLeader;
    st.opsUnknown = this.workload.history.filter((op) => op.outcome === 'unknown').length;
    const digest = new TextDigest();
    digest.add(JSON.stringify(st));
    for (const op of this.workload.history) digest.add(`${op.id} ${op.invoke} ${op.complete} ${op.outcome} ${String(op.result)}`);
    for (const node of this.nodes.values()) digest.add(`${node.id} ${node.up} ${node.core?.term} ${node.core?.commitIndex} ${node.disk.lastIndex}`);
    for (const v of this.checker.violations) digest.add(v);
    return {
      seed: this.options.seed,
      nodes: this.scenario.nodes,
      bug: this.bug,
      violations: this.checker.violations,
      stats: st,
      digest: digest.value,
      linearizabilityMs: this.linearizabilityMs,
    };
  }

  private trace(text: string): void {
    if (this.tracer) this.tracer(`${formatTime(this.queue.now)} ${text}`);
  }
}

function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}
