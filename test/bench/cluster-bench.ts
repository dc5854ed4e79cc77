/**
 * `npm run bench`: the sample as a 3-node cluster on loopback (127.0.0.1/2/3) with its logs in a real
 * PostgreSQL, measured the way issue 6 asks:
 *
 * 0. the floor on this machine: one durable PostgreSQL commit, one keep-alive HTTP round trip;
 * 1. `PUT /kv/:key` over HTTP, 100-byte values, spread over all three nodes (followers forward to
 *    the leader), 1, 16, 64 and 256 closed-loop clients — three node processes;
 * 2. `RaftService.command()` in-process on the leader, 1, 64 and 1,024 in flight — node 1 runs in
 *    this process and is made the leader, nodes 2 and 3 are processes;
 * 3. catch-up: a follower is stopped, 100,000 entries are written, the follower is restarted and its
 *    commitIndex (GET /cluster) is followed until it reaches the leader's;
 * 4. the cluster of 2–3 is then written to until its log holds 1,000,000 commands, and the peak RSS
 *    of every node is read (the issue's memory target is "after 1,000,000 commands"), with each
 *    node's stored log from PostgreSQL: rows in raft_log_entries, log start, snapshot index and size;
 * 5. restart: a follower that ran throughout (its own snapshot + the log tail) is stopped and started
 *    again: time until its API answers and until it has applied up to the leader's commit index;
 * 6. join: a 4th node with an empty database is started and added with POST /cluster/members on the
 *    leader: time until it has applied up to the leader's commit index, and whether it came through
 *    InstallSnapshot (its log line, the leader's `snapshot sent` event).
 *    The catch-up of phase 3 also tells whether the follower came back through a snapshot or entries.
 *
 * For each: throughput, p50/p99/max latency, CPU seconds per 1,000 commands per node (/proc/<pid>/stat,
 * process.cpuUsage for the in-process node), peak RSS per node (VmHWM). Results go to
 * bench/results/latest.{json,md} and latency-vs-throughput.svg; the last line is a one-line summary.
 *
 * Node processes run the compiled sample (`npm run build:sample` first, done here unless --no-build);
 * the in-process node imports the same compiled code from dist/.
 *
 * Flags: --seconds S measured window per scenario (10) · --warmup S warm-up per scenario (2) ·
 *   --quick short smoke run · --entries N catch-up entries (100000) · --rss-commands N log size for
 *   the memory reading (1000000; 0 skips it) · --only floor,http,inproc,catchup,rss,restart,join ·
 *   --snapshot-every N sets SNAPSHOT_EVERY on every node (the sample's default, 10000) ·
 *   --append-entries json|binary sets APPEND_ENTRIES_ENCODING on every node (binary) · --platform
 *   fastify|express sets HTTP_PLATFORM (the public API's Nest platform) on every node (fastify) ·
 *   --node-args "ARGS" extra arguments for the node processes' node (e.g. V8 heap flags; not the
 *   in-process node) · --join-timeout S
 *   how long phase 6 retries POST /cluster/members (300) · --heap-snapshot after the big write, each
 *   node's process.memoryUsage() and a heap snapshot (to <out>/profiles/), summarized in the report · --clients
 *   1,16,64,256 · --inflight 1,64,1024 · --profile http64,inproc1024,catchup (V8 CPU profiles of every
 *   node during those windows, to bench/results/profiles/) · --out DIR (bench/results) · --no-build ·
 *   --election-timeout-ms MS for every node (the sample's default) · --follower-election-timeout-ms MS
 *   for nodes 2 and 3 in phases 2–4 (1000; makes the in-process node win the first election).
 *   · --wait-quiet S before each scenario, wait up to S seconds until other processes use < 0.15
 *   cores (0: don't wait; the CPU they used is reported per scenario either way) · --repeat N runs
 *   each timed scenario N times and keeps the one least disturbed by other processes (1).
 * Environment: RAFT_BENCH_DATABASE_URL or RAFT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import 'reflect-metadata';
import { execFileSync, execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector';
import v8 from 'node:v8';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import os from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { INestApplication } from '@nestjs/common';
import pg from 'pg';
import { describeFloor, measureFloor, measureGetRoundTrip, measureStorageSave, type FloorResult, type SaveableStorage } from './bench-floor.js';
import {
  REPO_ROOT,
  SampleProcess,
  backgroundCores,
  freePort,
  machineBusySeconds,
  getJson,
  getStatusCode,
  requestJson,
  cpuByPid,
  cpuDelta,
  procCpuSeconds,
  procMemory,
  resetPeakRss,
  selfCpuSeconds,
  smapsSummary,
  type SmapsSummary,
  sleep,
  waitFor,
  type ClusterView,
  type NodeSpec,
} from './bench-procs.js';
import {
  mb,
  writeReportFiles,
  type BenchReport,
  type InstalledSnapshot,
  type NodeCost,
  type PeakRssRow,
  type PipelineStats,
  type RejoinResult,
  type ScenarioResult,
  type StartupTimeline,
  type StoredLogInfo,
  type TargetCheck,
} from './bench-report.js';
import { fmt, runClosedLoop, summarize, type LoadResult } from './bench-stats.js';
import { formatHeapSummary, summarizeHeapSnapshot } from './heap-summary.js';
import { formatProfileSummary, summarizeProfile, type CpuProfile, type ProfileSummary } from './profile-summary.js';

// ------------------------------------------------------------------------------------------------ options

const argv = process.argv.slice(2);
const has = (name: string) => argv.includes(`--${name}`);
function flag(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
const num = (name: string, fallback: number) => (flag(name) !== undefined ? Number(flag(name)) : fallback);
const list = (name: string, fallback: number[]) => (flag(name) ? flag(name)!.split(',').map(Number) : fallback);

const quick = has('quick');
const options = {
  seconds: num('seconds', quick ? 3 : 10),
  warmupSeconds: num('warmup', quick ? 1 : 2),
  entries: num('entries', quick ? 10_000 : 100_000),
  rssCommands: num('rss-commands', quick ? 150_000 : 1_000_000),
  clients: list('clients', [1, 16, 64, 256]),
  inflight: list('inflight', [1, 64, 1024]),
  only: (flag('only') ?? 'floor,http,inproc,catchup,rss,restart,join').split(','),
  /** SNAPSHOT_EVERY for every node; undefined: the sample's default. */
  snapshotEvery: flag('snapshot-every') !== undefined ? Number(flag('snapshot-every')) : undefined,
  /** APPEND_ENTRIES_ENCODING for every node (binary | json); undefined: the sample's default (binary). */
  appendEntriesEncoding: flag('append-entries'),
  /** HTTP_PLATFORM for every node (fastify | express); undefined: the sample's default (fastify). */
  httpPlatform: flag('platform'),
  /** Extra arguments for the node processes' `node` (V8 flags such as --max-semi-space-size), not for the in-process node. */
  nodeArgs: (flag('node-args') ?? '').split(' ').filter(Boolean),
  profile: (flag('profile') ?? '').split(',').filter(Boolean),
  out: flag('out') ?? join(REPO_ROOT, 'bench', 'results'),
  valueBytes: num('value-bytes', 100),
  keys: num('keys', 10_000),
  electionTimeoutMs: flag('election-timeout-ms') !== undefined ? Number(flag('election-timeout-ms')) : undefined,
  followerElectionTimeoutMs: num('follower-election-timeout-ms', 1000),
  waitQuietSeconds: num('wait-quiet', 0),
  /** How long phase 6 keeps retrying POST /cluster/members for the new node. */
  joinTimeoutSeconds: num('join-timeout', 300),
  repeat: num('repeat', 1),
  build: !has('no-build'),
  /** Diagnostics: after the big write, each node's memory (process.memoryUsage, v8 heap statistics) and a heap snapshot, summarized. */
  heapSnapshot: has('heap-snapshot'),
  quick,
};
const DATABASE_URL = process.env.RAFT_BENCH_DATABASE_URL ?? process.env.RAFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const runId = randomBytes(3).toString('hex');
const profileDir = join(options.out, 'profiles');
const value = 'x'.repeat(options.valueBytes);
const httpBody = Buffer.from(JSON.stringify({ value }));

// What the sample's config understands (another change may give the RPCs their own port and a secret).
const sampleConfigSource = readFileSync(join(REPO_ROOT, 'sample', 'src', 'config.ts'), 'utf8');
const SUPPORTS_RPC_PORT = sampleConfigSource.includes('RPC_PORT');
const SUPPORTS_SECRET = sampleConfigSource.includes('RAFT_CLUSTER_SECRET');
const SUPPORTS_ADMIN_TOKEN = sampleConfigSource.includes('ADMIN_TOKEN');
const clusterSecret = randomBytes(24).toString('hex');
const adminToken = randomBytes(16).toString('hex');
/** The library keeps this many entries behind a snapshot (RAFT_DEFAULTS.snapshotTrailingEntries; the sample does not change it). */
const TRAILING_ENTRIES = 1_000;
const DEFAULT_SNAPSHOT_EVERY = 10_000;

const startedAt = new Date();
let buildWarning: string | undefined;
const t0 = performance.now();
const log = (line: string) => console.log(line);

// ------------------------------------------------------------------------------------------------ cleanup

const clusterIds: string[] = [];
const children = new Set<SampleProcess>();
let inProcessApp: INestApplication | undefined;

async function deleteRows(): Promise<void> {
  if (clusterIds.length === 0) return;
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    for (const table of ['raft_log_entries', 'raft_hard_state', 'raft_base_configuration', 'raft_snapshot_chunks', 'raft_snapshots']) {
      await client.query(`DELETE FROM ${table} WHERE cluster_id = ANY($1)`, [clusterIds]).catch((e: unknown) => {
        if (!/does not exist/.test((e as Error).message)) throw e; // an older schema without snapshots
      });
    }
    await client.query('VACUUM raft_log_entries');
  } finally {
    await client.end();
  }
}

let cleaningUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.allSettled([...children].map((c) => c.stop(5_000)));
    if (inProcessApp) await inProcessApp.close().catch(() => undefined);
    inProcessApp = undefined;
    await monitor?.end().catch(() => undefined);
    monitor = undefined;
    await deleteRows().catch((e: unknown) => console.error(`could not delete the benchmark's rows: ${(e as Error).message}`));
  })();
  return cleaningUp;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the nodes and deleting the benchmark's rows…`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', () => {
  for (const c of children) c.kill();
});

// ------------------------------------------------------------------------------------------------ PostgreSQL's share

/** Each node connects with application_name raft-bench-<run>-n<id>, so its backend can be found. */
function nodeDatabaseUrl(nodeId: number): string {
  const url = new URL(DATABASE_URL);
  url.searchParams.set('application_name', `raft-bench-${runId}-n${nodeId}`);
  return url.toString();
}

/** PostgreSQL processes whose CPU counts as the benchmark's (see CpuSnapshot.postgres). */
let pgPids: number[] = [];
let monitor: pg.Client | undefined;

