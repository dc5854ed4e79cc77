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
 *    of every node is read (the issue's memory target is "after 1,000,000 commands").
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
 *   the memory reading (1000000; 0 skips it) · --only floor,http,inproc,catchup,rss · --clients
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
  cpuByPid,
  cpuDelta,
  procCpuSeconds,
  procMemory,
  resetPeakRss,
  selfCpuSeconds,
  sleep,
  waitFor,
  type ClusterView,
  type NodeSpec,
} from './bench-procs.js';
import { writeReportFiles, type BenchReport, type NodeCost, type PipelineStats, type ScenarioResult, type TargetCheck } from './bench-report.js';
import { fmt, runClosedLoop, summarize, type LoadResult } from './bench-stats.js';
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
  rssCommands: num('rss-commands', quick ? 0 : 1_000_000),
  clients: list('clients', [1, 16, 64, 256]),
  inflight: list('inflight', [1, 64, 1024]),
  only: (flag('only') ?? 'floor,http,inproc,catchup,rss').split(','),
  profile: (flag('profile') ?? '').split(',').filter(Boolean),
  out: flag('out') ?? join(REPO_ROOT, 'bench', 'results'),
  valueBytes: num('value-bytes', 100),
  keys: num('keys', 10_000),
  electionTimeoutMs: flag('election-timeout-ms') !== undefined ? Number(flag('election-timeout-ms')) : undefined,
  followerElectionTimeoutMs: num('follower-election-timeout-ms', 1000),
  waitQuietSeconds: num('wait-quiet', 0),
  repeat: num('repeat', 1),
  build: !has('no-build'),
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
const clusterSecret = randomBytes(24).toString('hex');

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
    for (const table of ['raft_log_entries', 'raft_hard_state', 'raft_base_configuration']) {
      await client.query(`DELETE FROM ${table} WHERE cluster_id = ANY($1)`, [clusterIds]);
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
  if (!monitor) {
    monitor = new pg.Client({ connectionString: DATABASE_URL });
    await monitor.connect();
  }
  const { rows } = await monitor.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1 OR backend_type IN ('walwriter', 'checkpointer', 'background writer')`,
    [`raft-bench-${runId}-%`],
  );
  pgPids = rows.map((r) => r.pid);
}

// ------------------------------------------------------------------------------------------------ the cluster

async function planNodes(): Promise<NodeSpec[]> {
  return Promise.all(
    [1, 2, 3].map(async (id) => {
      const host = `127.0.0.${id}`;
      const port = await freePort(host);
      const url = `http://${host}:${port}`;
      if (!SUPPORTS_RPC_PORT) return { id, host, port, url };
      const rpcPort = await freePort(host);
      return { id, host, port, url, rpcPort, rpcUrl: `http://${host}:${rpcPort}` };
    }),
  );
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
  if (electionTimeoutMs !== undefined) env.ELECTION_TIMEOUT_MS = String(electionTimeoutMs);
  return env;
}

