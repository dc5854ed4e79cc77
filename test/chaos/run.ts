/**
 * One chaos run: PostgreSQL, proxies, nodes, workload, faults, recovery, checks; see README.md.
 */
import { execFile as execFileCb } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Prng } from '../sim/prng.js';
import { readStoredState, runChecks, type ChaosChecks } from './checks.js';
import { CLUSTER_ID } from './nodes.js';
import { Nemesis, type FaultEvent, type LearnerReport } from './nemesis.js';
import { ChaosCluster, detectSampleSupport, type ClusterView, type SampleSupport } from './nodes.js';
import { RAFT_DEFAULTS } from '../../lib/node/options.js';
import { FAILPOINT_NAMES, type ChaosOptions, type FailpointName } from './options.js';
import { sleep, startPostgres } from './postgres.js';
import { LinkProxy, Network, type NetworkStats } from './proxy.js';
import { keyName, Workload, type RecordedOp } from './workload.js';

const execFile = promisify(execFileCb);

export interface ChaosResult {
  ok: boolean;
  seed: number;
  options: ChaosOptions;
  failures: string[];
  checks?: ChaosChecks;
  recoveredInS?: number;
  fullyHealedInS?: number;
  faults: Record<string, number>;
  network: NetworkStats;
  failpointKills: Record<FailpointName, number>;
  nodeStarts: number;
  /** "installed the leader's snapshot" lines in the nodes' output. */
  installLines: number;
  postgres: string;
  support: SampleSupport;
  summary: string;
  historyPath?: string;
  wallS: number;
  /** The rolling-restart phase, when there was one. */
  rolling?: RollingReport;
  /** The learner fault, when it was on. */
  learners?: LearnerSummary;
}

/** What the learner fault did (counts, one line per addition) and every learner verdict's problems. */
export interface LearnerSummary extends LearnerReport {
  /** /cluster answers of nodes while they were learners (none may say leader, candidate or pre-candidate). */
  polls: number;
  /** Learner incarnations whose vote audit was checked, and the votes they gave other candidates (allowed). */
  incarnations: number;
  votesForOthers: number;
}

/** The final reads (every key, once the workload stopped) take at most this long in all. */
export const FINAL_READS_LIMIT_MS = 60_000;

export interface RollingReport {
  rounds: number;
  /** One line per graceful restart. */
  restarts: string[];
  /** Client operations sent during the phase (from its start until the workload stopped). */
  ops: number;
  /** Operations that failed (any answer but success: 5xx, 421, timeouts, cut connections…), refused connections apart. */
  failed: number;
  failedExamples: string[];
  /** Connections refused by a node that was down or restarting: the request never left, the client went to another node. */
  refused: number;
  /** The slowest successful operation of the phase (ms). */
  slowestMs: number;
  /** Diagnostics of every stall (an operation in flight for more than 3 s). */
  stalls: string[];
}

