import 'reflect-metadata';
import { Injectable, Module, type DynamicModule, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pg from 'pg';
import { firstValueFrom } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LogCompactedError } from '../../lib/core/errors.js';
import { RaftExceptionFilter, RaftModule, RaftService, type RaftNode, type RaftNodeEvent, type RaftStateMachine } from '../../lib/index.js';
import {
  DATABASE_URL,
  REAL_POSTGRES,
  TEST_CLUSTER_SECRET,
  dropTestClusterSnapshots,
  dropTestClusters,
  eventually,
  freePort,
  freshClusterId,
} from './helpers.js';

/**
 * Log compaction, InstallSnapshot and learners end to end: Nest applications, each a Raft node on its
 * own loopback address, over real HTTP (every RPC signed with the cluster secret), with their logs,
 * snapshots and log starts in a real PostgreSQL server. Snapshots are taken every
 * {@link SNAPSHOT_EVERY} applied entries and keep {@link TRAILING} entries behind them, so a few hundred
 * writes compact every log several times.
 */
const SNAPSHOT_EVERY = 50;
const TRAILING = 10;
const ELECTION_TIMEOUT_MS = 300;
const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
const SIGNATURE_HEADER = 'x-raft-signature';
const SENDER_HEADER = 'x-raft-sender';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

type KvCommand = { op: 'put'; key: string; value: unknown } | { op: 'delete'; key: string };

/** A replicated key-value map that snapshots itself as JSON; records the snapshots it was restored from. */
class SnapshotKv implements RaftStateMachine {
  readonly data = new Map<string, unknown>();
  /** The index of every `restore()` (on restart from the stored snapshot, or an installed one). */
  readonly restores: number[] = [];
  snapshots = 0;

  apply(command: Uint8Array): unknown {
    const parsed = JSON.parse(decoder.decode(command)) as KvCommand;
    if (parsed.op === 'put') this.data.set(parsed.key, parsed.value);
    else this.data.delete(parsed.key);
    return { ok: true };
  }

  snapshot(): Uint8Array {
    this.snapshots++;
    return encoder.encode(JSON.stringify([...this.data]));
  }

  restore(data: Uint8Array, index: number): void {
    this.restores.push(index);
    this.data.clear();
    for (const [key, value] of JSON.parse(decoder.decode(data)) as [string, unknown][]) this.data.set(key, value);
  }