function spawnNode(node: NodeSpec, env: Record<string, string>): SampleProcess {
  const child = new SampleProcess(node, env, options.profile.length ? { profileDir } : {});
  children.add(child);
  void child.exited.then((how) => {
    children.delete(child);
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
    if (mem) peakRss.push({ node: `node${m.spec.id}`, phase: 'HTTP (processes)', ...(startRssMb !== undefined ? { startRssMb } : {}), ...mem, logEntries: final.find((v) => v.nodeId === m.spec.id)?.commitIndex ?? 0 });
  }
  await Promise.all(members.map((m) => m.process!.stop()));
}

type ObservedEvent =
  | { type: 'rpc'; rpc: string; ms: number; ok: boolean }
  | { type: 'persist'; entries: number; ms: number }
  | { type: 'append'; entries: number; bytes: number };

/**
 * Counts the in-process leader's storage batches and AppendEntries through `RaftNode.events$` (when
 * the library has it): how well group commit and batching work at each load.
 */
function watchPipeline(raft: unknown): { reset(): void; read(): PipelineStats } | undefined {
  const events = (raft as { node?: { events$?: { subscribe(next: (e: ObservedEvent) => void): unknown } } }).node?.events$;
  if (!events) return undefined;
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
    }
  });
  return {
    reset() {
      persistMs = [];
      rpcMs = [];
      persistEntries = appends = heartbeats = appendEntries = 0;
    },
    /** The window's figures; appendsPerCommand is left 0 for the caller, who knows the count. */
    read(): PipelineStats {
      const p = summarize(persistMs);
      const r = summarize(rpcMs);
      return {
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

async function phaseInProcess(): Promise<void> {
  const runInproc = options.only.includes('inproc');
  const runCatchUp = options.only.includes('catchup');
  const runRss = options.only.includes('rss') && options.rssCommands > 0;
  if (!runInproc && !runCatchUp && !runRss) return;
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
  const pipeline = watchPipeline(raft);
  const inprocScenario = async (name: string, inflight: number, description: string, load: () => Promise<LoadResult>) => {
    if (!raft.isLeader()) throw new Error('node 1 is no longer the leader');
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
    const beforeStop = await waitForStableLeader(nodes); // the follower holds everything committed so far
    await follower.process!.stop();
    const inflight = 1024;
    const writes = await record(inprocScenario('write-1-down', inflight, `${options.entries.toLocaleString('en')} command() writes, 1,024 in flight, node ${follower.spec.id} down`, () =>
      runClosedLoop({ label: 'catch-up writes', concurrency: inflight, warmupMs: 0, total: options.entries, op, progress: true, unit: 'cmd/s', ...windowHooks }),
    ));
    if (writes.errors) log(`  ${writes.errors} writes failed: ${writes.firstErrors.join('; ')}`);
    const leaderCommit = raft.commitIndex;
    const termStart = raft.term;
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
      60_000,
      10,
    );
    profileStart('catchup', members);
    const upAt = before!.at;
    log(
      `  node ${follower.spec.id} answers ${fmt((upAt - spawnedAt) / 1000, 2)} s after the restart (commitIndex ${first.commitIndex}); it held ${beforeStop.commitIndex} entries, the leader has ${leaderCommit}`,
    );
    let lastLog = performance.now();
    await waitFor(
      `node ${follower.spec.id} to catch up`,
      async () => {
        const v = await status(follower.spec);
        const now = performance.now();
        if (now - lastLog >= 1000) {
          lastLog = now;
          log(`  [catchup] ${fmt((now - upAt) / 1000, 1)} s: commitIndex ${v.commitIndex} / ${leaderCommit}`);
        }
        return v.commitIndex >= leaderCommit ? v : undefined;
      },
      600_000,
      10,
    );
    const after = cpuSnapshot(members);
    await profileStop('catchup', members, 1);
    // What it lacked: everything written while it was down (its commitIndex right after a restart
    // says nothing about its log: commitIndex is volatile, and it learns it from the leader).
    const entries = leaderCommit - beforeStop.commitIndex;
    const catchUpSeconds = (after.at - upAt) / 1000;
    const s: ScenarioResult = {
      name: 'catchup',
      kind: 'catchup',
      description: `a restarted follower catching up ${entries.toLocaleString('en')} entries`,
      concurrency: 0,
      seconds: catchUpSeconds,
      completed: entries,
      errors: 0,
      firstErrors: [],
      throughput: entries / catchUpSeconds,
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
        entriesPerSecondFromSpawn: entries / ((after.at - spawnedAt) / 1000),
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

  await waitForStableLeader(nodes, 60_000).catch(() => undefined);
  const final = await Promise.all(nodes.map((n) => status(n).catch(() => undefined)));
  for (const m of members) {
    const mem = m.process ? (m.process.running ? procMemory(m.process.pid) : undefined) : procMemory('self');
    const entries = final.find((v) => v?.nodeId === m.spec.id)?.commitIndex ?? 0;
    const phase = m.process ? (m === members[2] && runCatchUp ? 'in-process leader cluster (restarted for catch-up)' : 'in-process leader cluster') : 'in-process leader (this process, with the load generator)';
    const startRssMb = m === members[2] && runCatchUp ? undefined : startRss.get(m.spec.id);
    if (mem) peakRss.push({ node: `node${m.spec.id}`, phase, ...(startRssMb !== undefined ? { startRssMb } : {}), ...mem, logEntries: entries });
  }
  // The leader first (it hands leadership to a follower as it stops), then the followers.
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
  out.push({ target: 'catch-up: ≥ 20,000 entries/s', measured: cu ? `${fmt(cu.throughput, 0)} entries/s` : 'not run', met: cu ? cu.throughput >= 20000 : undefined });
  const inprocPhase = peakRss.filter((p) => p.phase.startsWith('in-process'));
  const maxEntries = Math.max(0, ...inprocPhase.map((p) => p.logEntries));
  const worst = Math.max(0, ...peakRss.map((p) => p.peakRssMb));
  const worstProcess = Math.max(0, ...peakRss.filter((p) => !p.phase.includes('this process')).map((p) => p.peakRssMb));
  out.push({
    target: 'peak RSS per node ≤ 150 MB after 1,000,000 commands',
    measured: peakRss.length
      ? `max ${fmt(worst, 0)} MB (node processes: max ${fmt(worstProcess, 0)} MB); log ${maxEntries.toLocaleString('en')} entries`
      : 'not run',
    met: peakRss.length && maxEntries >= 1_000_000 ? worst <= 150 : undefined,
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
  const worstRss = peakRss.length ? Math.max(...peakRss.map((p) => p.peakRssMb)) : NaN;
  const summary = `bench: http64 ${h64 ? fmt(h64.throughput, 0) : '–'} w/s p99 ${h64 ? fmt(h64.latency!.p99Ms) : '–'} ms; inproc1024 ${i1024 ? fmt(i1024.throughput, 0) : '–'} cmd/s; catch-up ${cu ? fmt(cu.throughput, 0) : '–'} entries/s; peak RSS ${fmt(worstRss, 0)} MB`;
  const report: BenchReport = {
    startedAt: startedAt.toISOString(),
    durationSeconds,
    machine: machine(),
    options: { ...options, out: relative(REPO_ROOT, options.out), databaseUrl: DATABASE_URL.replace(/:[^:@/]*@/, ':***@'), rpcPort: SUPPORTS_RPC_PORT, clusterSecret: SUPPORTS_SECRET },
    ...(floor ? { floor: { ...floor, ...(nestRoundTrip ? { nestRoundTrip } : {}) } } : {}),
    scenarios,
    peakRss,
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
