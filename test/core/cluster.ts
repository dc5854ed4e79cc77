import { RaftCore } from '../../lib/core/raft.js';
import type {
  Configuration,
  ConfigurationChangeOutcome,
  Entry,
  ReadState,
  HardState,
  LogStart,
  Message,
  NodeId,
  RaftCoreOptions,
  Ready,
  SnapshotMetadata,
} from '../../lib/core/types.js';

/** A snapshot as this cluster keeps it: its metadata and the state machine (the applied entries) at its index. */
export interface TestSnapshot {
  metadata: SnapshotMetadata;
  state: Entry[];
}

/** What one server's disk holds: only what a processed Ready persisted. */
export interface Disk {
  hardState: HardState;
  entries: Entry[];
  baseConfiguration?: Configuration;
  logStart?: LogStart;
  snapshot?: TestSnapshot;
}

export type CoreFactory = (options: RaftCoreOptions, disk: Disk) => RaftCore;

/**
 * A synchronous test cluster for unit tests: messages wait in a queue until delivered, Readies are
 * processed (persist → send → apply → advance) only when asked, so each test controls the order.
 */
export class TestCluster {
  readonly nodes = new Map<NodeId, RaftCore>();
  readonly disks = new Map<NodeId, Disk>();
  readonly applied = new Map<NodeId, Entry[]>();
  /** Membership-change outcomes each node reported. */
  readonly changes = new Map<NodeId, ConfigurationChangeOutcome[]>();
  /** Confirmed reads each node reported. */
  readonly reads = new Map<NodeId, ReadState[]>();
  queue: Message[] = [];
  /** Every message ever sent, in order. */
  readonly sent: Message[] = [];
  /** Links that drop messages: `from-to`. */
  readonly cut = new Set<string>();
  /** Snapshot bytes that arrived with an InstallSnapshot, waiting for the Ready that accepts them. */
  private readonly arrived = new Map<NodeId, TestSnapshot>();