async function refreshPgPids(): Promise<void> {
  const { rows } = await (await monitorClient()).query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1 OR backend_type IN ('walwriter', 'checkpointer', 'background writer')`,
    [`raft-bench-${runId}-%`],
  );
  pgPids = rows.map((r) => r.pid);
}

async function monitorClient(): Promise<pg.Client> {
  if (!monitor) {
    monitor = new pg.Client({ connectionString: DATABASE_URL });
    await monitor.connect();
  }
  return monitor;
}

/** A node's log as stored in PostgreSQL: rows in raft_log_entries, where it starts, its snapshot. */
async function storedLog(clusterId: string, nodeId: number): Promise<StoredLogInfo> {
  const db = await monitorClient();
  const entries = await db.query<{ rows: string; first: string | null; last: string | null }>(
    'SELECT count(*) AS rows, min(index) AS first, max(index) AS last FROM raft_log_entries WHERE cluster_id = $1 AND node_id = $2',
    [clusterId, nodeId],
  );
  const start = await db.query<{ log_start_index: string }>('SELECT log_start_index FROM raft_base_configuration WHERE cluster_id = $1 AND node_id = $2', [clusterId, nodeId]).catch(() => ({ rows: [] }));
  const snap = await db
    .query<{ index: string; size: string; chunks: number }>('SELECT index, size, chunks FROM raft_snapshots WHERE cluster_id = $1 AND node_id = $2', [clusterId, nodeId])
    .catch(() => ({ rows: [] as { index: string; size: string; chunks: number }[] }));
  const e = entries.rows[0]!;
  const sn = snap.rows[0];
  return {
    rows: Number(e.rows),
    ...(e.first !== null ? { firstIndex: Number(e.first) } : {}),
    ...(e.last !== null ? { lastIndex: Number(e.last) } : {}),
    logStartIndex: Number(start.rows[0]?.log_start_index ?? 0),
    ...(sn ? { snapshotIndex: Number(sn.index), snapshotBytes: Number(sn.size), snapshotChunks: sn.chunks } : {}),
  };
}

const describeStored = (st: StoredLogInfo) =>
  `${st.rows.toLocaleString('en')} log rows${st.rows ? ` (${st.firstIndex}–${st.lastIndex})` : ''}, log start ${st.logStartIndex}, snapshot ${st.snapshotIndex !== undefined ? `${st.snapshotIndex} (${mb(st.snapshotBytes)})` : 'none'}`;

// ------------------------------------------------------------------------------------------------ the cluster

async function planNode(id: number): Promise<NodeSpec> {
  const host = `127.0.0.${id}`;
  const port = await freePort(host);
  const url = `http://${host}:${port}`;
  if (!SUPPORTS_RPC_PORT) return { id, host, port, url };
  const rpcPort = await freePort(host);
  return { id, host, port, url, rpcPort, rpcUrl: `http://${host}:${rpcPort}` };
}

function planNodes(): Promise<NodeSpec[]> {
  return Promise.all([1, 2, 3].map(planNode));
}

function envFor(node: NodeSpec, nodes: readonly NodeSpec[], clusterId: string, electionTimeoutMs: number | undefined): Record<string, string> {
  const env: Record<string, string> = {
    NODE_ID: String(node.id),
    HOST: node.host,
    PORT: String(node.port),
    PEERS: nodes.map((n) => `${n.id}=${n.rpcUrl ?? n.url}`).join(','),
    DATABASE_URL: nodeDatabaseUrl(node.id),
    CLUSTER_ID: clusterId,
  };
  if (node.rpcPort !== undefined) env.RPC_PORT = String(node.rpcPort);
  if (SUPPORTS_SECRET) env.RAFT_CLUSTER_SECRET = clusterSecret;
  if (SUPPORTS_ADMIN_TOKEN) env.ADMIN_TOKEN = adminToken;
  if (options.snapshotEvery !== undefined) env.SNAPSHOT_EVERY = String(options.snapshotEvery);
  if (options.appendEntriesEncoding !== undefined) env.APPEND_ENTRIES_ENCODING = options.appendEntriesEncoding;
  if (options.httpPlatform !== undefined) env.HTTP_PLATFORM = options.httpPlatform;
  if (electionTimeoutMs !== undefined) env.ELECTION_TIMEOUT_MS = String(electionTimeoutMs);
  return env;
}

function spawnNode(node: NodeSpec, env: Record<string, string>): SampleProcess {
  const child = new SampleProcess(node, env, {
    ...(options.profile.length ? { profileDir } : {}),
    ...(options.heapSnapshot ? { heapDir: profileDir } : {}),
    ...(options.nodeArgs.length ? { extraNodeArgs: options.nodeArgs } : {}),
  });
  children.add(child);
  void child.exited.then((how) => {
    children.delete(child);
    if (child.warningCount > 0) {
      nodeWarnings.push({ node: `node${node.id}`, pid: child.pid, count: child.warningCount, first: [...child.firstWarnings] });
      log(`  node ${node.id} (pid ${child.pid}) printed ${child.warningCount} process warning(s); the first: ${child.firstWarnings[0]?.split('\n').slice(0, 6).join(' | ')}`);
    }
    if (how !== 'SIGTERM' && how !== 'SIGKILL' && how !== 0) console.error(`node ${node.id} (pid ${child.pid}) exited with ${how}:\n${child.output}`);
  });
  return child;
}

const status = (n: NodeSpec) => getJson<ClusterView>(`${n.url}/cluster`, 2_000);

/** Waits until every node answers, exactly one is the leader, all agree on it and on the commit index. */
async function waitForStableLeader(nodes: readonly NodeSpec[], timeoutMs = 60_000): Promise<ClusterView> {
  return waitFor(
    'a leader known to all three nodes',
    async () => {
      const views = await Promise.all(nodes.map(status));
      const leaders = views.filter((v) => v.role === 'leader');
      if (leaders.length !== 1) return undefined;
      const leader = leaders[0]!;
      return views.every((v) => v.leaderId === leader.nodeId && v.term === leader.term && v.commitIndex === leader.commitIndex) ? leader : undefined;
    },
    timeoutMs,
    100,
  );
}

// ------------------------------------------------------------------------------------------------ measuring

interface Member {
  readonly spec: NodeSpec;
  /** A child process, or undefined for the node in this process. */
  process?: SampleProcess;
}

interface CpuSnapshot {
  readonly at: number;
  /** Busy CPU seconds of the whole machine. */
  readonly machine: number;
  readonly nodes: Map<number, number | undefined>;
  /** The PostgreSQL backends serving the benchmark's nodes, and the server's WAL writer, checkpointer and background writer. */
  readonly postgres: Map<number, number>;
  readonly self: number;
}

function cpuSnapshot(members: readonly Member[]): CpuSnapshot {
  return {
    at: performance.now(),
    machine: machineBusySeconds(),
    nodes: new Map(members.map((m) => [m.spec.id, m.process ? (m.process.running ? procCpuSeconds(m.process.pid) : undefined) : selfCpuSeconds()])),
    postgres: cpuByPid(pgPids),
    self: selfCpuSeconds(),
  };
}

function costs(members: readonly Member[], before: CpuSnapshot, after: CpuSnapshot, commands: number, leaderId: number): NodeCost[] {
  const per1k = (s: number) => (commands > 0 ? s / (commands / 1000) : NaN);
  const out: NodeCost[] = [];
  let selfIsNode = false;
  for (const m of members) {
    const a = before.nodes.get(m.spec.id);
    const b = after.nodes.get(m.spec.id);
    const mem = m.process ? (m.process.running ? procMemory(m.process.pid) : undefined) : procMemory('self');
    if (!m.process) selfIsNode = true;
    const role = `${m.spec.id === leaderId ? 'leader' : 'follower'}${m.process ? '' : ' (in-process, with the load generator)'}`;
    if (a === undefined || b === undefined) {
      out.push({ name: `node${m.spec.id}`, role: `${role} (not running throughout)`, cpuSeconds: NaN, cpuSecondsPer1k: NaN, ...(mem ? { peakRssMb: mem.peakRssMb, rssMb: mem.rssMb } : {}) });
      continue;
    }
    out.push({ name: `node${m.spec.id}`, role, cpuSeconds: b - a, cpuSecondsPer1k: per1k(b - a), ...(mem ? { peakRssMb: mem.peakRssMb, rssMb: mem.rssMb } : {}) });
  }
  const pgCpu = cpuDelta(before.postgres, after.postgres);
  out.push({ name: 'postgres', role: "the nodes' PostgreSQL backends, WAL writer, checkpointer, background writer", cpuSeconds: pgCpu, cpuSecondsPer1k: per1k(pgCpu) });
  if (!selfIsNode) {
    const mem = procMemory('self');
    out.push({ name: 'bench client', role: 'load generator (this process)', cpuSeconds: after.self - before.self, cpuSecondsPer1k: per1k(after.self - before.self), ...(mem ? { peakRssMb: mem.peakRssMb, rssMb: mem.rssMb } : {}) });
  }
  const ours = out.reduce((a, c) => a + (Number.isFinite(c.cpuSeconds) ? c.cpuSeconds : 0), 0);
  const other = Math.max(0, after.machine - before.machine - ours);
  out.push({ name: 'other processes', role: 'anything else running on the machine', cpuSeconds: other, cpuSecondsPer1k: per1k(other) });
  return out;
}

/** Cores kept busy by processes outside the benchmark during a scenario's window. */
function backgroundOf(s: ScenarioResult): number {
  const other = s.nodes.find((n) => n.name === 'other processes');
  return other && s.seconds > 0 ? other.cpuSeconds / s.seconds : 0;
}

/** Finds the nodes' PostgreSQL backends; with --wait-quiet S, waits (up to S seconds) until other processes use under 0.15 cores. */
async function beforeScenario(members: readonly Member[]): Promise<void> {
  await refreshPgPids();
  if (options.waitQuietSeconds <= 0) return;
  const deadline = Date.now() + options.waitQuietSeconds * 1000;
  const pids = [...members.flatMap((m) => (m.process?.running ? [m.process.pid] : [])), ...pgPids];
  for (let first = true; ; first = false) {
    const busy = await backgroundCores(pids, 1000);
    if (busy < 0.15) return;
    if (Date.now() >= deadline) return log(`  other processes keep ${fmt(busy, 2)} cores busy; going ahead anyway`);
    if (first) log(`  other processes keep ${fmt(busy, 2)} cores busy; waiting up to ${options.waitQuietSeconds} s for a quiet machine…`);
  }
}

async function record(s: ScenarioResult | Promise<ScenarioResult>): Promise<ScenarioResult> {
  const result = await s;
  scenarios.push(result);
  return result;
}

/**
 * Runs a timed scenario --repeat times and keeps the run that other processes disturbed least (on a
 * shared machine the quietest window is the closest to the truth); every attempt stays in the JSON.
 */