export interface RunHooks {
  log?(line: string): void;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles the sample (and lib) once into a temporary directory that resolves the repo's node_modules. */
async function buildSample(dir: string): Promise<string[]> {
  const out = join(dir, 'build');
  mkdirSync(out, { recursive: true });
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  try {
    await execFile(tsc, ['-p', join(ROOT, 'tsconfig.sample.json'), '--outDir', out, '--sourceMap', 'false'], { cwd: ROOT, timeout: 180_000 });
  } catch (error) {
    // Type errors still emit JavaScript; only a missing output is fatal.
    if (!existsSync(join(out, 'sample', 'src', 'main.js'))) throw new Error(`could not compile the sample: ${(error as { stdout?: string }).stdout ?? (error as Error).message}`);
  }
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
  return [process.execPath, join(out, 'sample', 'src', 'main.js')];
}

export async function runChaos(options: ChaosOptions, hooks: RunHooks = {}): Promise<ChaosResult> {
  const log = hooks.log ?? ((line: string) => console.log(line));
  const wallStart = Date.now();
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const stamp = () => `[${(now() / 1000).toFixed(1).padStart(5)}s]`;
  const say = (line: string) => log(`${stamp()} ${line}`);
  const runId = `chaos_${options.seed}_${Date.now().toString(36)}`;
  const runDir = mkdtempSync(join(tmpdir(), `raft-chaos-${options.seed}-`));
  const rng = new Prng(options.seed);
  const support = detectSampleSupport(ROOT);
  // Snapshots every 100–300 applied entries (from the seed, on a stream of its own), so that a run
  // takes many, and nodes that fall behind come back through InstallSnapshot.
  const snapshotRng = new Prng(options.seed, 400);
  // With failpoints, more often (10–30): after-snapshot-persist is passed once per snapshot.
  const everyDrawn = options.failpoints ? snapshotRng.between(10, 30) : snapshotRng.between(100, 300);
  // Few entries kept before a snapshot, so that a follower a few seconds behind needs InstallSnapshot.
  const trailingDrawn = snapshotRng.between(20, 100);
  if (options.snapshotEvery === undefined) options = { ...options, snapshotEvery: support.snapshotEvery ? everyDrawn : 0 };
  const snapshotEvery = options.snapshotEvery ?? 0;
  if (!support.snapshotTrailing) options = { ...options, snapshotTrailing: RAFT_DEFAULTS.snapshotTrailingEntries };
  else if (options.snapshotTrailing === undefined) options = { ...options, snapshotTrailing: trailingDrawn };
  const snapshotTrailing = options.snapshotTrailing ?? RAFT_DEFAULTS.snapshotTrailingEntries;
  const failures: string[] = [];
  const network = new Network(rng.fork(100));
  network.forgeAcks = options.unsafe === 'ack-before-persist';

  const asyncToggle = options.unsafe === 'async-commit' && !support.unsafeAsyncCommit;
  if (options.unsafe === 'async-commit') {
    say(
      support.unsafeAsyncCommit
        ? `async-commit control: PostgreSQL with synchronous_commit=off and fsync=off; nodes started with ${support.unsafeAsyncCommit}=1`
        : 'async-commit control: the sample has no env for unsafeAllowAsyncCommit, so synchronous_commit is switched off (ALTER SYSTEM + reload) whenever no node is starting — the nodes check it only at start',
    );
  }
  // An interrupted run (Ctrl-C, a closed pipe, a crash) must not leave nodes or a server behind.
  let cluster: ChaosCluster | undefined;
  let pgServer: { closeNow(): void } | undefined;
  const emergency = () => {
    cluster?.killAllNow();
    pgServer?.closeNow();
    rmSync(runDir, { recursive: true, force: true });
  };
  const onSignal = () => process.exit(130);
  process.once('exit', emergency);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, onSignal);
  const pg = await startPostgres({
    mode: options.postgres,
    sharedUrl: options.sharedUrl,
    asyncCommit: options.unsafe === 'async-commit',
    nodesAcceptAsyncCommit: !!support.unsafeAsyncCommit,
    prefix: runId,
    keep: options.keep,
    log: say,
  });
  pgServer = pg;
  say(
    `seed ${options.seed}: ${options.nodes} nodes, ${options.clients} clients, ${options.keys} keys, ${options.durationS} s of faults [${options.faults.join(', ') || 'none'}]${options.unsafe ? `, UNSAFE ${options.unsafe}` : ''}${options.failpoints ? ', failpoints' : ''}${options.rollingRestarts ? `, ${options.rollingRestarts} rolling restart round(s)${options.rollingDrain ? ' (each node drained first)' : ''}` : ''}; SNAPSHOT_EVERY=${snapshotEvery || 'off'}${support.snapshotEvery ? '' : ' (the sample has no SNAPSHOT_EVERY)'}, ${snapshotTrailing} trailing entries${support.snapshotTrailing ? '' : " (the library's default: the sample has no SNAPSHOT_TRAILING_ENTRIES)"}; ${pg.describe()}`,
  );

