import { Inject, Injectable, Optional, type OnApplicationShutdown, type OnModuleInit, type Provider } from '@nestjs/common';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Observable, Subscription } from 'rxjs';
import type { RaftStatus } from '../../node/raft-node.js';
import { RaftService } from '../raft.service.js';
import type { RaftNodeEvent } from './raft-node-events.js';

/** A prom-client `Registry` (structurally: this file has no prom-client types in its public API). */
export interface RaftMetricsRegistry {
  registerMetric(metric: never): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

export interface RaftMetricsOptions {
  /** Where to register. Default: prom-client's global `register`. */
  readonly registry?: RaftMetricsRegistry;
  /** Prefix of every metric name. Default `raft_`. */
  readonly prefix?: string;
}

/** Optional provider of {@link RaftMetricsOptions} for {@link RaftMetrics}. */
export const RAFT_METRICS_OPTIONS = Symbol('RAFT_METRICS_OPTIONS');

const ROLES = ['follower', 'pre-candidate', 'candidate', 'leader', 'stopped'] as const;
const ENTRY_TYPES = ['command', 'noop', 'config'] as const;

type PromClient = typeof import('prom-client');

/** The metrics of one registry and prefix, shared by every RaftMetrics (node) that registers there. */
interface SharedMetrics {
  readonly client: PromClient;
  readonly registry: Registry;
  readonly sources: Set<RaftMetrics>;
  readonly names: string[];
  readonly elections: Counter<'node_id'>;
  readonly electionsWon: Counter<'node_id'>;
  readonly leadershipLost: Counter<'node_id'>;
  readonly committed: Counter<'node_id' | 'type'>;
  histograms?: {
    readonly rpc: Histogram<'node_id' | 'rpc' | 'peer' | 'outcome'>;
    readonly persistSeconds: Histogram<'node_id'>;
    readonly persistEntries: Histogram<'node_id'>;
    readonly appendEntries: Histogram<'node_id'>;
    readonly snapshotSeconds: Histogram<'node_id' | 'kind'>;
    readonly snapshotBytes: Histogram<'node_id' | 'kind'>;
  };
}

const sharedByRegistry = new WeakMap<object, Map<string, SharedMetrics>>();

async function loadPromClient(): Promise<PromClient> {
  try {
    const loaded = (await import('prom-client')) as PromClient & { default?: PromClient };
    return loaded.default ?? loaded;
  } catch (error) {
    throw new Error('RaftMetrics needs the prom-client package, an optional peer dependency of nestjs-raft: npm install prom-client', { cause: error });
  }
}

/**
 * Prometheus metrics of the node, through `prom-client` (an optional peer dependency, loaded only when
 * this provider initializes). Every metric carries a `node_id` label; several nodes (applications) in
 * one process may share a registry.
 *
 * Read at scrape time from `RaftService.status()`: `raft_term`, `raft_role{role}` (1 for the current
 * role), `raft_leader_id` (0: none known), `raft_commit_index`, `raft_applied_index`,
 * `raft_last_log_index`, `raft_apply_lag` (commit − applied), `raft_members` (voters in effect),
 * `raft_learners`, `raft_snapshot_index` (latest snapshot held), `raft_log_start_index` (compaction point) and,
 * on the leader only, `raft_replication_lag{peer}` (leader's last index − the peer's match index).
 * Counted from `state$` and `commits$`: `raft_elections_total` (terms in which this node stood for election),
 * `raft_elections_won_total` (became leader), `raft_leadership_lost_total`,
 * `raft_committed_entries_total{type}` (entries applied in this process).
 *
 * With the driver's `events$` hook (see {@link RaftNodeEvent}) also `raft_rpc_duration_seconds{rpc,peer,outcome}`,
 * `raft_persist_duration_seconds`, `raft_persist_batch_entries`, `raft_append_entries_batch_entries`,
 * `raft_snapshot_duration_seconds{kind}` and `raft_snapshot_bytes{kind}` (kind: taken, sent, installed).
 *
 * ```ts
 * providers: [...provideRaftMetrics({ registry })]  // or just RaftMetrics, for the global registry
 * ```
 */
@Injectable()
export class RaftMetrics implements OnModuleInit, OnApplicationShutdown {
  private shared: SharedMetrics | undefined;
  private readonly subscriptions: Subscription[] = [];
  /** Label sets this node used in each histogram, to remove them on shutdown. */
  private readonly histogramLabels = new Map<Histogram<string>, Map<string, Record<string, string>>>();

  constructor(
    @Inject(RaftService) private readonly raft: RaftService,
    @Optional() @Inject(RAFT_METRICS_OPTIONS) private readonly options: RaftMetricsOptions = {},
  ) {}

  private get nodeLabel(): string {
    return String(this.raft.nodeId);
  }