async function repeatBest(run: () => Promise<ScenarioResult>): Promise<ScenarioResult> {
  const attempts: ScenarioResult[] = [];
  for (let i = 0; i < Math.max(1, options.repeat); i++) {
    if (i > 0) log(`  (attempt ${i + 1} of ${options.repeat})`);
    attempts.push(await run());
  }
  const best = attempts.reduce((a, b) => (backgroundOf(b) < backgroundOf(a) ? b : a));
  if (attempts.length > 1) log(`  kept attempt ${attempts.indexOf(best) + 1} (other load ${fmt(backgroundOf(best), 2)} cores)`);
  return record(
    attempts.length > 1
      ? { ...best, attempts: attempts.map((a) => ({ throughput: a.throughput, p50Ms: a.latency?.p50Ms ?? NaN, p99Ms: a.latency?.p99Ms ?? NaN, backgroundCores: backgroundOf(a) })) }
      : best,
  );
}

function printScenario(s: ScenarioResult): void {
  const lat = s.latency ? `p50 ${fmt(s.latency.p50Ms)} ms, p99 ${fmt(s.latency.p99Ms)} ms, max ${fmt(s.latency.maxMs)} ms` : '';
  const cpu = s.nodes.map((n) => `${n.name} ${fmt(n.cpuSecondsPer1k, 3)}`).join(', ');
  const rss = s.nodes.filter((n) => n.peakRssMb !== undefined && n.name.startsWith('node')).map((n) => `${n.name} ${fmt(n.peakRssMb!, 0)}`).join(', ');
  log(`= ${s.name}: ${fmt(s.throughput, 0)} ${s.unit}${lat ? `, ${lat}` : ''}${s.errors ? `, ${s.errors} errors (${s.firstErrors[0]})` : ''}`);
  log(`  CPU s per 1k: ${cpu}; peak RSS MB: ${rss}${s.terms[0] !== s.terms[1] ? `; ELECTION during the run (term ${s.terms[0]}→${s.terms[1]})` : ''}`);
  const other = backgroundOf(s);
  if (other >= 0.1) log(`  WARNING: other processes kept ${fmt(other, 2)} cores busy during this window; the figures are skewed`);
}

// ------------------------------------------------------------------------------------------------ profiles

const profiles: BenchReport['profiles'] = [];
let selfSession: Session | undefined;
const post = <T>(method: string, params?: object) =>
  new Promise<T>((resolve, reject) => selfSession!.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T))));

function profileStart(scenario: string, members: readonly Member[]): void {
  if (!options.profile.includes(scenario)) return;
  for (const m of members) if (m.process?.running) m.process.child.kill('SIGWINCH');
  if (members.some((m) => !m.process)) {
    if (!selfSession) {
      selfSession = new Session();
      selfSession.connect();
    }
    void post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: 500 })).then(() => post('Profiler.start'));
  }
}

async function profileStop(scenario: string, members: readonly Member[], leaderId: number): Promise<void> {
  if (!options.profile.includes(scenario)) return;
  mkdirSync(profileDir, { recursive: true });
  const collected: { process: string; file: string; profile: CpuProfile }[] = [];
  for (const m of members) {
    if (!m.process?.running) continue;
    const written = join(profileDir, `node${m.spec.id}.cpuprofile`);
    const mtime = () => {
      try {
        return statSync(written).mtimeMs;
      } catch {
        return 0; // not there (yet)
      }
    };
    const mtimeBefore = mtime();
    m.process.child.kill('SIGWINCH');
    await waitFor(`node ${m.spec.id}'s profile`, () => (mtime() > mtimeBefore ? true : undefined), 30_000, 100);
    const file = join(profileDir, `${scenario}-node${m.spec.id}${m.spec.id === leaderId ? '-leader' : ''}.cpuprofile`);
    renameSync(written, file);
    collected.push({ process: `node${m.spec.id} (${m.spec.id === leaderId ? 'leader' : 'follower'}, process)`, file, profile: JSON.parse(readFileSync(file, 'utf8')) as CpuProfile });
  }
  if (members.some((m) => !m.process) && selfSession) {
    const { profile } = await post<{ profile: CpuProfile }>('Profiler.stop');
    const self = members.find((m) => !m.process)!;
    const file = join(profileDir, `${scenario}-node${self.spec.id}-inprocess${self.spec.id === leaderId ? '-leader' : ''}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    collected.push({ process: `node${self.spec.id} (${self.spec.id === leaderId ? 'leader' : 'follower'}, in-process with the load generator)`, file, profile });
  }
  for (const c of collected) {
    const summary: ProfileSummary = summarizeProfile(c.profile, 30);
    profiles.push({ scenario, process: c.process, file: relative(REPO_ROOT, c.file), summary });
    log(formatProfileSummary(`profile ${scenario} — ${c.process}`, { ...summary, functions: summary.functions.slice(0, 20) }));
  }
}

// ------------------------------------------------------------------------------------------------ scenarios

function toScenario(
  load: LoadResult,
  extra: { name: string; kind: ScenarioResult['kind']; description: string; unit: string; nodes: NodeCost[]; leaderId: number; terms: [number, number] },
): ScenarioResult {
  return {
    name: extra.name,
    kind: extra.kind,
    description: extra.description,
    concurrency: load.concurrency,
    seconds: load.seconds,
    completed: load.completed,
    errors: load.errors,
    firstErrors: load.firstErrors,
    throughput: load.throughput,
    unit: extra.unit,
    latency: load.latency,
    latencyByTag: load.latencyByTag,
    nodes: extra.nodes,
    leaderId: extra.leaderId,
    terms: extra.terms,
  };
}

/** A closed-loop HTTP client: PUT /kv/:key with a keep-alive agent per node. */
function httpPut(agent: http.Agent, node: NodeSpec, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: node.host,
        port: node.port,
        method: 'PUT',
        path: `/kv/${key}`,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': httpBody.length },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT via node ${node.id}: ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`))));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`PUT via node ${node.id}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(httpBody);
  });
}

const scenarios: ScenarioResult[] = [];
let nestRoundTrip: FloorResult['nestRoundTrip'];
const peakRss: BenchReport['peakRss'] = [];

async function phaseHttp(): Promise<void> {
  const clusterId = `bench-http-${runId}`;
  clusterIds.push(clusterId);
  const nodes = await planNodes();
  log(`\n# phase 1: HTTP — 3 processes (cluster ${clusterId}) at ${nodes.map((n) => n.url).join(', ')}`);
  const members: Member[] = nodes.map((spec) => ({ spec, process: spawnNode(spec, envFor(spec, nodes, clusterId, options.electionTimeoutMs)) }));
  let leader = await waitForStableLeader(nodes);
  log(`  leader: node ${leader.nodeId} (term ${leader.term}); pids ${members.map((m) => `n${m.spec.id}=${m.process!.pid}`).join(' ')}`);
  const startRss = new Map(members.map((m) => [m.spec.id, procMemory(m.process!.pid)?.rssMb]));
  if (options.only.includes('floor')) {
    nestRoundTrip = await measureGetRoundTrip(`${nodes.find((n) => n.id === leader.nodeId)!.url}/cluster`, quick ? 1 : 2);
    log(`  floor, for comparison: keep-alive GET /cluster on the idle leader p50 ${fmt(nestRoundTrip.p50Ms, 3)} ms`);
  }

  const agents = nodes.map(() => new http.Agent({ keepAlive: true, maxSockets: Infinity }));
  const op = (worker: number, seq: number) => {
    const target = (worker + seq) % nodes.length; // every client goes round all nodes: 1/3 direct, 2/3 forwarded
    const key = `k${(worker * 7919 + seq) % options.keys}`;
    return httpPut(agents[target]!, nodes[target]!, key).then(() => (nodes[target]!.id === leader.nodeId ? 'leader' : 'follower'));
  };
  log(`  warm-up: 64 clients for ${options.warmupSeconds * 2} s`);
  await runClosedLoop({ label: 'warm-up', concurrency: 64, warmupMs: 0, measureMs: options.warmupSeconds * 2000, op, progress: false });

  for (const clients of options.clients) await repeatBest(() => httpOnce(clients));
  async function httpOnce(clients: number): Promise<ScenarioResult> {
    const name = `http${clients}`;
    await beforeScenario(members);
    leader = await waitForStableLeader(nodes, 30_000);
    let before: CpuSnapshot | undefined;
    let after: CpuSnapshot | undefined;
    const load = await runClosedLoop({
      label: name,
      concurrency: clients,
      warmupMs: options.warmupSeconds * 1000,
      measureMs: options.seconds * 1000,
      op,
      progress: true,
      unit: 'w/s',
      onWindowStart: () => {
        before = cpuSnapshot(members);
        profileStart(name, members);
      },
      onWindowEnd: () => (after = cpuSnapshot(members)),
    });
    await profileStop(name, members, leader.nodeId);
    const end = await waitForStableLeader(nodes, 30_000);
    const s = toScenario(load, {
      name,
      kind: 'http',
      description: `PUT /kv/:key over HTTP, ${clients} client${clients === 1 ? '' : 's'}, all nodes`,
      unit: 'w/s',
      nodes: costs(members, before!, after!, load.completed, leader.nodeId),
      leaderId: leader.nodeId,
      terms: [leader.term, end.term],
    });
    printScenario(s);
    return s;
  }
  for (const a of agents) a.destroy();
  const final = await Promise.all(nodes.map(status));
  for (const m of members) {
    const mem = procMemory(m.process!.pid);
    const startRssMb = startRss.get(m.spec.id);
    const stored = await storedLog(clusterId, m.spec.id).catch(() => undefined);
    if (mem) peakRss.push({ node: `node${m.spec.id}`, phase: 'HTTP (processes)', ...(startRssMb !== undefined ? { startRssMb } : {}), ...mem, logEntries: final.find((v) => v.nodeId === m.spec.id)?.commitIndex ?? 0, ...(stored ? { stored } : {}) });
  }
  await Promise.all(members.map((m) => m.process!.stop()));
}

type ObservedEvent =
  | { type: 'rpc'; rpc: string; to?: number; ms: number; ok: boolean }
  | { type: 'persist'; entries: number; ms: number }
  | { type: 'append'; entries: number; bytes: number }
  | { type: 'snapshot'; kind: 'taken' | 'installed' | 'sent'; index: number; bytes: number; ms: number; to?: number };

/**
 * Records each time the in-process node stops leading (RaftNode.leader$), with how long before that
 * each follower last answered an RPC (RaftNode.events$): a gap of an election timeout or more means
 * the leader stepped down by CheckQuorum rather than because a follower won an election.
 */