  let workload: Workload | undefined;
  let nemesis: Nemesis | undefined;
  let checks: ChaosChecks | undefined;
  let recoveredInS: number | undefined;
  let fullyHealedInS: number | undefined;
  let progress: NodeJS.Timeout | undefined;
  const finalReads = new Map<string, RecordedOp>();
  let commitBeforeFinalReads = 0;
  let finalViews: ClusterView[] = [];
  let rolling: RollingReport | undefined;
  let learners: LearnerSummary | undefined;
  let stallWatch: NodeJS.Timeout | undefined;
  try {
    const command = options.tsx ? [process.execPath, '--import', 'tsx', join(ROOT, 'sample', 'src', 'main.ts')] : await buildSample(runDir);
    if (!options.tsx) say('compiled the sample');
    cluster = new ChaosCluster(
      options,
      pg,
      network,
      runDir,
      command,
      support,
      {
        log: say,
        now,
        ...(asyncToggle
          ? {
              onStarting: () => pg.setSynchronousCommit(true),
              onStarted: () => pg.setSynchronousCommit(false),
            }
          : {}),
      },
      runId,
    );
    const c = cluster;
    await c.init((id, target) => new LinkProxy(id, network, target));
    await Promise.all(c.list.map((n) => c.start(n)));
    c.startSupervisor();
    const first = await waitFor(async () => {
      const l = await c.leader();
      return l && l.members.length === options.nodes ? l : undefined;
    }, 60_000);
    if (!first) throw new Error('no leader within 60 s of the start');
    say(`leader ${first.nodeId} in term ${first.term}; nodes ${c.list.map((n) => `${n.id}: api :${n.apiPort}, peers via proxy :${n.proxy.port}`).join('; ')}`);

    workload = new Workload(
      {
        clients: options.clients,
        keys: options.keys,
        timeoutMs: options.clientTimeoutMs,
        thinkMs: options.thinkMs,
        now,
        targets: () => c.list.filter((n) => !n.drained).map((n) => ({ id: n.id, url: n.apiUrl })),
      },
      rng.fork(200),
    );
    const w = workload;
    nemesis = new Nemesis(options, c, pg, network, rng.fork(300), now, say);
    const nem = nemesis;
    c.failpointsEnabled = options.failpoints; // armed by the first phase's rolling restart
    w.start();
    // Faults start after a short calm period, so the history begins with a working cluster.
    await sleep(1_000);
    nem.start();
    const faultStart = now();
    let lastCount = 0;
    if (options.progressMs > 0) {
      progress = setInterval(() => {
        const h = w.history;
        const done = h.length - lastCount;
        lastCount = h.length;
        const ok = h.filter((o) => o.outcome === 'ok').length;
        const faults = [...nem.counts].map(([k, v]) => `${k}=${v}`).join(' ');
        const fp = options.failpoints ? ` failpoint kills: ${FAILPOINT_NAMES.map((f) => `${f}=${c.failpointKills.get(f)}`).join(' ')} (armed: ${c.failpointPhase.join('+')})` : '';
        say(`${h.length} ops (${ok} ok, +${done}), ${w.pending} in flight; up: ${c.list.filter((n) => n.running).map((n) => n.id).join(',')}; faults: ${faults || 'none yet'}${fp}`);
      }, options.progressMs);
    }
    if (options.failpoints) {
      // Phases of one failpoint each: arm it in every node (a rolling restart), make the faults that
      // lead to it more frequent, and move on once it has its kills or after 20 s; round after round
      // (every point short of its target once per round, fewest kills first), until the time is up.
      const end = faultStart + options.durationS * 1000;
      const kills = (f: FailpointName) => c.failpointKills.get(f)!;
      const phases = new Map<readonly FailpointName[], number>(FAILPOINT_GROUPS.map((g) => [g, 0]));
      for (;;) {
        // A group's points still short of their target; the groups with any, fewest phases (this round) first, then fewest kills.
        const shortOf = (g: readonly FailpointName[]) => g.filter((f) => kills(f) < options.failpointTarget);
        const groups = FAILPOINT_GROUPS.filter((g) => shortOf(g).length > 0).sort(
          (a, b) => phases.get(a)! - phases.get(b)! || Math.min(...shortOf(a).map(kills)) - Math.min(...shortOf(b).map(kills)),
        );
        if (groups.length === 0 || now() >= end - 3_000) break;
        const group = shortOf(groups[0]!);
        const leftThisRound = groups.filter((g) => phases.get(g) === phases.get(groups[0]!)).length;
        phases.set(groups[0]!, phases.get(groups[0]!)! + 1);
        c.failpointPhase = group;
        nem.focus = group;
        say(`failpoint phase: ${group.map((f) => `${f} (${kills(f)} kills so far)`).join(' + ')}`);
        await c.rollingRestart();
        // 20 s a phase; less in a short run, so that the groups left in the round get theirs (6 s at least).
        const phaseMs = Math.min(20_000, Math.max(6_000, (end - now()) / leftThisRound));
        const phaseEnd = Math.min(end, now() + phaseMs);
        while (now() < phaseEnd && group.some((f) => kills(f) < options.failpointTarget)) await sleep(200);
      }
      nem.focus = [];
      c.failpointsEnabled = false;
      say(`failpoints done: ${FAILPOINT_NAMES.map((f) => `${f}=${c.failpointKills.get(f)}`).join(' ')}`);
    } else await sleep(Math.max(0, options.durationS * 1000 - (now() - faultStart)));

    // ---------------------------------------------------------------- faults stop: recovery
    await nem.stop();
    if (options.failpoints) {
      say('faults stop; restarting the nodes without failpoints');
      await c.disarmFailpoints();
    }
    const healAt = now();
    say('faults stop; measuring recovery');
    let probe = 0;
    const recovered = await waitFor(
      async () => {
        const targets = c.list.filter((n) => n.running && !n.paused);
        if (targets.length === 0) return undefined;
        const target = targets[probe % targets.length]!;
        const op = await w.single(0, { id: target.id, url: target.apiUrl }, 'write', 'probe', `probe-${++probe}`);
        return op.outcome === 'ok' ? op : undefined;
      },
      60_000,
      50,
    );
    if (recovered) {
      recoveredInS = (recovered.complete - healAt) / 1000;
      say(`serving again ${recoveredInS.toFixed(2)} s after the faults stopped`);
    } else failures.push('the cluster did not serve a write within 60 s after the faults stopped');
    // A little more workload on the healed cluster, then put every node back in and let it settle.
    await sleep(2_000);
    await nem.settle();
    const allCaughtUp = () =>
      waitFor(async () => {
        const l = await c.leader();
        if (!l || l.members.length !== options.nodes) return undefined;
        const views = await Promise.all(c.list.map((n) => c.status(n, 1_000)));
        return views.every((v) => v && v.commitIndex === l.commitIndex && v.leaderId === l.nodeId) ? l : undefined;
      }, 30_000);

    // ---------------------------------------------------------------- rolling restarts
    if (options.rollingRestarts > 0) {
      if (await allCaughtUp()) fullyHealedInS = (now() - healAt) / 1000;
      else failures.push('rolling restart: the cluster was not whole and caught up within 30 s before it');
      const phaseStart = now();
      w.reroute = true;
      const report: RollingReport = { rounds: options.rollingRestarts, restarts: [], ops: 0, failed: 0, failedExamples: [], refused: 0, slowestMs: 0, stalls: [] };
      rolling = report;
      // A stall: an operation in flight for more than 3 s. Once per stall, what every node and the
      // database were doing (the integration test's RAFT_STRESS rolling restart stalls for 10 s at times).
      let stallSince: number | undefined;
      let diagnosing = false;
      const diagnoses: Promise<void>[] = [];
      stallWatch = setInterval(() => {
        const t = now();
        const stuck = [...w.inFlight].filter((op) => t - op.invoke > 3_000);
        if (stuck.length === 0) {
          if (stallSince !== undefined) {
            const line = `stall over after ${((t - stallSince) / 1000).toFixed(1)} s`;
            report.stalls.push(line);
            say(`rolling restart: ${line}`);
          }
          stallSince = undefined;
          return;
        }
        if (stallSince !== undefined || diagnosing) return;
        stallSince = Math.min(...stuck.map((op) => op.invoke));
        diagnosing = true;
        const diagnosis = diagnoseStall(c, pg, runId, stuck, now)
          .then((lines) => {
            for (const l of lines) say(`STALL ${l}`);
            report.stalls.push(...lines);
          })
          .catch((e: unknown) => say(`stall diagnosis failed: ${(e as Error).message}`))
          .finally(() => (diagnosing = false));
        diagnoses.push(diagnosis);
      }, 250);
      for (let round = 1; round <= options.rollingRestarts; round++) {
        for (const node of c.list) {
          const before = await c.leader();
          const wasLeader = before?.nodeId === node.id;
          const started = now();
          if (options.rollingDrain) {
            // As a load balancer would: no new requests to it, and those under way answered, before SIGTERM.
            node.drained = true;
            const until = now() + 15_000;
            while (now() < until && [...w.inFlight].some((op) => op.node === node.id)) await sleep(20);
          }
          const r = await c.gracefulRestart(node);
          const serving = now();
          // Caught up: it follows a leader and has committed what the leader had committed when it came back.
          const after = await waitFor(() => c.leader(), 30_000);
          const target = after?.commitIndex ?? Infinity;
          const caught = await waitFor(async () => {
            const v = await c.status(node, 1_000);
            return v && v.pid === node.child?.pid && v.leaderId !== 0 && v.commitIndex >= target ? v : undefined;
          }, 30_000);
          const line =
            `round ${round}, node ${node.id}${wasLeader ? ' (the leader)' : ''}: ` +
            `exited ${(r.stopMs / 1000).toFixed(2)} s after SIGTERM (code ${r.exitCode}${r.exitedBy === 'SIGKILL' ? ', KILLED: no exit within the grace period' : ''}); ` +
            `${r.leaderAfterExit ? `leader ${r.leaderAfterExit.id} (term ${r.leaderAfterExit.term}) seen ${(r.leaderAfterExit.ms / 1000).toFixed(2)} s after the exit` : 'NO leader within 30 s of the exit'}; ` +
            `serving again ${(r.startMs / 1000).toFixed(2)} s after its start; leader then ${after ? `${after.nodeId} (term ${after.term})` : 'none within 30 s'}; ` +
            (caught ? `caught up (commit ${caught.commitIndex} ≥ ${target}) ${((now() - serving) / 1000).toFixed(2)} s later` : `NOT caught up within 30 s (wanted commit ≥ ${target})`) +
            `; ${((now() - started) / 1000).toFixed(1)} s in all`;
          node.drained = false;
          report.restarts.push(line);
          say(`rolling restart: ${line}`);
          if (r.exitedBy === 'SIGKILL') failures.push(`rolling restart: node ${node.id} did not exit within 15 s of SIGTERM`);
          if (!r.leaderAfterExit) failures.push(`rolling restart: no leader within 30 s of node ${node.id}'s exit`);
          if (!caught) failures.push(`rolling restart: node ${node.id} did not catch up within 30 s of its restart`);
          await sleep(1_000);
        }
      }
      await sleep(1_000);
      clearInterval(stallWatch);
      stallWatch = undefined;
      await Promise.all(diagnoses);
      if (stallSince !== undefined) report.stalls.push(`stall still on at the end of the phase (since ${(stallSince / 1000).toFixed(2)} s)`);
      await w.stop();
      const phaseOps = w.history.filter((op) => op.clientId !== 0 && op.invoke >= phaseStart);
      report.ops = phaseOps.length;
      for (const op of phaseOps) {
        if (op.outcome === 'ok') report.slowestMs = Math.max(report.slowestMs, op.complete - op.invoke);
        else if (op.status === 'ECONNREFUSED') report.refused++;
        else {
          report.failed++;
          if (report.failedExamples.length < 10) {
            const end = Number.isFinite(op.complete) ? op.complete : (op.ended ?? now());
            report.failedExamples.push(`${op.kind} ${op.key} via node ${op.node} at ${(op.invoke / 1000).toFixed(2)} s: ${op.status}${op.error ? ` ${op.error}` : ''} after ${((end - op.invoke) / 1000).toFixed(2)} s`);
          }
        }
      }
      say(`rolling restart: ${report.ops} operations, ${report.failed} failed, ${report.refused} refused connections rerouted, slowest success ${(report.slowestMs / 1000).toFixed(2)} s`);
      if (report.failed > 0) failures.push(`rolling restart: ${report.failed} client requests failed, e.g. ${report.failedExamples.slice(0, 5).join('; ')}`);
    }
    await w.stop();
    clearInterval(progress);
    progress = undefined;

    // ---------------------------------------------------------------- final reads and quiescence
    const all = await allCaughtUp();
    if (all) fullyHealedInS ??= (now() - healAt) / 1000;
    else failures.push(`not every node was back in the cluster and caught up within 30 s of settling (members: ${(await c.leader())?.members.map((m) => m.id).join(',') ?? 'no leader'})`);
    const leaderNow = await c.leader();
    commitBeforeFinalReads = leaderNow?.commitIndex ?? 0;
    // At most FINAL_READS_LIMIT_MS in all: a wedged cluster fails the run here rather than hang it
    // (up to 5 tries of 12 s per key would be 20 minutes).
    const readsStart = now();
    const readsDeadline = readsStart + FINAL_READS_LIMIT_MS;
    const notTried: string[] = [];
    for (let k = 0; k < options.keys; k++) {
      const key = keyName(k);
      let read: RecordedOp | undefined;
      for (let attempt = 0; attempt < 5 && read?.outcome !== 'ok'; attempt++) {
        const left = readsDeadline - now();
        if (left < 100) break;
        const l = (await c.leader(Math.min(800, left))) ?? leaderNow;
        const target = l ? c.node(l.nodeId) : c.list[0]!;
        read = await w.single(0, { id: target.id, url: target.apiUrl }, 'read', key, undefined, Math.max(100, Math.min(options.clientTimeoutMs, readsDeadline - now())));
      }
      if (read) finalReads.set(key, read);
      else notTried.push(key);
    }
    const unanswered = [...finalReads].filter(([, r]) => r.outcome !== 'ok');
    if (now() >= readsDeadline - 100 && (notTried.length > 0 || unanswered.length > 0)) {
      const views = await Promise.all(c.list.map(async (n) => ({ n, v: await c.status(n, 1_000) })));
      failures.push(
        `final reads: gave up after ${((now() - readsStart) / 1000).toFixed(1)} s (the limit is ${FINAL_READS_LIMIT_MS / 1000} s in all): ` +
          `${options.keys - notTried.length - unanswered.length} of ${options.keys} keys read, ${unanswered.length} unanswered (${unanswered
            .slice(0, 5)
            .map(([k, r]) => `${k}: ${r.status}`)
            .join(', ')}), ${notTried.length} not tried — the cluster looks wedged; nodes now: ${views
            .map(({ n, v }) => `${n.id} ${v ? `${v.role} term ${v.term} leader ${v.leaderId} commit ${v.commitIndex}` : n.running ? 'no answer' : 'down'}`)
            .join('; ')}`,
      );
    }
    // Quiesce: every member has the leader's commit index, twice in a row.
    await waitFor(async () => {
      const l = await c.leader();
      if (!l) return undefined;
      const views = await Promise.all(c.list.map((n) => c.status(n, 1_000)));
      if (!views.every((v) => v && v.commitIndex === l.commitIndex)) return undefined;
      finalViews = views as ClusterView[];
      await sleep(300);
      const again = await Promise.all(c.list.map((n) => c.status(n, 1_000)));
      return again.every((v, i) => v && v.commitIndex === finalViews[i]!.commitIndex) ? true : undefined;
    }, 15_000);
    if (finalViews.length === 0) finalViews = (await Promise.all(c.list.map((n) => c.status(n, 1_000)))).filter((v): v is ClusterView => !!v);
    await c.stopAll();
    await c.closeProxies();
    if (!pg.isUp) await pg.start();

    // ---------------------------------------------------------------- checks
    say('checking');
    const states = await Promise.all(c.list.flatMap((n) => n.incarnations).map((inc) => readStoredState(pg, inc)));
    const finalMembers = finalViews.map((v) => ({ database: c.node(v.nodeId).current.database, commitIndex: v.commitIndex }));
    checks = runChecks({
      history: w.history,
      states,
      finalMembers,
      leadersByTerm: c.leadersByTerm,
      checkTimeoutMs: options.checkTimeoutMs,
      finalReads,
      commitBeforeFinalReads,
      snapshotEvery,
      trailingEntries: snapshotTrailing,
    });
    if (!checks.linearizable) failures.push(`not linearizable: ${checks.linearizabilityExplanation ?? ''}`);
    if (checks.lost.length) failures.push(`${checks.lost.length} acknowledged writes lost, e.g. ${checks.lost.slice(0, 5).map((l) => `${l.kind} ${l.key}=${l.value} (op ${l.id} via node ${l.node})`).join(', ')}`);
    if (checks.duplicates.length) failures.push(`${checks.duplicates.length} writes applied twice, e.g. ${checks.duplicates.slice(0, 3).map((d) => `${d.key}=${d.value} at ${d.indices.join('/')} [${d.sessions.join(' ')}]`).join('; ')}`);
    if (checks.failedButCommitted.length) failures.push(`${checks.failedButCommitted.length} operations answered as certainly failed are in the committed log, e.g. ${checks.failedButCommitted.slice(0, 3).map((f) => `${f.key}=${f.value}@${f.index}`).join(', ')}`);
    if (checks.finalStateMismatches.length) {
      failures.push(
        `final state differs from the replay of the committed log (a command applied twice, or committed and then not applied — e.g. refused at apply; see the 500 answers): ${checks.finalStateMismatches.slice(0, 3).join('; ')}`,
      );
    }
    if (checks.logAgreement.problems.length) failures.push(`committed logs disagree: ${checks.logAgreement.problems.slice(0, 3).join('; ')}`);
    if (checks.votes.problems.length) failures.push(`vote safety: ${checks.votes.problems.slice(0, 3).join('; ')}`);
    if (checks.electionSafety.length) failures.push(`two leaders in one term: ${checks.electionSafety.slice(0, 3).join('; ')}`);
    if (nem.learnersOn) {
      const lr = nem.learners;
      const polls = c.learnerPolls;
      learners = {
        ...lr,
        problems: [...lr.problems, ...polls.violations, ...checks.learners.problems],
        polls: polls.polls,
        incarnations: checks.learners.incarnations,
        votesForOthers: checks.learners.votesForOthers,
      };
      if (lr.problems.length) failures.push(`learners did not catch up: ${lr.problems.slice(0, 3).join('; ')}`);
      if (polls.violations.length) failures.push(`a learner campaigned or led: ${polls.violations.slice(0, 3).join('; ')}`);
      if (checks.learners.problems.length) failures.push(`a learner campaigned: ${checks.learners.problems.slice(0, 3).join('; ')}`);
    }
    if (checks.undecodable) failures.push(`${checks.undecodable} committed commands could not be decoded`);
    if (checks.snapshots.problems.length) failures.push(`snapshots: ${checks.snapshots.problems.slice(0, 3).join('; ')}`);
    // (A run that committed little may take none: only one that committed twice SNAPSHOT_EVERY must.)
    if (snapshotEvery > 0 && checks.snapshots.taken === 0 && checks.logAgreement.committedIndex >= 2 * snapshotEvery) {
      failures.push(`SNAPSHOT_EVERY=${snapshotEvery}, ${checks.logAgreement.committedIndex} entries committed, and no node took a snapshot`);
    }
    if (checks.outcomes.ok === 0) failures.push('no operation succeeded: the run tested nothing');
    if (recoveredInS !== undefined && recoveredInS > options.recoveryLimitS) failures.push(`recovery took ${recoveredInS.toFixed(2)} s (limit ${options.recoveryLimitS} s)`);
    if (options.failpoints) {
      for (const f of FAILPOINT_NAMES) {
        const kills = c.failpointKills.get(f)!;
        if (kills < options.failpointTarget) failures.push(`failpoint ${f} killed a node ${kills} times (wanted ${options.failpointTarget})`);
      }
    }
  } catch (error) {
    failures.push(`harness error: ${(error as Error).stack ?? String(error)}`);
  } finally {
    clearInterval(progress);
    clearInterval(stallWatch);
    if (workload) await Promise.race([workload.stop(), sleep(15_000)]);
    if (cluster) {
      await cluster.stopAll(1_000).catch(() => undefined);
      await cluster.closeProxies().catch(() => undefined);
    }
    await pg.close().catch((e: unknown) => say(`postgres cleanup: ${(e as Error).message}`));
  }

