/**
 * One chaos run: PostgreSQL, proxies, nodes, workload, faults, recovery, checks; see README.md.
 */
import { execFile as execFileCb } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Prng } from '../sim/prng.js';
import { readStoredState, runChecks, type ChaosChecks } from './checks.js';
import { Nemesis, type FaultEvent } from './nemesis.js';
import { ChaosCluster, detectSampleSupport, type ClusterView, type SampleSupport } from './nodes.js';
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
  postgres: string;
  support: SampleSupport;
  summary: string;
  historyPath?: string;
  wallS: number;
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
  say(`seed ${options.seed}: ${options.nodes} nodes, ${options.clients} clients, ${options.keys} keys, ${options.durationS} s of faults [${options.faults.join(', ') || 'none'}]${options.unsafe ? `, UNSAFE ${options.unsafe}` : ''}${options.failpoints ? ', failpoints' : ''}; ${pg.describe()}`);

  let workload: Workload | undefined;
  let nemesis: Nemesis | undefined;
  let checks: ChaosChecks | undefined;
  let recoveredInS: number | undefined;
  let fullyHealedInS: number | undefined;
  let progress: NodeJS.Timeout | undefined;
  const finalReads = new Map<string, RecordedOp>();
  let commitBeforeFinalReads = 0;
  let finalViews: ClusterView[] = [];
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
        targets: () => c.list.map((n) => ({ id: n.id, url: n.apiUrl })),
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
        const fp = options.failpoints ? ` failpoint kills: ${FAILPOINT_NAMES.map((f) => `${f}=${c.failpointKills.get(f)}`).join(' ')} (armed: ${c.failpointPhase})` : '';
        say(`${h.length} ops (${ok} ok, +${done}), ${w.pending} in flight; up: ${c.list.filter((n) => n.running).map((n) => n.id).join(',')}; faults: ${faults || 'none yet'}${fp}`);
      }, options.progressMs);
    }
    if (options.failpoints) {
      // Phases of one failpoint each: arm it in every node (a rolling restart), make the faults that
      // lead to it more frequent, and move on once it has its kills or after 20 s; round after round,
      // the points still short of their target (fewest kills first), until the time is up.
      const end = faultStart + options.durationS * 1000;
      for (;;) {
        const short = FAILPOINT_NAMES.filter((f) => c.failpointKills.get(f)! < options.failpointTarget).sort((a, b) => c.failpointKills.get(a)! - c.failpointKills.get(b)!);
        if (short.length === 0 || now() >= end - 3_000) break;
        const f = short[0]!;
        c.failpointPhase = f;
        nem.focus = f;
        say(`failpoint phase: ${f} (${c.failpointKills.get(f)} kills so far)`);
        await c.rollingRestart();
        const phaseEnd = Math.min(end, now() + 20_000);
        while (now() < phaseEnd && c.failpointKills.get(f)! < options.failpointTarget) await sleep(200);
      }
      nem.focus = undefined;
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
    await w.stop();
    clearInterval(progress);
    progress = undefined;

    // ---------------------------------------------------------------- final reads and quiescence
    const all = await waitFor(async () => {
      const l = await c.leader();
      if (!l || l.members.length !== options.nodes) return undefined;
      const views = await Promise.all(c.list.map((n) => c.status(n, 1_000)));
      return views.every((v) => v && v.commitIndex === l.commitIndex && v.leaderId === l.nodeId) ? l : undefined;
    }, 30_000);
    if (all) fullyHealedInS = (now() - healAt) / 1000;
    else failures.push(`not every node was back in the cluster and caught up within 30 s of settling (members: ${(await c.leader())?.members.map((m) => m.id).join(',') ?? 'no leader'})`);
    const leaderNow = await c.leader();
    commitBeforeFinalReads = leaderNow?.commitIndex ?? 0;
    for (let k = 0; k < options.keys; k++) {
      const key = keyName(k);
      let read: RecordedOp | undefined;
      for (let attempt = 0; attempt < 5 && read?.outcome !== 'ok'; attempt++) {
        const l = (await c.leader()) ?? leaderNow;
        const target = l ? c.node(l.nodeId) : c.list[0]!;
        read = await w.single(0, { id: target.id, url: target.apiUrl }, 'read', key);
      }
      finalReads.set(key, read!);
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
    if (checks.undecodable) failures.push(`${checks.undecodable} committed commands could not be decoded`);
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
  const summary = `chaos: ${ops} ops, ${lost} lost, ${duplicated} duplicated, linearizable: ${checks?.linearizable ? 'yes' : 'no'}, recovered in ${recoveredInS !== undefined ? recoveredInS.toFixed(2) : 'never'} s`;
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
    postgres: pg.describe(),
    support,
    summary,
    wallS: (Date.now() - wallStart) / 1000,
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