function watchLeadership(raft: { term: number; commitIndex: number; isLeader(): boolean }, scenarioName: () => string, snapshotEvents: readonly SnapshotEvent[]): void {
  const node = (raft as { node?: { events$?: { subscribe(next: (e: ObservedEvent) => void): unknown } } }).node;
  if (!node?.events$) return;
  const lastAnswer = new Map<number, number>();
  node.events$.subscribe((e) => {
    if (e.type === 'rpc' && e.ok && e.to !== undefined) lastAnswer.set(e.to, performance.now());
  });
  // Polled (not leader$, which the node emits only when its pump gets to it): the moment the engine's role changes.
  let leading = false;
  let leadingTerm = 0;
  const timer = setInterval(() => {
    const now = raft.isLeader();
    if (now) {
      leading = true;
      leadingTerm = raft.term;
      return;
    }
    if (!leading) return;
    leading = false;
    if (scenarioName() === 'shutdown') return; // it hands leadership over as it stops
    const at = performance.now();
    const gaps = [...lastAnswer].sort((a, b) => a[0] - b[0]).map(([to, t]) => ({ node: to, lastAnswerMsAgo: Math.round(at - t) }));
    // The leader's own snapshot nearest to this moment (the followers take theirs at about the same index).
    const taken = snapshotEvents.filter((e) => e.kind === 'taken');
    const nearest = taken.reduce<SnapshotEvent | undefined>((best, e) => (!best || Math.abs(e.at - at) < Math.abs(best.at - at) ? e : best), undefined);
    const nearestLeaderSnapshot = nearest ? { index: nearest.index, durationMs: Math.round(nearest.ms), endedMsAfterLoss: Math.round(nearest.at - at) } : undefined;
    const change = {
      at: (at - t0) / 1000,
      during: scenarioName(),
      term: raft.term,
      leaderTerm: leadingTerm,
      commitIndex: raft.commitIndex,
      newLeader: (raft as unknown as { leaderId: number }).leaderId ?? 0,
      followers: gaps,
      ...(nearestLeaderSnapshot ? { nearestLeaderSnapshot } : {}),
    };
    leadershipLosses.push(change);
    log(
      `  !! node 1 stopped leading during ${change.during} at commit ${change.commitIndex} (it led in term ${leadingTerm}; now term ${change.term}${change.term === leadingTerm ? ': same term, so it stepped down itself (CheckQuorum)' : ': a higher term reached it'}); followers last answered ${gaps.map((g) => `n${g.node} ${g.lastAnswerMsAgo} ms`).join(', ')} before${nearestLeaderSnapshot ? `; its own nearest snapshot: at ${nearestLeaderSnapshot.index}, ${nearestLeaderSnapshot.durationMs} ms long, ended ${nearestLeaderSnapshot.endedMsAfterLoss} ms after this` : ''}`,
    );
  }, 5);
  timer.unref();
}

/** The in-process leader's snapshot events over the whole phase (taken, sent to whom), with when they came (performance.now()). */
type SnapshotEvent = Extract<ObservedEvent, { type: 'snapshot' }> & { at: number };

/**
 * Counts the in-process leader's storage batches and AppendEntries through `RaftNode.events$` (when
 * the library has it): how well group commit and batching work at each load.
 */
function watchPipeline(raft: unknown, snapshotEvents: SnapshotEvent[]): { reset(): void; read(): PipelineStats } | undefined {
  const events = (raft as { node?: { events$?: { subscribe(next: (e: ObservedEvent) => void): unknown } } }).node?.events$;
  if (!events) return undefined;
  let snapshotMs: number[] = [];
  let snapshotBytes: number | undefined;
  // This process's event loop (the leader and the load generator share it): a stall delays heartbeats.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let persistMs: number[] = [];
  let persistEntries = 0;
  let appends = 0;
  let heartbeats = 0;
  let appendEntries = 0;
  let rpcMs: number[] = [];
  events.subscribe((e) => {
    if (e.type === 'persist') {
      persistMs.push(e.ms);
      persistEntries += e.entries;
    } else if (e.type === 'append') {
      appends++;
      if (e.entries === 0) heartbeats++;
      appendEntries += e.entries;
    } else if (e.type === 'rpc' && e.ok && /append/i.test(e.rpc)) {
      rpcMs.push(e.ms);
    } else if (e.type === 'snapshot') {
      snapshotEvents.push({ ...e, at: performance.now() });
      if (e.kind === 'taken') {
        snapshotMs.push(e.ms);
        snapshotBytes = e.bytes;
      }
    }
  });
  return {
    reset() {
      persistMs = [];
      rpcMs = [];
      snapshotMs = [];
      snapshotBytes = undefined;
      loopDelay.reset();
      persistEntries = appends = heartbeats = appendEntries = 0;
    },
    /** The window's figures; appendsPerCommand is left 0 for the caller, who knows the count. */
    read(): PipelineStats {
      const p = summarize(persistMs);
      const r = summarize(rpcMs);
      const sn = summarize(snapshotMs);
      return {
        eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
        eventLoopDelayMaxMs: loopDelay.max / 1e6,
        snapshotsTaken: snapshotMs.length,
        ...(snapshotMs.length ? { snapshotP50Ms: sn.p50Ms, snapshotMaxMs: sn.maxMs } : {}),
        ...(snapshotBytes !== undefined ? { snapshotBytes } : {}),
        persistBatches: persistMs.length,
        entriesPerPersist: persistEntries / Math.max(1, persistMs.length),
        persistP50Ms: p.p50Ms,
        persistP99Ms: p.p99Ms,
        appendEntries: appends,
        heartbeats,
        entriesPerAppend: appendEntries / Math.max(1, appends - heartbeats),
        appendsPerCommand: 0,
        appendRpcP50Ms: r.p50Ms,
        appendRpcP99Ms: r.p99Ms,
      };
    },
  };
}

interface Dist {
  AppModule: typeof import('../../sample/src/app.module.js').AppModule;
  loadConfig: typeof import('../../sample/src/config.js').loadConfig;
  RaftService: typeof import('../../lib/index.js').RaftService;
  RaftExceptionFilter: typeof import('../../lib/index.js').RaftExceptionFilter;
  TypeOrmStorage: typeof import('../../lib/index.js').TypeOrmStorage;
}

/** The compiled sample and library — the same code the node processes run. */
async function loadDist(): Promise<Dist> {
  const at = (p: string) => pathToFileURL(join(REPO_ROOT, 'dist', p)).href;
  const app = (await import(at('sample/src/app.module.js'))) as typeof import('../../sample/src/app.module.js');
  const config = (await import(at('sample/src/config.js'))) as typeof import('../../sample/src/config.js');
  const lib = (await import(at('lib/index.js'))) as typeof import('../../lib/index.js');
  return { AppModule: app.AppModule, loadConfig: config.loadConfig, RaftService: lib.RaftService, RaftExceptionFilter: lib.RaftExceptionFilter, TypeOrmStorage: lib.TypeOrmStorage };
}

const rejoins: RejoinResult[] = [];
/** Each time the in-process node stopped leading (see watchLeadership). */
const leadershipLosses: NonNullable<BenchReport['leadershipLosses']> = [];
let currentScenario = 'start-up';
/** Process warnings the node processes printed (with --trace-warnings stacks). */
const nodeWarnings: NonNullable<BenchReport['nodeWarnings']> = [];
/** Follower processes restarted because one of them had taken the leadership from the in-process node. */
const leadershipRestarts: string[] = [];

/** The in-process node's status, with the compaction fields read defensively (an older library has none). */
function leaderStatus(raft: { status(): unknown }): { snapshotIndex?: number; logStartIndex?: number; lastIndex?: number; appliedIndex?: number } {
  return raft.status() as { snapshotIndex?: number; logStartIndex?: number; lastIndex?: number; appliedIndex?: number };
}

/**
 * Follows a node (GET /cluster every 10 ms) until its commitIndex reaches `index`, then makes sure it
 * has applied that far: with its status's appliedIndex where the sample shows it, otherwise with a
 * linearizable read on it (GET /kv/k0 — ReadIndex: it answers once the node has applied everything
 * the leader had committed when it asked, which is at least `index`). Progress every second.
 */
async function waitApplied(
  spec: NodeSpec,
  index: number,
  label: string,
  since: number,
  timeoutMs = 600_000,
): Promise<{ commitAt: number; appliedAt: number; appliedBy: RejoinResult['appliedBy'] }> {
  let commitAt: number | undefined;
  let lastLog = performance.now();
  const view = await waitFor(
    `node ${spec.id} to reach ${index}`,
    async () => {
      const v = await status(spec);
      const now = performance.now();
      if (commitAt === undefined && v.commitIndex >= index) commitAt = now;
      if (now - lastLog >= 1000) {
        lastLog = now;
        log(`  [${label}] ${fmt((now - since) / 1000, 1)} s: commitIndex ${v.commitIndex}${v.appliedIndex !== undefined ? `, applied ${v.appliedIndex}` : ''} / ${index}`);
      }
      return (v.appliedIndex ?? v.commitIndex) >= index ? v : undefined;
    },
    timeoutMs,
    10,
  );
  const reachedAt = performance.now();
  commitAt ??= reachedAt;
  if (view.appliedIndex !== undefined) return { commitAt, appliedAt: reachedAt, appliedBy: 'appliedIndex' };
  await waitFor(
    `a linearizable read on node ${spec.id}`,
    async () => {
      const code = await getStatusCode(`${spec.url}/kv/k0`, 60_000);
      return code === 200 || code === 404 ? code : undefined;
    },
    120_000,
    10,
  );
  return { commitAt, appliedAt: performance.now(), appliedBy: 'linearizable read' };
}

/**
 * Whether a node got the leader's snapshot since it was spawned: its log line "installed the
 * leader's snapshot at N (B bytes)", and the leader's `snapshot sent` events to it.
 */