  async onModuleInit(): Promise<void> {
    const client = await loadPromClient();
    const registry = (this.options?.registry ?? client.register) as Registry;
    const prefix = this.options?.prefix ?? 'raft_';
    const shared = this.sharedMetrics(client, registry, prefix);
    shared.sources.add(this);
    this.shared = shared;
    const node_id = this.nodeLabel;
    for (const type of ENTRY_TYPES) shared.committed.inc({ node_id, type }, 0);
    for (const counter of [shared.elections, shared.electionsWon, shared.leadershipLost]) counter.inc({ node_id }, 0);

    // Subscribed before the node starts (on application bootstrap), so every transition is counted.
    // An election is counted once per term in which this node was seen as candidate or leader: state$
    // publishes the state after each step, so a node that wins at once (a single node) may never be
    // seen as candidate.
    let previous: string | undefined;
    let electionTerm = -1;
    this.subscriptions.push(
      this.raft.state$.subscribe((state) => {
        if ((state.role === 'candidate' || state.role === 'leader') && state.term !== electionTerm) {
          electionTerm = state.term;
          shared.elections.inc({ node_id });
        }
        if (state.role !== previous) {
          if (state.role === 'leader') shared.electionsWon.inc({ node_id });
          if (previous === 'leader') shared.leadershipLost.inc({ node_id });
        }
        previous = state.role;
      }),
      this.raft.commits$.subscribe((entry) => shared.committed.inc({ node_id, type: entry.type })),
    );

    const events$ = this.raft.node.events$;
    if (events$ && typeof events$.subscribe === 'function') {
      const histograms = this.histograms(shared, prefix);
      this.subscriptions.push(
        events$.subscribe((event) => {
          if (event.type === 'rpc') {
            this.observe(histograms.rpc, { node_id, rpc: event.rpc, peer: String(event.to), outcome: event.ok ? 'ok' : 'error' }, event.ms / 1000);
          } else if (event.type === 'persist') {
            this.observe(histograms.persistSeconds, { node_id }, event.ms / 1000);
            this.observe(histograms.persistEntries, { node_id }, event.entries);
          } else if (event.type === 'append') {
            this.observe(histograms.appendEntries, { node_id }, event.entries);
          } else if (event.type === 'snapshot') {
            this.observe(histograms.snapshotSeconds, { node_id, kind: event.kind }, event.ms / 1000);
            this.observe(histograms.snapshotBytes, { node_id, kind: event.kind }, event.bytes);
          }
        }),
      );
    }
  }

  onApplicationShutdown(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions.length = 0;
    const shared = this.shared;
    if (!shared) return;
    this.shared = undefined;
    const node_id = this.nodeLabel;
    for (const type of ENTRY_TYPES) shared.committed.remove({ node_id, type });
    for (const counter of [shared.elections, shared.electionsWon, shared.leadershipLost]) counter.remove({ node_id });
    for (const [metric, used] of this.histogramLabels) for (const labels of used.values()) metric.remove(labels);
    this.histogramLabels.clear();
    shared.sources.delete(this);
    if (shared.sources.size === 0) {
      for (const name of shared.names) shared.registry.removeSingleMetric(name);
      sharedByRegistry.get(shared.registry)?.forEach((value, key, map) => value === shared && map.delete(key));
    }
  }

  /** This node's status, for the gauges' collect (undefined after shutdown). */
  private statusForScrape(): RaftStatus | undefined {
    return this.shared ? this.raft.status() : undefined;
  }

  private observe(metric: Histogram<string>, labels: Record<string, string>, value: number): void {
    let used = this.histogramLabels.get(metric);
    if (!used) this.histogramLabels.set(metric, (used = new Map()));
    const key = JSON.stringify(labels);
    if (!used.has(key)) used.set(key, labels);
    metric.observe(labels, value);
  }