  const ops = checks?.ops ?? workload?.count ?? 0;
  const lost = checks?.lost.length ?? 0;
  const duplicated = checks?.duplicates.length ?? 0;
  const snaps = checks ? `, snapshots ${checks.snapshots.taken} taken/${checks.snapshots.installed} installed` : '';
  const rr = rolling ? `, rolling restarts: ${rolling.failed} failed requests (${rolling.refused} refused, rerouted)` : '';
  const lrn = nemesis?.learnersOn ? `, learners ${nemesis.learners.added} added/${nemesis.learners.promoted} promoted/${nemesis.learners.removed} removed` : '';
  const summary = `chaos: ${ops} ops, ${lost} lost, ${duplicated} duplicated, linearizable: ${checks?.linearizable ? 'yes' : 'no'}${snaps}${lrn}, recovered in ${recoveredInS !== undefined ? recoveredInS.toFixed(2) : 'never'} s${rr}`;
  const result: ChaosResult = {
    ok: failures.length === 0,
    seed: options.seed,
    options,
    failures,
    ...(checks ? { checks } : {}),
    ...(recoveredInS !== undefined ? { recoveredInS } : {}),
    ...(fullyHealedInS !== undefined ? { fullyHealedInS } : {}),
    faults: Object.fromEntries(nemesis?.counts ?? []),
    network: { ...network.stats },
    failpointKills: Object.fromEntries(cluster?.failpointKills ?? FAILPOINT_NAMES.map((f) => [f, 0])) as Record<FailpointName, number>,
    nodeStarts: cluster?.list.reduce((s, n) => s + n.starts, 0) ?? 0,
    installLines: cluster?.list.reduce((s, n) => s + n.installLines, 0) ?? 0,
    postgres: pg.describe(),
    support,
    summary,
    wallS: (Date.now() - wallStart) / 1000,
    ...(rolling ? { rolling } : {}),
    ...(learners ? { learners } : nemesis?.learnersOn ? { learners: { ...nemesis.learners, polls: cluster?.learnerPolls.polls ?? 0, incarnations: 0, votesForOthers: 0 } } : {}),
  };
  if (!result.ok || options.save) {
    const dir = resolve(ROOT, options.historyDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${options.seed}${options.unsafe ? `-unsafe-${options.unsafe}` : ''}${options.failpoints ? '-failpoints' : ''}`);
    mkdirSync(dir, { recursive: true });
    const history = (workload?.history ?? []).map((op) => ({ ...op, complete: Number.isFinite(op.complete) ? op.complete : null }));
    writeFileSync(join(dir, 'history.json'), JSON.stringify(history));
    writeFileSync(join(dir, 'faults.json'), JSON.stringify(nemesis?.events ?? [], null, 1));
    writeFileSync(join(dir, 'result.json'), JSON.stringify({ ...result, finalViews, commitBeforeFinalReads, finalReads: Object.fromEntries(finalReads) }, null, 2));
    for (const n of cluster?.list ?? []) {
      const file = join(runDir, `node-${n.id}.log`);
      if (existsSync(file)) cpSync(file, join(dir, `node-${n.id}.log`));
    }
    result.historyPath = dir;
  }
  rmSync(runDir, { recursive: true, force: true });
  process.removeListener('exit', emergency);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(signal, onSignal);
  return result;
}

/** What every node and the database are doing while client operations hang (the rolling-restart phase). */
async function diagnoseStall(c: ChaosCluster, pg: Awaited<ReturnType<typeof startPostgres>>, runId: string, stuck: RecordedOp[], now: () => number): Promise<string[]> {
  const t = now();
  const since = Math.min(...stuck.map((op) => op.invoke)) - 5_000;
  const lines = [
    `at ${(t / 1000).toFixed(2)} s: ${stuck.length} operations in flight for more than 3 s: ${stuck
      .slice(0, 6)
      .map((op) => `${op.kind} ${op.key} via node ${op.node} since ${(op.invoke / 1000).toFixed(2)} s`)
      .join(', ')}`,
  ];
  for (const e of c.timeline.filter((e) => e.at >= since)) lines.push(`  ${(e.at / 1000).toFixed(2)} s node ${e.node}: ${e.what}`);
  // Each node process as the kernel sees it, twice 1 s apart: a process burning a whole core with
  // its event loop stuck differs from one asleep (waiting) and from one starved of CPU.
  const procs = c.list.map((n) => n.child?.pid).filter((p): p is number => p !== undefined);
  const first = new Map(procs.map((p) => [p, procStat(p)]));
  await sleep(1_000);
  for (const n of c.list) {
    const pid = n.child?.pid;
    if (pid === undefined) continue;
    const a = first.get(pid);
    const b = procStat(pid);
    if (a && b) lines.push(`  node ${n.id} pid ${pid}: state ${a.state}→${b.state}, CPU ${(((b.ticks - a.ticks) / 100) * 100).toFixed(0)} % over 1 s, ${b.threads} threads, wchan ${b.wchan}`);
  }
  for (const n of c.list) {
    const v = await c.status(n, 2_000);
    let stored = '';
    try {
      const rows = await pg.query<{ last: string | null; start: string | null; commit: string | null }>(
        n.current.database,
        `SELECT (SELECT max("index") FROM raft_log_entries WHERE cluster_id = $1 AND node_id = $2)::text AS last,
                (SELECT log_start_index FROM raft_base_configuration WHERE cluster_id = $1 AND node_id = $2)::text AS start,
                (SELECT commit_index FROM raft_hard_state WHERE cluster_id = $1 AND node_id = $2)::text AS commit`,
        [CLUSTER_ID, n.id],
      );
      stored = `stored log ${rows[0]?.start ?? 0}..${rows[0]?.last ?? '-'}, durable commit ${rows[0]?.commit ?? '-'}`;
    } catch (error) {
      stored = `store unreadable: ${(error as Error).message}`;
    }
    lines.push(
      `node ${n.id} (pid ${n.child?.pid ?? '-'}${n.running ? '' : ', down'}): ${
        v
          ? `${v.role} term ${v.term} leader ${v.leaderId} commit ${v.commitIndex}${v.appliedIndex !== undefined ? ` applied ${v.appliedIndex} last ${v.lastIndex} log start ${v.logStartIndex}` : ''}`
          : 'no answer to /cluster'
      }; ${stored}`,
    );
  }
  try {
    const activity = await pg.query<{ datname: string; app: string; state: string; wait: string | null; xact_ms: string | null; query_ms: string | null; query: string }>(
      undefined,
      `SELECT datname, application_name AS app, state, wait_event_type || ':' || wait_event AS wait,
              (extract(epoch FROM clock_timestamp() - xact_start) * 1000)::int::text AS xact_ms,
              (extract(epoch FROM clock_timestamp() - query_start) * 1000)::int::text AS query_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 120) AS query
       FROM pg_stat_activity WHERE datname LIKE $1 AND pid <> pg_backend_pid() AND state <> 'idle' ORDER BY xact_start NULLS LAST`,
      [`${runId}%`],
    );
    lines.push(`pg_stat_activity: ${activity.length} busy backends${activity.length ? ':' : ''}`);
    for (const a of activity.slice(0, 12)) lines.push(`  ${a.app} ${a.state} wait=${a.wait ?? '-'} xact ${a.xact_ms ?? '-'} ms, query ${a.query_ms ?? '-'} ms: ${a.query}`);
  } catch (error) {
    lines.push(`pg_stat_activity unreadable: ${(error as Error).message}`);
  }
  // And how it went on: the same timeline, a few seconds later (the diagnosis above is from the stall's start).
  await sleep(8_000);
  lines.push(`then: ${c.timeline.filter((e) => e.at > t).map((e) => `${(e.at / 1000).toFixed(2)} s node ${e.node}: ${e.what}`).join('; ') || 'no change'}`);
  return lines;
}

/** /proc/PID/stat: state, user+system CPU ticks (USER_HZ = 100), threads; and wchan. */
function procStat(pid: number): { state: string; ticks: number; threads: number; wchan: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let wchan = '?';
    try {
      wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8') || '0';
    } catch {
      // not readable here
    }
    return { state: fields[0]!, ticks: Number(fields[11]) + Number(fields[12]), threads: Number(fields[17]), wchan };
  } catch {
    return undefined;
  }
}

/**
 * The failpoints armed together in one phase. The vote and mid-batch points fire at every election
 * (alone, they keep the cluster busy enough); the others are rarer and pair up with one that the same
 * faults lead to: snapshots are taken while entries are applied, and a node re-added with an empty
 * store by a membership change installs the leader's snapshot.
 */
const FAILPOINT_GROUPS: readonly (readonly FailpointName[])[] = [
  ['after-vote-persist'],
  ['mid-batch-persist'],
  ['after-commit-before-apply', 'after-snapshot-persist'],
  ['during-config-change', 'after-snapshot-install'],
];

async function waitFor<T>(check: () => Promise<T | undefined>, limitMs: number, everyMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      // try again
    }
    await sleep(everyMs);
  }
  return undefined;
}

export type { FaultEvent };