function snapshotInstall(proc: SampleProcess, spawnedAt: number, events: readonly SnapshotEvent[], to: number): InstalledSnapshot | undefined {
  const line = proc.findLine(/installed the leader's snapshot at (\d+) \((\d+) bytes\)/);
  const sent = events.filter((e) => e.kind === 'sent' && e.to === to && e.at >= spawnedAt);
  const last = sent[sent.length - 1];
  if (!line && !last) return undefined;
  return {
    index: line ? Number(line.match[1]) : last!.index,
    bytes: line ? Number(line.match[2]) : last!.bytes,
    ...(line ? { installedAfterSeconds: (line.line.at - spawnedAt) / 1000 } : {}),
    ...(last ? { sendMs: last.ms, sends: sent.length } : {}),
  };
}

/** Memory readings of --heap-snapshot, summarized at the end (parsing a snapshot takes memory and time). */
const heapReadings: { node: string; when: string; rssMb?: number; file: string; memoryFile?: string; smaps?: SmapsSummary }[] = [];

/**
 * --heap-snapshot: asks every node process (SIGTTIN, see profile-hook.mjs) and this process for
 * their memory figures and a heap snapshot; they are summarized once the run is over.
 */
async function takeHeapSnapshots(members: readonly Member[], when: string): Promise<void> {
  mkdirSync(profileDir, { recursive: true });
  for (const m of members) {
    const rssMb = m.process ? (m.process.running ? procMemory(m.process.pid)?.rssMb : undefined) : procMemory('self')?.rssMb;
    const smaps = m.process ? (m.process.running ? smapsSummary(m.process.pid) : undefined) : smapsSummary('self');
    const file = join(profileDir, `after-${runId}-node${m.spec.id}.heapsnapshot`);
    if (!m.process) {
      const memoryFile = join(profileDir, `after-${runId}-node${m.spec.id}.memory.json`);
      const before = { memoryUsage: process.memoryUsage(), heap: v8.getHeapStatistics() };
      v8.writeHeapSnapshot(file);
      writeFileSync(memoryFile, JSON.stringify({ before, afterSnapshot: { memoryUsage: process.memoryUsage(), heap: v8.getHeapStatistics() } }, null, 1));
      heapReadings.push({ node: `node${m.spec.id} (in-process, with the load generator)`, when, ...(rssMb !== undefined ? { rssMb } : {}), file, memoryFile, ...(smaps ? { smaps } : {}) });
      continue;
    }
    if (!m.process.running) continue;
    const written = join(profileDir, `node${m.spec.id}.memory.json`);
    const mtime = () => {
      try {
        return statSync(written).mtimeMs;
      } catch {
        return 0;
      }
    };
    const before = mtime();
    m.process.child.kill('SIGTTIN');
    await waitFor(`node ${m.spec.id}'s heap snapshot`, () => (mtime() > before ? true : undefined), 120_000, 100);
    const memoryFile = join(profileDir, `after-${runId}-node${m.spec.id}.memory.json`);
    renameSync(written, memoryFile);
    renameSync(join(profileDir, `node${m.spec.id}.heapsnapshot`), file);
    heapReadings.push({ node: `node${m.spec.id}`, when, ...(rssMb !== undefined ? { rssMb } : {}), file, memoryFile, ...(smaps ? { smaps } : {}) });
    log(`  node ${m.spec.id}: heap snapshot written (${relative(REPO_ROOT, file)})`);
  }
}

/** Summaries of the --heap-snapshot readings, logged and put in the report. */
function summarizeHeapReadings(): NonNullable<BenchReport['heapReadings']> {
  const out: NonNullable<BenchReport['heapReadings']> = [];
  for (const h of heapReadings) {
    const mb = (b: number) => b / 2 ** 20;
    const mem = h.memoryFile
      ? (JSON.parse(readFileSync(h.memoryFile, 'utf8')) as { before: { memoryUsage: NodeJS.MemoryUsage }; afterSnapshot: { memoryUsage: NodeJS.MemoryUsage } })
      : undefined;
    const summary = summarizeHeapSnapshot(h.file, 15);
    const b = mem?.before.memoryUsage;
    const a = mem?.afterSnapshot.memoryUsage;
    const reading = {
      node: h.node,
      when: h.when,
      file: relative(REPO_ROOT, h.file),
      ...(h.rssMb !== undefined ? { rssMb: h.rssMb } : {}),
      ...(b ? { before: { rssMb: mb(b.rss), heapTotalMb: mb(b.heapTotal), heapUsedMb: mb(b.heapUsed), externalMb: mb(b.external), arrayBuffersMb: mb(b.arrayBuffers) } } : {}),
      ...(a ? { afterGc: { rssMb: mb(a.rss), heapTotalMb: mb(a.heapTotal), heapUsedMb: mb(a.heapUsed), externalMb: mb(a.external), arrayBuffersMb: mb(a.arrayBuffers) } } : {}),
      liveHeapMb: summary.totalMb,
      top: summary.top,
      ...(h.smaps ? { smaps: h.smaps } : {}),
    };
    out.push(reading);
    if (h.smaps) {
      log(
        `  resident memory by mapping (before the snapshot): ${Object.entries(h.smaps.byKind)
          .sort((x, y) => y[1] - x[1])
          .map(([k, v]) => `${k} ${fmt(v, 0)} MB`)
          .join(', ')}; largest: ${h.smaps.largest.map((m) => `${m.mapping} ${fmt(m.rssMb, 0)}/${fmt(m.sizeMb, 0)} MB`).join(', ')}`,
      );
    }
    log(
      `${formatHeapSummary(`heap ${h.node} after ${h.when}`, summary)}
  memoryUsage before: ${b ? `rss ${fmt(mb(b.rss), 0)} MB, heapTotal ${fmt(mb(b.heapTotal), 0)}, heapUsed ${fmt(mb(b.heapUsed), 0)}, external ${fmt(mb(b.external), 0)}, arrayBuffers ${fmt(mb(b.arrayBuffers), 0)}` : '?'}; after the snapshot's GC: ${a ? `rss ${fmt(mb(a.rss), 0)} MB, heapTotal ${fmt(mb(a.heapTotal), 0)}, heapUsed ${fmt(mb(a.heapUsed), 0)}` : '?'}`,
    );
  }
  return out;
}

/** The start-up steps a node's output shows, seconds after it was spawned. */
function startupTimeline(proc: SampleProcess): StartupTimeline {
  const sec = (pattern: RegExp) => {
    const found = proc.findLine(pattern);
    return found ? (found.line.at - proc.spawnedAt) / 1000 : undefined;
  };
  const firstOutput = proc.earlyLines[0] ? (proc.earlyLines[0].at - proc.spawnedAt) / 1000 : undefined;
  const restoredOwnSnapshot = sec(/restored the state machine from the snapshot/);
  const rpcListening = sec(/Raft RPCs listening on/);
  const apiListening = sec(/node \d+ listening on/);
  return {
    ...(firstOutput !== undefined ? { firstOutput } : {}),
    ...(restoredOwnSnapshot !== undefined ? { restoredOwnSnapshot } : {}),
    ...(rpcListening !== undefined ? { rpcListening } : {}),
    ...(apiListening !== undefined ? { apiListening } : {}),
  };
}

const describeStartup = (t: StartupTimeline) =>
  `first line ${fmt(t.firstOutput ?? NaN, 2)} s, own snapshot restored ${fmt(t.restoredOwnSnapshot ?? NaN, 2)} s, RPC listener ${fmt(t.rpcListening ?? NaN, 2)} s, API ${fmt(t.apiListening ?? NaN, 2)} s`;

/** The index of its own snapshot a node restored as it started (its log line), if any. */
function ownSnapshotRestored(proc: SampleProcess): number | undefined {
  const found = proc.findLine(/restored the state machine from the snapshot at (\d+)/);
  return found ? Number(found.match[1]) : undefined;
}

async function phaseInProcess(): Promise<void> {
  const runInproc = options.only.includes('inproc');
  const runCatchUp = options.only.includes('catchup');
  const runRss = options.only.includes('rss') && options.rssCommands > 0;
  const runRestart = options.only.includes('restart');
  const runJoin = options.only.includes('join');
  if (!runInproc && !runCatchUp && !runRss && !runRestart && !runJoin) return;
  const clusterId = `bench-inproc-${runId}`;
  clusterIds.push(clusterId);
  const nodes = await planNodes();
  log(`\n# phase 2: in-process leader — node 1 in this process, nodes 2 and 3 as processes (cluster ${clusterId})`);
  const dist = await loadDist();
  const { NestFactory } = await import('@nestjs/core');
  resetPeakRss('self'); // phase 1's load generator is not the in-process node's memory

  // Node 1 starts first, alone; 2 and 3 join with a longer election timeout, so node 1 wins the first election.
  const config = dist.loadConfig(envFor(nodes[0]!, nodes, clusterId, options.electionTimeoutMs));
  const app = await NestFactory.create(dist.AppModule.forNode(config), { logger: ['error', 'warn'] });
  app.useGlobalFilters(new dist.RaftExceptionFilter());
  await app.listen(config.port, config.host);
  inProcessApp = app;
  const raft = app.get(dist.RaftService);
  const followerEnv = (spec: NodeSpec) => envFor(spec, nodes, clusterId, options.followerElectionTimeoutMs);
  const members: Member[] = [{ spec: nodes[0]! }, ...nodes.slice(1).map((spec) => ({ spec, process: spawnNode(spec, followerEnv(spec)) }))];

  let leader = await waitForStableLeader(nodes);
  for (let attempt = 1; leader.nodeId !== 1; attempt++) {
    if (attempt > 8) throw new Error('the in-process node did not become the leader after 8 restarts of the others');
    const m = members.find((x) => x.spec.id === leader.nodeId)!;
    log(`  node ${leader.nodeId} won the election; restarting it so that node 1 leads (attempt ${attempt})`);
    m.process!.kill();
    await m.process!.exited;
    await waitFor('node 1 to lead', () => (raft.isLeader() ? true : undefined), 30_000, 20);
    m.process = spawnNode(m.spec, followerEnv(m.spec));
    leader = await waitForStableLeader(nodes);
  }
  log(`  leader: node 1, in this process (pid ${process.pid}, term ${leader.term}); followers ${members.slice(1).map((m) => `n${m.spec.id}=${m.process!.pid}`).join(' ')}`);
  const startRss = new Map(members.map((m) => [m.spec.id, procMemory(m.process ? m.process.pid : 'self')?.rssMb]));

  const op = (worker: number, seq: number) => raft.command(JSON.stringify({ op: 'put', key: `k${(worker * 7919 + seq) % options.keys}`, value }));
  const snapshotEvents: SnapshotEvent[] = [];
  const pipeline = watchPipeline(raft, snapshotEvents);
  watchLeadership(raft, () => currentScenario, snapshotEvents);
  /**
   * On a loaded machine a follower may win an election meanwhile: wait a little for node 1 to lead
   * again, else restart the leading process (SIGKILL) as at the start, so that node 1 (shorter election
   * timeout) wins. A process restarted so is marked in the memory table.
   */
  const regainLeadership = async (before: string) => {
    if (raft.isLeader()) return;
    log(`  node 1 no longer leads (term ${raft.term}) before ${before}; waiting up to 5 s for it to lead again`);
    if (await waitFor('node 1 to lead again', () => (raft.isLeader() ? true : undefined), 5_000, 20).catch(() => undefined)) return;
    for (let attempt = 1; ; attempt++) {
      const now = await waitForStableLeader(nodes);
      if (now.nodeId === 1) break;
      if (attempt > 8) throw new Error('the in-process node did not become the leader again after 8 restarts of the others');
      const m = members.find((x) => x.spec.id === now.nodeId)!;
      log(`  node ${now.nodeId} leads (term ${now.term}); restarting it so that node 1 leads (attempt ${attempt})`);
      m.process!.kill();
      await m.process!.exited;
      await waitFor('node 1 to lead', () => (raft.isLeader() ? true : undefined), 30_000, 20).catch(() => undefined);
      m.process = spawnNode(m.spec, followerEnv(m.spec));
      restartedForLeadership.add(m.spec.id);
      leadershipRestarts.push(`node ${m.spec.id} before ${before} (term ${now.term})`);
    }
    await waitForStableLeader(nodes);
  };
  const restartedForLeadership = new Set<number>();
  const inprocScenario = async (name: string, inflight: number, description: string, load: () => Promise<LoadResult>) => {
    await regainLeadership(name);
    currentScenario = name;
    await beforeScenario(members);
    let before: CpuSnapshot | undefined;
    let after: CpuSnapshot | undefined;
    const termStart = raft.term;
    let stats: PipelineStats | undefined;
    hooks.start = () => {
      before = cpuSnapshot(members);
      pipeline?.reset();
      profileStart(name, members);
    };
    hooks.end = () => {
      after = cpuSnapshot(members);
      stats = pipeline?.read();
    };
    const result = await load();
    if (stats) stats = { ...stats, appendsPerCommand: stats.appendEntries / Math.max(1, result.completed) };
    await profileStop(name, members, 1);
    const s: ScenarioResult = {
      ...toScenario(result, { name, kind: inflight ? 'inproc' : 'write', description, unit: 'cmd/s', nodes: costs(members, before!, after!, result.completed, raft.leaderId), leaderId: raft.leaderId, terms: [termStart, raft.term] }),
      ...(stats ? { pipeline: stats } : {}),
    };
    printScenario(s);
    return s;
  };
  const hooks: { start?: () => void; end?: () => void } = {};
  const windowHooks = { onWindowStart: () => hooks.start?.(), onWindowEnd: () => hooks.end?.() };

  if (runInproc) {
    log(`  warm-up: 64 in flight for ${options.warmupSeconds * 2} s`);
    await runClosedLoop({ label: 'warm-up', concurrency: 64, warmupMs: 0, measureMs: options.warmupSeconds * 2000, op });
    for (const inflight of options.inflight) {
      const name = `inproc${inflight}`;
      await repeatBest(() =>
        inprocScenario(name, inflight, `RaftService.command() on the leader, ${inflight} in flight`, () =>
          runClosedLoop({ label: name, concurrency: inflight, warmupMs: options.warmupSeconds * 1000, measureMs: options.seconds * 1000, op, progress: true, unit: 'cmd/s', ...windowHooks }),
        ),
      );
    }
  }

  if (runCatchUp) {
    const follower = members[2]!;
    log(`\n# phase 3: catch-up — stopping node ${follower.spec.id}, writing ${options.entries.toLocaleString('en')} entries, restarting it`);
    await regainLeadership('the catch-up');
    const beforeStop = await waitForStableLeader(nodes); // the follower holds everything committed so far
    await follower.process!.stop();
    const inflight = 1024;
    const writes = await record(inprocScenario('write-1-down', inflight, `${options.entries.toLocaleString('en')} command() writes, 1,024 in flight, node ${follower.spec.id} down`, () =>
      runClosedLoop({ label: 'catch-up writes', concurrency: inflight, warmupMs: 0, total: options.entries, op, progress: true, unit: 'cmd/s', ...windowHooks }),
    ));
    if (writes.errors) log(`  ${writes.errors} writes failed: ${writes.firstErrors.join('; ')}`);
    const leaderCommit = raft.commitIndex;
    const termStart = raft.term;
    const leaderLogStart = leaderStatus(raft).logStartIndex;
    currentScenario = 'catchup';
    const spawnedAt = performance.now();
    follower.process = spawnNode(follower.spec, followerEnv(follower.spec));
    let before: CpuSnapshot | undefined;
    const first = await waitFor(
      `node ${follower.spec.id} to answer after its restart`,
      async () => {
        const v = await status(follower.spec);
        await refreshPgPids(); // the restarted node's new backend
        before = cpuSnapshot(members);
        return v;
      },
      300_000,
      10,
    );
    profileStart('catchup', members);
    const upAt = before!.at;
    log(
      `  node ${follower.spec.id} answers ${fmt((upAt - spawnedAt) / 1000, 2)} s after the restart (commitIndex ${first.commitIndex}); it held ${beforeStop.commitIndex} entries, the leader has ${leaderCommit} (its log starts at ${leaderLogStart ?? '?'})`,
    );
    const reached = await waitApplied(follower.spec, leaderCommit, 'catchup', upAt);
    const after = cpuSnapshot(members);
    const installed = snapshotInstall(follower.process, spawnedAt, snapshotEvents, follower.spec.id);
    const restoredOwn = ownSnapshotRestored(follower.process);
    const startup = startupTimeline(follower.process);
    log(`  node ${follower.spec.id} start-up: ${describeStartup(startup)}`);
    await profileStop('catchup', members, 1);
    // What it lacked: everything written while it was down (its commitIndex right after a restart
    // says nothing about its log: commitIndex is volatile, and it learns it from the leader).
    const entries = leaderCommit - beforeStop.commitIndex;
    const catchUpSeconds = (reached.commitAt - upAt) / 1000;
    const appliedSeconds = (reached.appliedAt - upAt) / 1000;
    log(
      `  node ${follower.spec.id} came back ${installed ? `through InstallSnapshot (the leader's snapshot at ${installed.index}, ${mb(installed.bytes)})` : 'through entries only'}${restoredOwn !== undefined ? `, after restoring its own snapshot at ${restoredOwn}` : ''}; commit reached in ${fmt(catchUpSeconds, 2)} s, applied (${reached.appliedBy}) in ${fmt(appliedSeconds, 2)} s`,
    );
    const s: ScenarioResult = {
      name: 'catchup',
      kind: 'catchup',
      description: `a restarted follower catching up ${entries.toLocaleString('en')} entries`,
      concurrency: 0,
      seconds: appliedSeconds,
      completed: entries,
      errors: 0,
      firstErrors: [],
      throughput: entries / appliedSeconds,
      unit: 'entries/s',
      nodes: costs(members, before!, after, entries, 1),
      leaderId: raft.leaderId,
      terms: [termStart, raft.term],
      catchUp: {
        entries,
        followerCommitBeforeStop: beforeStop.commitIndex,
        followerCommitAtRestart: first.commitIndex,
        leaderCommit,
        startupSeconds: (upAt - spawnedAt) / 1000,
        catchUpSeconds,
        entriesPerSecond: entries / catchUpSeconds,
        entriesPerSecondFromSpawn: entries / ((reached.appliedAt - spawnedAt) / 1000),
        appliedSeconds,
        entriesPerSecondApplied: entries / appliedSeconds,
        via: installed ? 'InstallSnapshot' : 'entries',
        ...(installed ? { installed } : {}),
        ...(restoredOwn !== undefined ? { restoredOwnSnapshotAt: restoredOwn } : {}),
        ...(leaderLogStart !== undefined ? { leaderLogStartIndex: leaderLogStart } : {}),
        startup,
      },
    };
    scenarios.push(s);
    printScenario(s);
  }

  if (runRss) {
    const remaining = options.rssCommands - raft.commitIndex;
    if (remaining > 0) {
      log(`\n# phase 4: memory — writing ${remaining.toLocaleString('en')} more commands (1,024 in flight) until the log holds ${options.rssCommands.toLocaleString('en')}`);
      await record(inprocScenario('write-to-1M', 1024, `command() writes, 1,024 in flight, until the log holds ${options.rssCommands.toLocaleString('en')}`, () =>
        runClosedLoop({ label: 'fill', concurrency: 1024, warmupMs: 0, total: remaining, op, progress: true, unit: 'cmd/s', ...windowHooks }),
      ));
    }
  }

  currentScenario = 'the end of the writes';
  // Every node has applied all there is (so its own snapshots are taken), then each one's memory and stored log.
  await waitForStableLeader(nodes, 60_000).catch(() => undefined);
  const settledAt = performance.now();
  for (const m of members.filter((x) => x.process?.running)) await waitApplied(m.spec, raft.commitIndex, `settle n${m.spec.id}`, settledAt, 120_000).catch(() => undefined);
  await sleep(500); // a snapshot the last apply triggered is saved
  const written = raft.commitIndex;
  const final = await Promise.all(nodes.map((n) => status(n).catch(() => undefined)));
  const label = `${written.toLocaleString('en')} commands`;
  log(`\n# after ${label}: peak RSS and stored log per node`);
  for (const m of members) {
    const mem = m.process ? (m.process.running ? procMemory(m.process.pid) : undefined) : procMemory('self');
    const entries = final.find((v) => v?.nodeId === m.spec.id)?.commitIndex ?? 0;
    const phase = m.process
      ? `in-process leader cluster, after ${label}${m === members[2] && runCatchUp ? ' (restarted for catch-up)' : ''}${restartedForLeadership.has(m.spec.id) ? ' (restarted so that node 1 leads again)' : ''}`
      : `in-process leader (this process, with the load generator), after ${label}`;
    const startRssMb = (m === members[2] && runCatchUp) || restartedForLeadership.has(m.spec.id) ? undefined : startRss.get(m.spec.id);
    const stored = await storedLog(clusterId, m.spec.id).catch(() => undefined);
    const inMemory = m.process ? '' : (() => {
      const st = leaderStatus(raft);
      return `; status: snapshotIndex ${st.snapshotIndex ?? '?'}, logStartIndex ${st.logStartIndex ?? '?'}, lastIndex ${st.lastIndex ?? '?'}`;
    })();
    log(`  node ${m.spec.id}: peak RSS ${mem ? fmt(mem.peakRssMb, 0) : '?'} MB (now ${mem ? fmt(mem.rssMb, 0) : '?'} MB); commit ${entries}; ${stored ? describeStored(stored) : 'stored log unreadable'}${inMemory}`);
    if (mem) peakRss.push({ node: `node${m.spec.id}`, phase, ...(startRssMb !== undefined ? { startRssMb } : {}), ...mem, logEntries: entries, ...(stored ? { stored } : {}) });
  }

  if (options.heapSnapshot) {
    currentScenario = 'heap snapshots (writing one stops the node for seconds)';
    await takeHeapSnapshots([...members.filter((m) => m.process), ...members.filter((m) => !m.process)], label); // this process (the leader) last
  }

  const rejoinRow = async (j: RejoinResult, m: Member, phase: string) => {
    rejoins.push(j);
    const v = await status(m.spec).catch(() => undefined);
    const mem = m.process?.running ? procMemory(m.process.pid) : undefined;
    const stored = await storedLog(clusterId, m.spec.id).catch(() => undefined);
    if (mem) peakRss.push({ node: `node${m.spec.id}`, phase, ...mem, logEntries: v?.commitIndex ?? 0, ...(stored ? { stored } : {}) });
  };

  // Phases 5 and 6 work with whichever node leads (no process is restarted to make node 1 lead again).
  const leaderCommit = async (among: readonly NodeSpec[]) => {
    const v = await waitForStableLeader(among, 60_000);
    return { leaderId: v.nodeId, commitIndex: Math.max(v.commitIndex, raft.isLeader() ? raft.commitIndex : 0) };
  };
  if (runRestart) {
    currentScenario = 'restart';
    const lead = await leaderCommit(nodes);
    // Node 2, a follower (node 3 if node 2 leads now): it holds its own snapshot and log tail.
    const m = members.find((x) => x.process && x.spec.id === 2 && x.spec.id !== lead.leaderId) ?? members.find((x) => x.process && x.spec.id !== lead.leaderId)!;
    log(`\n# phase 5: restart — node ${m.spec.id} stopped and started again with its snapshot and log tail (node ${lead.leaderId} leads)`);
    await m.process!.stop();
    const held = await storedLog(clusterId, m.spec.id);
    const target = (await leaderCommit(nodes.filter((n) => n.id !== m.spec.id))).commitIndex;
    log(`  node ${m.spec.id} holds ${describeStored(held)}; the leader's commit index is ${target}`);
    const since = snapshotEvents.length;
    m.process = spawnNode(m.spec, followerEnv(m.spec));
    const spawnedAt = m.process.spawnedAt;
    await waitFor(`node ${m.spec.id} to answer after its restart`, () => status(m.spec), 300_000, 10);
    const apiAt = performance.now();
    const reached = await waitApplied(m.spec, target, 'restart', spawnedAt);
    const mem = procMemory(m.process.pid);
    const installed = snapshotInstall(m.process, spawnedAt, snapshotEvents.slice(since), m.spec.id);
    const restoredOwn = ownSnapshotRestored(m.process);
    const j: RejoinResult = {
      name: 'restart',
      description: `a follower restarted (SIGTERM, then started) with its own snapshot and log tail`,
      node: `node${m.spec.id}`,
      held,
      target,
      entries: target - (held.snapshotIndex ?? 0),
      apiSeconds: (apiAt - spawnedAt) / 1000,
      commitSeconds: (reached.commitAt - spawnedAt) / 1000,
      appliedSeconds: (reached.appliedAt - spawnedAt) / 1000,
      appliedBy: reached.appliedBy,
      via: installed ? 'InstallSnapshot' : 'entries',
      ...(installed ? { installed } : {}),
      ...(restoredOwn !== undefined ? { restoredOwnSnapshotAt: restoredOwn } : {}),
      ...(mem ? { peakRssMb: mem.peakRssMb, rssMb: mem.rssMb } : {}),
      startup: startupTimeline(m.process),
      stored: await storedLog(clusterId, m.spec.id),
    };
    log(`  node ${m.spec.id} start-up: ${describeStartup(j.startup!)}`);
    log(
      `= restart: node ${m.spec.id} answers after ${fmt(j.apiSeconds, 2)} s, commit reached after ${fmt(j.commitSeconds, 2)} s, applied up to ${target} after ${fmt(j.appliedSeconds, 2)} s (${j.appliedBy}); ${restoredOwn !== undefined ? `restored its own snapshot at ${restoredOwn}` : 'restored no snapshot of its own'}${installed ? `; got the leader's snapshot at ${installed.index}` : ''}; peak RSS ${mem ? fmt(mem.peakRssMb, 0) : '?'} MB`,
    );
    await rejoinRow(j, m, `restarted after ${label} (its own snapshot + log tail)`);
  }

  if (runJoin) {
    const spec = await planNode(nodes.length + 1);
    log(`\n# phase 6: join — a new node ${spec.id} with an empty database at ${spec.url}, added with POST /cluster/members`);
    currentScenario = 'join';
    let lead = await leaderCommit(nodes);
    const before = await storedLog(clusterId, spec.id);
    if (before.rows || before.snapshotIndex !== undefined) throw new Error(`node ${spec.id} already has rows in cluster ${clusterId}`);
    const since = snapshotEvents.length;
    const proc = spawnNode(spec, { ...envFor(spec, [], clusterId, options.followerElectionTimeoutMs), PEERS: '' });
    const m: Member = { spec, process: proc };
    const spawnedAt = proc.spawnedAt;
    await waitFor(`node ${spec.id} to answer`, () => status(spec), 60_000, 10);
    const apiAt = performance.now();
    // As an operator would: POST /cluster/members on the leader, again (after 1 s) while it fails — the
    // leader first catches the new node up and gives up on the change if that takes too long.
    const postAt = performance.now();
    const attempts: NonNullable<RejoinResult['addAttempts']> = [];
    let added: { status: number; body: string } | undefined;
    for (const deadline = postAt + options.joinTimeoutSeconds * 1000; ; ) {
      const leaderUrl = nodes.find((n) => n.id === lead.leaderId)?.url ?? nodes[0]!.url;
      const t = performance.now();
      const res = await requestJson('POST', `${leaderUrl}/cluster/members`, { id: spec.id, url: spec.rpcUrl ?? spec.url }, {
        headers: SUPPORTS_ADMIN_TOKEN ? { authorization: `Bearer ${adminToken}` } : {},
        timeoutMs: 120_000,
      }).catch((e: unknown) => ({ status: 0, body: (e as Error).message }));
      attempts.push({ status: res.status, seconds: (performance.now() - t) / 1000, ...(res.status !== 200 ? { message: res.body.slice(0, 300) } : {}) });
      if (res.status === 200) {
        added = res;
        break;
      }
      lead = await leaderCommit(nodes).catch(() => lead); // the leader may have changed
      const v = await status(spec).catch(() => undefined);
      log(`  POST /cluster/members attempt ${attempts.length}: ${res.status} after ${fmt(attempts[attempts.length - 1]!.seconds, 2)} s: ${res.body.slice(0, 200)} (node ${spec.id} commitIndex ${v?.commitIndex ?? '?'} / ${raft.commitIndex})`);
      if (performance.now() > deadline) break;
      await sleep(1000);
    }
    const addedAt = performance.now();
    /** The row of this join: what is known of the node now, and how the addition went. */
    const joinResult = async (target: number, outcome: Partial<RejoinResult> & Pick<RejoinResult, 'commitSeconds' | 'appliedSeconds' | 'appliedBy'>) => {
      const mem = procMemory(proc.pid);
      const installed = snapshotInstall(proc, spawnedAt, snapshotEvents.slice(since), spec.id);
      const j: RejoinResult = {
        name: 'join',
        description: `a new node with an empty database, added through POST /cluster/members on the leader`,
        node: `node${spec.id}`,
        target,
        entries: target,
        apiSeconds: (apiAt - spawnedAt) / 1000,
        addSeconds: (addedAt - postAt) / 1000,
        ...outcome,
        via: installed ? 'InstallSnapshot' : 'entries',
        ...(installed ? { installed } : {}),
        ...(mem ? { peakRssMb: mem.peakRssMb, rssMb: mem.rssMb } : {}),
        stored: await storedLog(clusterId, spec.id),
      };
      return { j, mem, installed };
    };
    if (!added) {
      const last = attempts[attempts.length - 1]!;
      const { j } = await joinResult(raft.commitIndex, {
        commitSeconds: NaN,
        appliedSeconds: NaN,
        appliedBy: 'linearizable read',
        addAttempts: attempts,
        failed: `POST /cluster/members failed ${attempts.length} time(s) in ${fmt((addedAt - postAt) / 1000, 1)} s; the last: ${last.status} ${last.message ?? ''}`,
      });
      log(`= join FAILED: ${j.failed}`);
      rejoins.push(j);
      await proc.stop();
    } else {
      members.push(m);
      nodes.push(spec);
      await refreshPgPids();
      const leaderSpec = nodes.find((n) => n.id === lead.leaderId);
      const target = Math.max(raft.commitIndex, (leaderSpec ? await status(leaderSpec).catch(() => undefined) : undefined)?.commitIndex ?? 0);
      log(`  POST /cluster/members answered in ${fmt(attempts[attempts.length - 1]!.seconds, 2)} s (attempt ${attempts.length}): ${added.body.slice(0, 200)}; the leader's commit index is ${target}`);
      const reached = await waitApplied(spec, target, 'join', postAt);
      const { j, mem, installed } = await joinResult(target, {
        commitSeconds: (reached.commitAt - spawnedAt) / 1000,
        appliedSeconds: (reached.appliedAt - spawnedAt) / 1000,
        appliedBy: reached.appliedBy,
        ...(attempts.length > 1 ? { addAttempts: attempts } : {}),
        fromAddSeconds: (reached.appliedAt - postAt) / 1000,
        startup: startupTimeline(proc),
      });
      log(`  node ${spec.id} start-up: ${describeStartup(j.startup!)}`);
      log(
        `= join: node ${spec.id} applied up to ${target} ${fmt(j.fromAddSeconds!, 2)} s after the POST (${fmt(j.appliedSeconds, 2)} s after its start; ${j.appliedBy}); ${installed ? `through InstallSnapshot at ${installed.index} (${mb(installed.bytes)}${installed.sendMs !== undefined ? `, sent in ${fmt(installed.sendMs)} ms` : ''}${installed.sends && installed.sends > 1 ? `, ${installed.sends} sends` : ''})` : 'through entries only (no InstallSnapshot)'}; peak RSS ${mem ? fmt(mem.peakRssMb, 0) : '?'} MB`,
      );
      await rejoinRow(j, m, `new node, joined after ${label}`);
    }
  }

  // The leader first (it hands leadership to a follower as it stops), then the followers.
  currentScenario = 'shutdown';
  await app.close();
  inProcessApp = undefined;
  await Promise.all(members.filter((m) => m.process).map((m) => m.process!.stop()));
}

// ------------------------------------------------------------------------------------------------ run

function machine(): Record<string, string | number> {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: REPO_ROOT }).toString().trim();
    } catch {
      return '?';
    }
  };
  const dirty = git(['status', '--porcelain', '--', 'lib', 'sample']).length > 0;
  let pgVersion = '?';
  try {
    pgVersion = execSync(`psql "${DATABASE_URL}" -Atc "show server_version"`, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    // psql missing: leave it out
  }
  return {
    cpu: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: pgVersion,
    commit: `${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' + uncommitted changes in lib/ or sample/' : ''}`,
    ...(buildWarning ? { build: buildWarning } : {}),
  };
}