  private sharedMetrics(client: PromClient, registry: Registry, prefix: string): SharedMetrics {
    let byPrefix = sharedByRegistry.get(registry);
    if (!byPrefix) sharedByRegistry.set(registry, (byPrefix = new Map()));
    const existing = byPrefix.get(prefix);
    if (existing) return existing;

    const names: string[] = [];
    const sources = new Set<RaftMetrics>();
    const registers = [registry];
    const name = (suffix: string) => {
      const full = `${prefix}${suffix}`;
      if (registry.getSingleMetric(full)) {
        throw new Error(`RaftMetrics: a metric named ${full} is already registered (by something else); choose another prefix`);
      }
      names.push(full);
      return full;
    };
    /** A gauge read from each node's status at scrape time. */
    const gauge = <L extends string>(suffix: string, help: string, labelNames: L[], fill: (g: Gauge<L | 'node_id'>, s: RaftStatus, node_id: string) => void) =>
      new client.Gauge<L | 'node_id'>({
        name: name(suffix),
        help,
        labelNames: ['node_id', ...labelNames],
        registers,
        collect(this: Gauge<L | 'node_id'>) {
          this.reset();
          for (const source of sources) {
            const status = source.statusForScrape();
            if (status) fill(this, status, String(status.nodeId));
          }
        },
      });
    gauge('term', 'Current term of the node.', [], (g, s, node_id) => g.set({ node_id }, s.term));
    gauge('role', 'Role of the node: 1 for the current role, 0 for the others.', ['role'], (g, s, node_id) => {
      for (const role of ROLES) g.set({ node_id, role }, s.role === role ? 1 : 0);
    });
    gauge('leader_id', 'Id of the leader this node knows of (0: none).', [], (g, s, node_id) => g.set({ node_id }, s.leaderId));
    gauge('commit_index', 'Highest log index known to be committed.', [], (g, s, node_id) => g.set({ node_id }, s.commitIndex));
    gauge('applied_index', 'Highest log index applied to the state machine.', [], (g, s, node_id) => g.set({ node_id }, s.appliedIndex));
    gauge('last_log_index', 'Index of the last entry in the log.', [], (g, s, node_id) => g.set({ node_id }, s.lastIndex));
    gauge('apply_lag', 'Committed entries not yet applied (commit index - applied index).', [], (g, s, node_id) =>
      g.set({ node_id }, Math.max(0, s.commitIndex - s.appliedIndex)),
    );
    gauge('members', 'Voting members in the configuration in effect.', [], (g, s, node_id) => g.set({ node_id }, s.members.length));
    gauge('learners', 'Learners (non-voting members) in the configuration in effect.', [], (g, s, node_id) => g.set({ node_id }, s.learners.length));
    gauge('snapshot_index', 'Index of the latest snapshot this node holds (0: none).', [], (g, s, node_id) => g.set({ node_id }, s.snapshotIndex));
    gauge('log_start_index', 'Entries up to this index were compacted into a snapshot.', [], (g, s, node_id) => g.set({ node_id }, s.logStartIndex));
    gauge('replication_lag', "On the leader: entries each peer's log is behind the leader's (last index - match index).", ['peer'], (g, s, node_id) => {
      for (const r of s.replication) g.set({ node_id, peer: String(r.id) }, Math.max(0, s.lastIndex - r.matchIndex));
    });

    const counter = <L extends string>(suffix: string, help: string, labelNames: L[]) =>
      new client.Counter<L | 'node_id'>({ name: name(suffix), help, labelNames: ['node_id', ...labelNames], registers });
    const shared: SharedMetrics = {
      client,
      registry,
      sources,
      names,
      elections: counter('elections_total', 'Elections this node started (terms in which it was candidate or leader).', []),
      electionsWon: counter('elections_won_total', 'Times this node became the leader.', []),
      leadershipLost: counter('leadership_lost_total', 'Times this node stopped being the leader.', []),
      committed: counter('committed_entries_total', 'Committed entries applied by this node, by type.', ['type']),
    };
    byPrefix.set(prefix, shared);
    return shared;
  }

  private histograms(shared: SharedMetrics, prefix: string): NonNullable<SharedMetrics['histograms']> {
    if (shared.histograms) return shared.histograms;
    const { client, registry, names } = shared;
    const histogram = <L extends string>(suffix: string, help: string, labelNames: L[], buckets: number[]) => {
      const full = `${prefix}${suffix}`;
      names.push(full);
      return new client.Histogram<L | 'node_id'>({ name: full, help, labelNames: ['node_id', ...labelNames], buckets, registers: [registry] });
    };
    const seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    const sizes = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
    shared.histograms = {
      rpc: histogram('rpc_duration_seconds', 'Duration of outgoing Raft RPCs.', ['rpc', 'peer', 'outcome'], seconds),
      persistSeconds: histogram('persist_duration_seconds', 'Duration of durable storage batches.', [], seconds),
      persistEntries: histogram('persist_batch_entries', 'Entries per storage batch (group commit).', [], sizes),
      appendEntries: histogram('append_entries_batch_entries', 'Entries per AppendEntries sent.', [], sizes),
      snapshotSeconds: histogram('snapshot_duration_seconds', 'Time to take, send or install a snapshot.', ['kind'], [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]),
      snapshotBytes: histogram('snapshot_bytes', 'Size of snapshots taken, sent or installed.', ['kind'], [1024, 65536, 1048576, 16777216, 268435456]),
    };
    return shared.histograms;
  }
}

/** `RaftMetrics` with its options: `providers: [...provideRaftMetrics({ registry, prefix })]`. */
export function provideRaftMetrics(options: RaftMetricsOptions = {}): Provider[] {
  return [RaftMetrics, { provide: RAFT_METRICS_OPTIONS, useValue: options }];
}