  constructor(
    ids: NodeId[],
    readonly options: Partial<RaftCoreOptions> = {},
    voters: NodeId[] = ids,
  ) {
    for (const id of ids) {
      this.disks.set(id, { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], baseConfiguration: { voters } });
      this.start(id);
    }
  }

  /** Adds a server that joins later: empty disk, no configuration. */
  addJoiner(id: NodeId): RaftCore {
    this.disks.set(id, { hardState: { term: 0, vote: 0, commit: 0 }, entries: [] });
    return this.start(id);
  }

  start(id: NodeId): RaftCore {
    const disk = this.disks.get(id)!;
    const core = new RaftCore(
      // Distinct, fixed timeouts per node (10, 11, 12 … ticks) so that elections never split by accident.
      { id, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => ((id - 1) % 10) / 10, ...this.options },
      {
        hardState: disk.hardState,
        entries: [...disk.entries],
        ...(disk.baseConfiguration ? { baseConfiguration: disk.baseConfiguration } : {}),
        ...(disk.logStart ? { logStart: disk.logStart } : {}),
        // The state machine is restored from the snapshot before the engine starts.
        ...(disk.snapshot ? { snapshot: disk.snapshot.metadata, appliedIndex: disk.snapshot.metadata.index } : {}),
      },
    );
    this.nodes.set(id, core);
    this.applied.set(id, [...(disk.snapshot?.state ?? [])]);
    return core;
  }

  /**
   * The driver's side of compaction: snapshot `id`'s state machine at `index` (applied), store it,
   * drop stored entries up to `compactTo`, then tell the engine.
   */
  compact(id: NodeId, index: number, compactTo = index): SnapshotMetadata {
    const core = this.node(id);
    const disk = this.disks.get(id)!;
    const metadata = core.snapshotMetadata(index);
    const configuration = core.configurationAt(compactTo)!;
    disk.snapshot = { metadata, state: this.applied.get(id)!.filter((e) => e.index <= index) };
    const term = core.snapshotMetadata(compactTo).term;
    disk.entries = disk.entries.filter((e) => e.index > compactTo);
    disk.logStart = { index: compactTo, term };
    disk.baseConfiguration = configuration;
    core.compact(metadata, compactTo);
    return metadata;
  }

  /** Crash: the engine and its unprocessed effects vanish; the disk stays. */
  crash(id: NodeId): void {
    this.nodes.delete(id);
    this.queue = this.queue.filter((m) => m.to !== id);
  }

  node(id: NodeId): RaftCore {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`node ${id} is down`);
    return node;
  }

  /** persist → send → apply → advance, once. Returns the Ready. */
  process(id: NodeId): Ready | undefined {
    const node = this.node(id);
    if (!node.hasReady()) return undefined;
    const ready = node.ready();
    const disk = this.disks.get(id)!;
    if (ready.hardState) disk.hardState = ready.hardState;
    if (ready.truncateFrom !== undefined) disk.entries = disk.entries.filter((e) => e.index < ready.truncateFrom!);
    if (ready.snapshot) {
      const arrived = this.arrived.get(id);
      if (!arrived || arrived.metadata.index !== ready.snapshot.index) throw new Error(`node ${id} accepted a snapshot whose bytes never arrived`);
      disk.snapshot = arrived;
      disk.entries = disk.entries.filter((e) => e.index > ready.snapshot!.index);
      disk.logStart = { index: ready.snapshot.index, term: ready.snapshot.term };
      disk.baseConfiguration = ready.snapshot.configuration;
      this.applied.set(id, [...arrived.state]); // restore the state machine
    }
    disk.entries.push(...ready.entries);
    for (const m of ready.messages) {
      this.sent.push(m);
      if (!this.cut.has(`${m.from}-${m.to}`)) this.queue.push(m);
    }
    this.applied.get(id)!.push(...ready.committedEntries);
    this.changes.set(id, [...(this.changes.get(id) ?? []), ...ready.configurationChanges]);
    this.reads.set(id, [...(this.reads.get(id) ?? []), ...ready.readStates]);
    node.advance(ready);
    return ready;
  }

  /** Delivers queued messages matching `filter` (all by default), in order. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    const now = this.queue.filter(filter);
    this.queue = this.queue.filter((m) => !filter(m));
    for (const m of now) {
      if (m.type === 'InstallSnapshot') {
        // The transport carries the bytes: the sender's stored snapshot.
        const stored = this.disks.get(m.from)?.snapshot;
        if (!stored || stored.metadata.index !== m.snapshot.index) throw new Error(`node ${m.from} sent a snapshot it does not store`);
        this.arrived.set(m.to, { metadata: stored.metadata, state: [...stored.state] });
      }
      this.nodes.get(m.to)?.step(m);
    }
    return now.length;
  }

  /** Process and deliver until nothing moves. */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = 0;
      for (const id of this.nodes.keys()) if (this.process(id)) moved++;
      moved += this.deliver();
      if (moved === 0) return;
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).tick();
  }

  /** Makes `id` time out and win an election (with PreVote, two rounds). */
  elect(id: NodeId): void {
    const node = this.node(id);
    for (let i = 0; i < 100 && node.role !== 'leader'; i++) {
      node.tick();
      this.stabilize();
    }
    if (node.role !== 'leader') throw new Error(`node ${id} did not become leader`);
  }

  partition(...groups: NodeId[][]): void {
    this.cut.clear();
    for (const a of groups) for (const b of groups) if (a !== b) for (const x of a) for (const y of b) this.cut.add(`${x}-${y}`);
  }

  heal(): void {
    this.cut.clear();
  }

  propose(id: NodeId, text: string): { index: number; term: number } {
    return this.node(id).propose(new TextEncoder().encode(text));
  }

  /** Applied commands as text, per node. */
  appliedCommands(id: NodeId): string[] {
    return this.applied.get(id)!.filter((e) => e.type === 'command').map((e) => new TextDecoder().decode(e.command));
  }
}