/** How many rows a node's stored log should stay under: a snapshot every snapshotEvery, the trailing entries behind it, 1,024 in flight. */
function storedRowsBound(): number {
  return (options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY) + TRAILING_ENTRIES + 1024;
}

function targets(floor: FloorResult | undefined): TargetCheck[] {
  const get = (name: string) => scenarios.find((s) => s.name === name);
  const out: TargetCheck[] = [];
  const h64 = get('http64');
  out.push({
    target: '64 clients over HTTP: ≥ 4,000 writes/s with p99 ≤ 40 ms',
    measured: h64 ? `${fmt(h64.throughput, 0)} w/s, p99 ${fmt(h64.latency!.p99Ms)} ms` : 'not run',
    met: h64 ? h64.throughput >= 4000 && h64.latency!.p99Ms <= 40 : undefined,
  });
  const h1 = get('http1');
  out.push({
    target: `1 client over HTTP: p50 ≤ 1.7 ms${floor ? ` (floor here ${fmt(floor.replicatedWriteFloorMs, 2)} ms)` : ''}`,
    measured: h1
      ? `p50 ${fmt(h1.latency!.p50Ms)} ms (via the leader ${fmt(h1.latencyByTag?.leader?.p50Ms ?? NaN)} ms, via a follower ${fmt(h1.latencyByTag?.follower?.p50Ms ?? NaN)} ms), ${fmt(h1.throughput, 0)} w/s`
      : 'not run',
    met: h1 ? h1.latency!.p50Ms <= 1.7 : undefined,
  });
  const i1024 = get('inproc1024');
  out.push({ target: 'in-process command(), 1,024 in flight: ≥ 20,000 commands/s', measured: i1024 ? `${fmt(i1024.throughput, 0)} cmd/s` : 'not run', met: i1024 ? i1024.throughput >= 20000 : undefined });
  const cu = get('catchup');
  out.push({
    target: 'catch-up: ≥ 20,000 entries/s',
    measured: cu ? `${fmt(cu.throughput, 0)} entries/s${cu.catchUp?.via ? ` (${cu.completed.toLocaleString('en')} entries, through ${cu.catchUp.via === 'InstallSnapshot' ? 'InstallSnapshot + entries' : 'entries only'}; until applied)` : ''}` : 'not run',
    met: cu ? cu.throughput >= 20000 : undefined,
  });
  // Memory: the rows read after the big write (and the nodes restarted or added after it).
  const after = peakRss.filter((p) => !p.phase.startsWith('HTTP'));
  const maxEntries = Math.max(0, ...after.map((p) => p.logEntries));
  const processes = after.filter((p) => !p.phase.includes('this process'));
  const inProcess = after.find((p) => p.phase.includes('this process'));
  const worstProcess = Math.max(0, ...processes.map((p) => p.peakRssMb));
  const httpWorst = Math.max(0, ...peakRss.filter((p) => p.phase.startsWith('HTTP')).map((p) => p.peakRssMb));
  const big = maxEntries >= 1_000_000;
  out.push({
    target: 'peak RSS per node ≤ 150 MB after 1,000,000 commands',
    measured: after.length
      ? `node processes: max ${fmt(worstProcess, 0)} MB (${processes.map((p) => `${p.node} ${fmt(p.peakRssMb, 0)}`).join(', ')}); the in-process leader, with the load generator and not counted: ${inProcess ? `${fmt(inProcess.peakRssMb, 0)} MB` : '–'}${httpWorst ? `; HTTP phase max ${fmt(httpWorst, 0)} MB` : ''}; log ${maxEntries.toLocaleString('en')} entries`
      : 'not run',
    met: processes.length && big ? worstProcess <= 150 : undefined,
  });
  const bigRows = peakRss.filter((p) => p.phase.includes('after') && p.stored && !p.phase.startsWith('HTTP'));
  const maxRows = Math.max(0, ...bigRows.map((p) => p.stored!.rows));
  out.push({
    target: `stored log per node stays bounded after 1,000,000 commands (≤ ${storedRowsBound().toLocaleString('en')} rows: snapshotEvery + ${TRAILING_ENTRIES.toLocaleString('en')} trailing + 1,024 in flight)`,
    measured: bigRows.length
      ? `max ${maxRows.toLocaleString('en')} rows (${bigRows.map((p) => `${p.node} ${p.stored!.rows.toLocaleString('en')}`).join(', ')}) for a log of ${maxEntries.toLocaleString('en')} entries`
      : 'not run',
    met: bigRows.length && big ? maxRows <= storedRowsBound() : undefined,
  });
  const joined = rejoins.find((j) => j.name === 'join');
  out.push({
    target: 'a new node joins through InstallSnapshot and catches up (after 1,000,000 commands)',
    measured: joined?.failed
      ? `did not join: ${joined.failed}`
      : joined
      ? `${joined.via === 'InstallSnapshot' ? `InstallSnapshot at ${joined.installed!.index.toLocaleString('en')} (${mb(joined.installed!.bytes)})` : 'entries only, no InstallSnapshot'}; applied up to ${joined.target.toLocaleString('en')} ${fmt(joined.fromAddSeconds ?? NaN, 2)} s after POST /cluster/members`
      : 'not run',
    met: joined && big ? joined.via === 'InstallSnapshot' && !joined.failed : undefined,
  });
  const restarted = rejoins.find((j) => j.name === 'restart');
  out.push({
    target: 'restart with a snapshot: < 5 s (process start → applied up to the leader\'s commit index)',
    measured: restarted
      ? `${fmt(restarted.appliedSeconds, 2)} s (API answered at ${fmt(restarted.apiSeconds, 2)} s; snapshot ${restarted.held?.snapshotIndex?.toLocaleString('en') ?? 'none'} + ${restarted.entries.toLocaleString('en')} entries)`
      : 'not run',
    met: restarted && big ? restarted.appliedSeconds < 5 && restarted.held?.snapshotIndex !== undefined : undefined,
  });
  return out;
}