  /** The whole map, in a form two nodes can be compared by. */
  dump(): string {
    return JSON.stringify([...this.data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

/** The same map as an injectable class (the way the sample app passes its state machine). */
@Injectable()
class InjectableSnapshotKv extends SnapshotKv {}

interface NodeConfig {
  id: number;
  host: string;
  port: number;
  url: string;
  clusterId: string;
  /** The initial cluster; empty for a server that is added later. */
  peers: { id: number; url: string }[];
  /** Pass the state machine as an injectable class (resolved by the module) instead of an instance. */
  asClass?: boolean;
}

@Module({})
class SnapshotTestModule {
  static forNode(config: NodeConfig, machine: SnapshotKv | undefined): DynamicModule {
    return {
      module: SnapshotTestModule,
      imports: [
        RaftModule.forRoot({
          nodeId: config.id,
          url: config.url,
          peers: config.peers,
          stateMachine: machine ?? InjectableSnapshotKv,
          storage: { postgres: { url: DATABASE_URL } },
          clusterId: config.clusterId,
          electionTimeoutMs: ELECTION_TIMEOUT_MS,
          snapshotEvery: SNAPSHOT_EVERY,
          snapshotTrailingEntries: TRAILING,
          clusterSecret: TEST_CLUSTER_SECRET,
        }),
      ],
      providers: machine ? [] : [InjectableSnapshotKv],
    };
  }
}

/** A Raft RPC this node's HTTP server answered. */
interface RpcSeen {
  readonly path: string;
  readonly status: number;
  readonly signed: boolean;
  readonly sender: number;
}

interface SnapNode {
  readonly config: NodeConfig;
  readonly id: number;
  readonly url: string;
  readonly app: INestApplication;
  readonly raft: RaftService;
  readonly node: RaftNode;
  readonly machine: SnapshotKv;
  /** The node's `snapshot` events, from before it started. */
  readonly snapshotEvents: Extract<RaftNodeEvent, { type: 'snapshot' }>[];
  /** Every role the node took, from before it started. */
  readonly roles: Set<string>;
  readonly rpcs: RpcSeen[];
}

let nodes: SnapNode[] = [];
let db: pg.Client;

beforeAll(async () => {
  if (!REAL_POSTGRES) return;
  db = new pg.Client({ connectionString: DATABASE_URL });
  await db.connect();
});
afterEach(async () => {
  await Promise.allSettled(nodes.map((n) => n.app.close()));
  nodes = [];
});
afterAll(async () => {
  await db?.end();
  await dropTestClusters();
  await dropTestClusterSnapshots();
});

/** Starts one node in this process, listening on its own loopback address; it starts as the app does. */
async function startSnapNode(config: NodeConfig): Promise<SnapNode> {
  const instance = config.asClass ? undefined : new SnapshotKv();
  const app = await NestFactory.create(SnapshotTestModule.forNode(config, instance), { logger: false, rawBody: true });
  app.useGlobalFilters(new RaftExceptionFilter());
  const raft = app.get(RaftService);
  const node = raft.node;
  const snapshotEvents: SnapNode['snapshotEvents'] = [];
  const roles = new Set<string>();
  const rpcs: RpcSeen[] = [];
  // Subscribed before the node starts (on listen), so nothing it does is missed.
  node.events$.subscribe((event) => {
    if (event.type === 'snapshot') snapshotEvents.push(event);
  });
  node.state$.subscribe((state) => roles.add(state.role));
  app.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path.startsWith('/raft/')) {
      const signed = typeof req.headers[SIGNATURE_HEADER] === 'string';
      const sender = Number(req.headers[SENDER_HEADER] ?? 0);
      res.on('finish', () => rpcs.push({ path, status: res.statusCode, signed, sender }));
    }
    next();
  });
  await app.listen(config.port, config.host);
  const machine: SnapshotKv = instance ?? app.get(InjectableSnapshotKv, { strict: false });
  const started: SnapNode = { config, id: config.id, url: config.url, app, raft, node, machine, snapshotEvents, roles, rpcs };
  nodes.push(started);
  return started;
}

async function stopSnapNode(node: SnapNode): Promise<void> {
  nodes = nodes.filter((n) => n !== node);
  await node.app.close();
}

async function addressFor(clusterId: string, id: number, peers: NodeConfig['peers'], asClass = false): Promise<NodeConfig> {
  const host = HOSTS[(id - 1) % HOSTS.length]!;
  const port = await freePort(host);
  return { id, host, port, url: `http://${host}:${port}`, clusterId, peers, ...(asClass ? { asClass } : {}) };
}

async function startCluster(size = 3): Promise<{ clusterId: string; configs: NodeConfig[] }> {
  const clusterId = freshClusterId();
  const configs: NodeConfig[] = [];
  for (let id = 1; id <= size; id++) configs.push(await addressFor(clusterId, id, []));
  const peers = configs.map((c) => ({ id: c.id, url: c.url }));
  for (const c of configs) c.peers = peers;
  await Promise.all(configs.map((c) => startSnapNode(c)));
  return { clusterId, configs };
}

function leaderOf(among: SnapNode[] = nodes): SnapNode | undefined {
  const leaders = among.filter((n) => n.raft.isLeader());
  return leaders.length === 1 ? leaders[0] : undefined;
}

/** `count` puts through the leader's RaftService, 8 at a time; keys cycle through `keys` names. */
async function write(through: SnapNode, count: number, options: { prefix: string; keys?: number; pad?: number }): Promise<void> {
  const keys = options.keys ?? count;
  const padding = 'x'.repeat(options.pad ?? 0);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const command: KvCommand = { op: 'put', key: `${options.prefix}${i % keys}`, value: { i, padding } };
      await through.raft.command(JSON.stringify(command), { timeoutMs: 15_000 });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Waits until every node has applied what the leader committed and all hold the same map. */
async function converged(among: SnapNode[] = nodes, timeoutMs = 20_000): Promise<string> {
  return eventually(
    () => {
      const leader = leaderOf(among);
      if (!leader) return undefined;
      const commit = leader.raft.commitIndex;
      if (among.some((n) => n.raft.status().appliedIndex < commit)) return undefined;
      const dumps = new Set(among.map((n) => n.machine.dump()));
      return dumps.size === 1 ? [...dumps][0] : undefined;
    },
    timeoutMs,
    `nodes ${among.map((n) => n.id).join(', ')} to apply the same state`,
  );
}

async function logRows(clusterId: string, nodeId: number): Promise<{ count: number; min: number | null; max: number | null }> {
  const { rows } = await db.query<{ count: string; min: string | null; max: string | null }>(
    'SELECT count(*) AS count, min("index") AS min, max("index") AS max FROM raft_log_entries WHERE cluster_id = $1 AND node_id = $2',
    [clusterId, nodeId],
  );
  const row = rows[0]!;
  return { count: Number(row.count), min: row.min === null ? null : Number(row.min), max: row.max === null ? null : Number(row.max) };
}

async function snapshotRow(clusterId: string, nodeId: number): Promise<{ index: number; size: number; chunks: number; voters: number[] } | undefined> {
  const { rows } = await db.query<{ index: string; size: string; chunks: number; configuration: { voters: number[] } }>(
    'SELECT "index", "size", "chunks", "configuration" FROM raft_snapshots WHERE cluster_id = $1 AND node_id = $2',
    [clusterId, nodeId],
  );
  const row = rows[0];
  return row ? { index: Number(row.index), size: Number(row.size), chunks: row.chunks, voters: row.configuration.voters } : undefined;
}

async function logStart(clusterId: string, nodeId: number): Promise<number | undefined> {
  const { rows } = await db.query<{ log_start_index: string }>('SELECT log_start_index FROM raft_base_configuration WHERE cluster_id = $1 AND node_id = $2', [clusterId, nodeId]);
  return rows[0] ? Number(rows[0].log_start_index) : undefined;
}

/** Every `sent` snapshot event of the running nodes to `to`. */
function snapshotsSentTo(to: number): SnapNode['snapshotEvents'] {
  return nodes.flatMap((n) => n.snapshotEvents.filter((e) => e.kind === 'sent' && e.to === to));
}

const ids = (members: readonly { id: number }[]) => members.map((m) => m.id).sort((a, b) => a - b);

describe.runIf(REAL_POSTGRES)('log compaction and InstallSnapshot over HTTP with PostgreSQL', () => {
  it('bounds every stored log, stores a snapshot, and a restarted node restores from it', { timeout: 45_000 }, async () => {
    const { clusterId, configs } = await startCluster();
    const leader = await eventually(() => leaderOf(), 10_000, 'a leader');
    const writes = 300;
    await write(leader, writes, { prefix: 'k', keys: 120 });
    const state = await converged();
    expect(JSON.parse(state)).toHaveLength(120);

    for (const n of nodes) {
      // The node's own snapshots, saved and compacted by its pipeline, once it is quiet.
      const stored = await eventually(async () => {
        const rows = await logRows(clusterId, n.id);
        const snap = await snapshotRow(clusterId, n.id);
        const start = await logStart(clusterId, n.id);
        const status = n.raft.status();
        return snap && start !== undefined && start === status.logStartIndex && snap.index === status.snapshotIndex ? { rows, snap, start, status } : undefined;
      }, 10_000, `node ${n.id}'s snapshot to be stored`);
      expect(stored.snap.index).toBeGreaterThan(writes - 2 * SNAPSHOT_EVERY);
      expect(stored.snap.size).toBeGreaterThan(0);
      expect(stored.snap.chunks).toBeGreaterThanOrEqual(1);
      expect(stored.snap.voters).toEqual([1, 2, 3]);
      expect(stored.start).toBeGreaterThan(0);
      expect(stored.start).toBeLessThanOrEqual(stored.snap.index);
      // The log is what is left after the compaction point: bounded, and far below the writes.
      expect(stored.rows.count).toBeLessThanOrEqual(2 * (SNAPSHOT_EVERY + TRAILING));
      expect(stored.rows.count).toBeLessThan(writes / 2);
      expect(stored.rows.min).toBe(stored.start + 1);
      expect(stored.rows.max).toBe(stored.status.lastIndex);
      expect(n.snapshotEvents.some((e) => e.kind === 'taken')).toBe(true);
      expect(n.machine.snapshots).toBeGreaterThanOrEqual(Math.floor(writes / SNAPSHOT_EVERY) - 1);
    }
    // Compacted entries cannot be replayed.
    await expect(firstValueFrom(leader.raft.commitsFrom(1))).rejects.toBeInstanceOf(LogCompactedError);

    // Restart a follower on the same database: its state machine starts from the stored snapshot.
    const victim = nodes.find((n) => n !== leader)!;
    await stopSnapNode(victim);
    const storedSnapshot = (await snapshotRow(clusterId, victim.id))!;
    const storedStart = (await logStart(clusterId, victim.id))!;
    const restarted = await startSnapNode(configs.find((c) => c.id === victim.id)!);
    expect(restarted.machine.restores[0]).toBe(storedSnapshot.index);
    expect(restarted.raft.status()).toMatchObject({ snapshotIndex: storedSnapshot.index, logStartIndex: storedStart });
    expect(await converged()).toBe(state);

    const current = await eventually(() => leaderOf(), 10_000, 'a leader');
    await write(current, 5, { prefix: 'after-restart-' });
    const after = await converged();
    expect(restarted.machine.data.get('after-restart-4')).toMatchObject({ i: 4 });
    expect(after).not.toBe(state);
  });

  it('a follower that missed compacted entries catches up through a signed, chunked InstallSnapshot', { timeout: 45_000 }, async () => {
    const { clusterId, configs } = await startCluster();
    const leader = await eventually(() => leaderOf(), 10_000, 'a leader');
    await write(leader, 20, { prefix: 'early-' });
    await converged();
    const victim = nodes.find((n) => n !== leader)!;
    const missedFrom = victim.raft.status().lastIndex + 1;
    await stopSnapNode(victim);

    // Values of ~4 KiB over 150 keys: a snapshot of ~600 KiB, more than one HTTP chunk (512 KiB).
    await write(leader, 3 * (SNAPSHOT_EVERY + TRAILING) + 20, { prefix: 'big-', keys: 150, pad: 4000 });
    const rest = nodes.slice();
    await converged(rest);
    const current = leaderOf(rest)!;
    // The entries the victim lacks are gone from the leader's log (and its table).
    expect(current.raft.status().logStartIndex).toBeGreaterThan(missedFrom);
    expect((await logRows(clusterId, current.id)).min).toBeGreaterThan(missedFrom);

    const restarted = await startSnapNode(configs.find((c) => c.id === victim.id)!);
    const installed = await eventually(() => restarted.snapshotEvents.find((e) => e.kind === 'installed'), 20_000, 'the snapshot to be installed');
    expect(installed.index).toBeGreaterThan(missedFrom);
    expect(installed.bytes).toBeGreaterThan(512 * 1024);
    const sent = await eventually(() => snapshotsSentTo(restarted.id).find((e) => e.index === installed.index), 10_000, 'the leader to report the snapshot sent');
    expect(sent).toMatchObject({ type: 'snapshot', kind: 'sent', to: restarted.id });
    expect(restarted.machine.restores).toContain(installed.index);

    // Over HTTP, in several requests, each signed by the leader and accepted.
    const transfers = restarted.rpcs.filter((r) => r.path === '/raft/installsnapshot');
    expect(transfers.length).toBeGreaterThanOrEqual(2);
    for (const rpc of transfers) expect(rpc).toMatchObject({ signed: true, sender: current.id, status: 200 });

    const state = await converged();
    expect(JSON.parse(state).length).toBe(150 + 20);
    expect(restarted.machine.dump()).toBe(current.machine.dump());
    // The installed snapshot is durable, with the log start after it.
    expect((await snapshotRow(clusterId, restarted.id))!.index).toBeGreaterThanOrEqual(installed.index);
    expect((await logStart(clusterId, restarted.id))!).toBeGreaterThanOrEqual(installed.index - TRAILING);

    // It keeps following new writes through AppendEntries.
    await write(current, 10, { prefix: 'later-' });
    await converged();
    expect(restarted.machine.data.get('later-9')).toMatchObject({ i: 9 });
    expect(restarted.snapshotEvents.filter((e) => e.kind === 'installed')).toHaveLength(1);

    // Not just any request gets there: an unsigned InstallSnapshot is refused before its body is read.
    const unsigned = await fetch(`${restarted.url}/raft/installsnapshot`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(unsigned.status).toBe(401);
  });

  it('a fourth server with an empty store joins after compaction through InstallSnapshot', { timeout: 45_000 }, async () => {
    const { clusterId } = await startCluster();
    const leader = await eventually(() => leaderOf(), 10_000, 'a leader');
    await write(leader, 200, { prefix: 'k', keys: 80 });
    const before = await converged();
    expect(leader.raft.status().logStartIndex).toBeGreaterThan(0);

    const fourth = await startSnapNode(await addressFor(clusterId, 4, []));
    expect(await logStart(clusterId, 4)).toBeUndefined(); // an empty store: nothing bootstrapped
    const follower = nodes.find((n) => n !== leader && n !== fourth)!;
    await follower.raft.addMember({ id: 4, url: fourth.url }, { timeoutMs: 20_000 }); // forwarded to the leader

    const installed = await eventually(() => fourth.snapshotEvents.find((e) => e.kind === 'installed'), 20_000, 'node 4 to install a snapshot');
    expect(snapshotsSentTo(4).length).toBeGreaterThanOrEqual(1);
    expect(fourth.machine.restores).toContain(installed.index);
    expect(fourth.rpcs.some((r) => r.path === '/raft/installsnapshot' && r.signed && r.status === 200)).toBe(true);
    expect(await converged()).toBe(before);

    for (const n of nodes) {
      await eventually(() => (ids(n.raft.status().members).join() === '1,2,3,4' ? true : undefined), 10_000, `node ${n.id} to see 4 voters`);
      expect(n.raft.status()).toMatchObject({ joint: false, learners: [] });
    }
    expect(await logStart(clusterId, 4)).toBeGreaterThan(0);
    expect((await snapshotRow(clusterId, 4))!.index).toBeGreaterThanOrEqual(installed.index);

    const current = await eventually(() => leaderOf(), 10_000, 'a leader');
    await write(current, 5, { prefix: 'with-four-' });
    await converged();
    expect(fourth.machine.data.get('with-four-4')).toMatchObject({ i: 4 });
  });

  it('a learner added through a follower receives the snapshot, never leads, and can be promoted', { timeout: 45_000 }, async () => {
    const { clusterId } = await startCluster();
    const leader = await eventually(() => leaderOf(), 10_000, 'a leader');
    await write(leader, 150, { prefix: 'k', keys: 60 });
    const before = await converged();
    expect(leader.raft.status().logStartIndex).toBeGreaterThan(0);

    const learner = await startSnapNode(await addressFor(clusterId, 4, []));
    const follower = nodes.find((n) => n !== leader && n !== learner)!;
    // On a follower: forwarded to the leader over POST /raft/setconfiguration, with the learners.
    await follower.node.addLearner({ id: 4, url: learner.url }, { timeoutMs: 20_000 });
    const forwarded = nodes.flatMap((n) => n.rpcs.filter((r) => r.path === '/raft/setconfiguration' && r.sender === follower.id));
    expect(forwarded.some((r) => r.signed && r.status < 300)).toBe(true);

    const installed = await eventually(() => learner.snapshotEvents.find((e) => e.kind === 'installed'), 20_000, 'the learner to install a snapshot');
    expect(learner.machine.restores).toContain(installed.index);
    expect(await converged()).toBe(before);
    for (const n of nodes) {
      if (n === learner) continue; // its own view comes from the snapshot: see 'keeps the learners in an installed snapshot'
      await eventually(() => (ids(n.raft.status().learners).join() === '4' ? true : undefined), 10_000, `node ${n.id} to list learner 4`);
      expect(ids(n.raft.status().members)).toEqual([1, 2, 3]);
    }
    expect(ids(learner.raft.status().members)).toEqual([1, 2, 3]);
    expect(leader.raft.status().replication.map((r) => r.id)).toContain(4);

    // Not a voter: it cannot be handed leadership, and it keeps following.
    const current = await eventually(() => leaderOf(), 10_000, 'a leader');
    await expect(current.raft.transferLeadership(4, { timeoutMs: 2_000 })).rejects.toThrow(/not a voter/);
    await write(current, 60, { prefix: 'learning-' });
    await converged();
    expect(learner.machine.data.get('learning-59')).toMatchObject({ i: 59 });
    expect([...learner.roles].sort()).toEqual(['follower', 'stopped']);

    // Promoted (through a follower again): a voter of 4, which can now lead.
    await follower.node.promoteLearner(4, { timeoutMs: 20_000 });
    for (const n of nodes) {
      await eventually(() => (ids(n.raft.status().members).join() === '1,2,3,4' && n.raft.status().learners.length === 0 ? true : undefined), 10_000, `node ${n.id} to see 4 voters`);
    }
    const voterLeader = await eventually(() => leaderOf(), 10_000, 'a leader');
    expect(await voterLeader.raft.transferLeadership(4, { timeoutMs: 10_000 })).toBe(4);
    await eventually(() => (learner.raft.isLeader() ? true : undefined), 10_000, 'node 4 to lead');
    await write(learner, 5, { prefix: 'led-by-four-' });
    await converged();
  });

  it('snapshots a state machine given as an injectable class, as the sample app does', { timeout: 30_000 }, async () => {
    const clusterId = freshClusterId();
    const config = await addressFor(clusterId, 1, [], true);
    config.peers = [{ id: 1, url: config.url }];
    const single = await startSnapNode(config);
    await eventually(() => (single.raft.isLeader() ? true : undefined), 10_000, 'the single node to lead');
    await write(single, 2 * SNAPSHOT_EVERY + 10, { prefix: 'k' });
    // RaftModule wraps a class state machine lazily (lib/nest/raft-node.factory.ts): the wrapper must
    // expose snapshot() and restore() too, or the node never compacts its log.
    await eventually(() => (single.raft.status().snapshotIndex > 0 ? true : undefined), 10_000, 'a snapshot of the class-based state machine');
    expect(single.machine.snapshots).toBeGreaterThan(0);
    expect((await snapshotRow(clusterId, 1))!.index).toBeGreaterThan(0);
    // And the restart restores it into the class instance.
    await stopSnapNode(single);
    const restarted = await startSnapNode(config);
    expect(restarted.machine.restores.length).toBe(1);
    const last = `k${2 * SNAPSHOT_EVERY + 9}`;
    await eventually(() => restarted.machine.data.get(last), 10_000, 'the log after the snapshot to be applied');
    expect(restarted.machine.data.get(last)).toMatchObject({ i: 2 * SNAPSHOT_EVERY + 9 });
  });

  it('keeps the learners in an installed snapshot: a server that installs one still replicates to them as leader', { timeout: 45_000 }, async () => {
    const { clusterId, configs } = await startCluster();
    const leader = await eventually(() => leaderOf(), 10_000, 'a leader');
    await write(leader, 20, { prefix: 'early-' });
    await converged();
    // A voter misses the learner's addition and everything up to well past the next compactions.
    const victim = nodes.find((n) => n !== leader)!;
    await stopSnapNode(victim);
    const learnerConfig = await addressFor(clusterId, 4, []);
    await leader.node.addLearner({ id: 4, url: learnerConfig.url }, { timeoutMs: 20_000 }); // the learner is not up yet
    const addedAt = leader.raft.status().lastIndex;
    await write(leader, 3 * (SNAPSHOT_EVERY + TRAILING) + 20, { prefix: 'k', keys: 50 });
    await converged();
    expect(leader.raft.status().logStartIndex).toBeGreaterThan(addedAt);
    const leaderSnapshot = (await snapshotRow(clusterId, leader.id))!;
    expect(leaderSnapshot.index).toBeGreaterThan(addedAt);

    // Both catch up through a snapshot taken after the learner was added: its configuration names learner 4.
    const learner = await startSnapNode(learnerConfig);
    const restarted = await startSnapNode(configs.find((c) => c.id === victim.id)!);
    for (const n of [learner, restarted]) {
      const installed = await eventually(() => n.snapshotEvents.find((e) => e.kind === 'installed'), 20_000, `node ${n.id} to install a snapshot`);
      expect(installed.index).toBeGreaterThan(addedAt);
    }
    const state = await converged();
    for (const n of [learner, restarted]) {
      expect.soft(ids(n.raft.status().members), `node ${n.id}'s voters`).toEqual([1, 2, 3]);
      expect.soft(ids(n.raft.status().learners), `node ${n.id}'s learners after installing the snapshot`).toEqual([4]);
    }
    const { rows } = await db.query<{ configuration: { learners?: number[] } }>('SELECT configuration FROM raft_snapshots WHERE cluster_id = $1 AND node_id = $2', [clusterId, restarted.id]);
    expect.soft(rows[0]?.configuration.learners, `the configuration of node ${restarted.id}'s stored snapshot`).toEqual([4]);

    // The server that installed the snapshot leads: the learner must keep receiving the log.
    expect(await leader.raft.transferLeadership(restarted.id, { timeoutMs: 10_000 })).toBe(restarted.id);
    await eventually(() => (restarted.raft.isLeader() ? true : undefined), 10_000, `node ${restarted.id} to lead`);
    await write(restarted, 5, { prefix: 'new-leader-' });
    await eventually(() => learner.machine.data.get('new-leader-4'), 10_000, `learner 4 to receive a write from leader ${restarted.id}`);
    expect(learner.machine.dump()).not.toBe(state);
    expect(learner.roles.has('leader')).toBe(false);
  });
});