async function main(): Promise<void> {
  log(`bench: nestjs-raft cluster benchmark (run ${runId}; ${options.seconds} s per scenario${quick ? ', quick' : ''}); results to ${relative(REPO_ROOT, options.out) || '.'}`);
  if (SUPPORTS_RPC_PORT || SUPPORTS_SECRET) log(`  the sample supports${SUPPORTS_RPC_PORT ? ' RPC_PORT' : ''}${SUPPORTS_SECRET ? ' RAFT_CLUSTER_SECRET' : ''}: used`);
  if (options.build) {
    log('building the sample (npm run build:sample)…');
    try {
      execSync('npm run --silent build:sample', { cwd: REPO_ROOT, stdio: 'inherit' });
    } catch {
      // tsc still emits JavaScript for code with type errors (work in progress elsewhere in the tree)
      buildWarning = 'npm run build:sample reported type errors; the emitted JavaScript was benchmarked';
      log(`  WARNING: ${buildWarning}`);
    }
  }
  mkdirSync(options.out, { recursive: true });
  if (options.profile.length) {
    mkdirSync(profileDir, { recursive: true });
    for (const id of [1, 2, 3]) rmSync(join(profileDir, `node${id}.cpuprofile`), { force: true }); // a previous run's leftovers
  }

  let floor: FloorResult | undefined;
  if (options.only.includes('floor')) {
    log('\n# phase 0: the floor');
    floor = await measureFloor(DATABASE_URL, quick ? 1 : 3);
    const floorCluster = `bench-floor-${runId}`;
    clusterIds.push(floorCluster);
    const { TypeOrmStorage } = await loadDist();
    const storage = new TypeOrmStorage({ nodeId: 1, clusterId: floorCluster, dataSourceOptions: { url: DATABASE_URL } });
    const { save1, save256 } = await measureStorageSave(storage as unknown as SaveableStorage, quick ? 1 : 3);
    floor = { ...floor, storageSave1: save1, storageSave256: save256 };
    log(`  ${describeFloor(floor)}`);
  }
  if (options.only.includes('http')) await phaseHttp();
  await phaseInProcess();
  await cleanup();

  const durationSeconds = (performance.now() - t0) / 1000;
  const h64 = scenarios.find((s) => s.name === 'http64');
  const i1024 = scenarios.find((s) => s.name === 'inproc1024');
  const cu = scenarios.find((s) => s.name === 'catchup');
  const afterRows = peakRss.filter((p) => !p.phase.startsWith('HTTP'));
  const maxOf = (values: number[]) => (values.length ? Math.max(...values) : NaN);
  const worstProcessRss = maxOf(afterRows.filter((p) => !p.phase.includes('this process')).map((p) => p.peakRssMb));
  const leaderRss = afterRows.find((p) => p.phase.includes('this process'))?.peakRssMb ?? NaN;
  const maxRows = maxOf(afterRows.filter((p) => p.stored && p.phase.includes('after')).map((p) => p.stored!.rows));
  const restarted = rejoins.find((j) => j.name === 'restart');
  const joined = rejoins.find((j) => j.name === 'join');
  const summary =
    `bench: http64 ${h64 ? fmt(h64.throughput, 0) : '–'} w/s p99 ${h64 ? fmt(h64.latency!.p99Ms) : '–'} ms; inproc1024 ${i1024 ? fmt(i1024.throughput, 0) : '–'} cmd/s; ` +
    `catch-up ${cu ? fmt(cu.throughput, 0) : '–'} entries/s${cu?.catchUp?.via ? ` (${cu.catchUp.via === 'InstallSnapshot' ? 'snapshot' : 'entries'})` : ''}; ` +
    `peak RSS ${fmt(worstProcessRss, 0)} MB (in-process leader ${fmt(leaderRss, 0)} MB); stored log max ${Number.isFinite(maxRows) ? maxRows.toLocaleString('en') : '–'} rows; ` +
    `restart ${restarted ? fmt(restarted.appliedSeconds, 2) : '–'} s; join ${joined?.failed ? 'FAILED' : joined ? `${fmt(joined.fromAddSeconds ?? NaN, 2)} s${joined.via === 'InstallSnapshot' ? ' via snapshot' : ' via entries'}` : '–'}`;
  const report: BenchReport = {
    startedAt: startedAt.toISOString(),
    durationSeconds,
    machine: machine(),
    options: { ...options, out: relative(REPO_ROOT, options.out), databaseUrl: DATABASE_URL.replace(/:[^:@/]*@/, ':***@'), rpcPort: SUPPORTS_RPC_PORT, clusterSecret: SUPPORTS_SECRET },
    ...(floor ? { floor: { ...floor, ...(nestRoundTrip ? { nestRoundTrip } : {}) } } : {}),
    scenarios,
    peakRss,
    ...(leadershipRestarts.length ? { leadershipRestarts } : {}),
    ...(leadershipLosses.length ? { leadershipLosses } : {}),
    ...(nodeWarnings.length ? { nodeWarnings } : {}),
    ...(heapReadings.length ? { heapReadings: summarizeHeapReadings() } : {}),
    compaction: { snapshotEvery: options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY, trailingEntries: TRAILING_ENTRIES, storedRowsBound: storedRowsBound() },
    ...(rejoins.length ? { rejoins } : {}),
    targets: targets(floor),
    profiles,
    summary,
  };
  const written = writeReportFiles(report, options.out);
  log('');
  for (const t of report.targets) log(`target ${t.met === undefined ? '(not measured)' : t.met ? 'MET    ' : 'MISSED '} ${t.target}: ${t.measured}`);
  log(`results: ${written.map((f) => relative(REPO_ROOT, join(options.out, f))).join(', ')}; ${fmt(durationSeconds / 60, 1)} min`);
  log(summary);
}

try {
  await main();
  process.exit(0);
} catch (error) {
  console.error(error);
  for (const c of children) console.error(`--- node ${c.spec.id} (pid ${c.pid}) output:\n${c.output}`);
  await cleanup();
  process.exit(1);
}
