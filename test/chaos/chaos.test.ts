import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defaultOptions } from './options.js';
import { runChaos } from './run.js';

/**
 * A short chaos run in `npm test`: the sample as three processes behind fault-injecting proxies,
 * kill -9, partitions, pauses, an abrupt PostgreSQL stop, membership changes, a voter turned into an
 * empty learner (caught up through InstallSnapshot, removed, added again, promoted), flaky links and
 * lagging followers for 20 s, with a fixed seed, snapshots every 50 entries; then the same verdicts as
 * `npm run chaos` (with compaction: the committed log put back together from the stores and their
 * shadows, snapshots checked against it, logs bounded). A failing run leaves its history in
 * bench/chaos/ and names it in the failure.
 *
 * Then a round of graceful rolling restarts, as a deployment does them: each node in turn is taken
 * out of the clients' rotation (its requests under way finish), stopped with SIGTERM (a leader hands
 * leadership over first), restarted, and put back once it caught up. It must fail no client request
 * (issue 7). RAFT_CHAOS_ROLLING=0 leaves it out (about 10 s less). A second, 15 s run has every
 * node serve reads from its lease (LEASE_READS=1), which must stay linearizable. Without taking the node out of
 * rotation first, a connection that reaches the kernel's accept queue in the instant the listener
 * closes is reset (about one in six restarts with this workload): no server can refuse those cleanly.
 */
function initdbAvailable(): boolean {
  const root = '/usr/lib/postgresql';
  if (existsSync(root) && readdirSync(root).some((v) => existsSync(join(root, v, 'bin', 'initdb')))) return true;
  return spawnSync('sh', ['-c', 'command -v initdb || pg_config --bindir']).status === 0;
}

async function sharedServerAvailable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

const rolling = process.env.RAFT_CHAOS_ROLLING !== '0';
const options = { ...defaultOptions(), seed: 20_261_129, durationS: 20, progressMs: 0, snapshotEvery: 50, rollingRestarts: rolling ? 1 : 0, rollingDrain: true };
const available = initdbAvailable() || (await sharedServerAvailable(options.sharedUrl));
if (!available) console.warn('chaos test skipped: no initdb for a throwaway PostgreSQL and no server at', options.sharedUrl);

describe.skipIf(!available)('chaos: the sample as 3 processes under faults', () => {
  it('loses no acknowledged write, applies nothing twice, stays linearizable and recovers', async () => {
    const lines: string[] = [];
    const result = await runChaos(options, { log: (line) => lines.push(line) });
    const report = [...lines, ...(result.learners?.lines ?? []).map((l) => `learner: ${l}`), ...result.failures.map((f) => `FAILURE: ${f}`), result.summary, result.historyPath ? `history: ${result.historyPath}` : ''].join('\n');
    expect(result.failures, report).toEqual([]);
    expect(result.checks!.lost, report).toEqual([]);
    expect(result.checks!.duplicates, report).toEqual([]);
    expect(result.checks!.linearizable, report).toBe(true);
    expect(result.recoveredInS, report).toBeLessThanOrEqual(10);
    expect(result.checks!.outcomes.ok, report).toBeGreaterThan(100);
    expect(Object.values(result.faults).reduce((a, b) => a + b, 0), report).toBeGreaterThan(10);
    expect(result.checks!.snapshots.taken, report).toBeGreaterThan(0);
    expect(result.checks!.snapshots.problems, report).toEqual([]);
    // The first learner change: a voter out, added back empty as a learner, caught up (through
    // InstallSnapshot: the leader has compacted by then), removed, added again, promoted; no learner
    // campaigned or led.
    const learners = result.learners!;
    expect(learners.added, report).toBeGreaterThanOrEqual(2);
    expect(learners.removed, report).toBeGreaterThanOrEqual(1);
    expect(learners.promoted, report).toBeGreaterThanOrEqual(1);
    expect(learners.caughtUp, report).toBeGreaterThanOrEqual(1);
    expect(learners.viaSnapshot, report).toBeGreaterThanOrEqual(1);
    expect(learners.polls, report).toBeGreaterThan(0);
    expect(learners.incarnations, report).toBeGreaterThanOrEqual(1);
    expect(learners.problems, report).toEqual([]);
    if (rolling) {
      expect(result.rolling?.restarts.length, report).toBe(3);
      expect(result.rolling?.ops, report).toBeGreaterThan(100);
      expect(result.rolling?.failed, report).toBe(0);
    }
  }, 240_000);

  it('with lease reads (LEASE_READS=1 on every node), reads stay linearizable under the same faults', async () => {
    const lines: string[] = [];
    process.env.LEASE_READS = '1'; // the harness hands its environment to the nodes (sample/src/config.ts reads it)
    let result: Awaited<ReturnType<typeof runChaos>>;
    try {
      result = await runChaos({ ...options, seed: 20_261_205, durationS: 15, rollingRestarts: 0 }, { log: (line) => lines.push(line) });
    } finally {
      delete process.env.LEASE_READS;
    }
    const report = [...lines, ...result.failures.map((f) => `FAILURE: ${f}`), result.summary, result.historyPath ? `history: ${result.historyPath}` : ''].join('\n');
    expect(result.failures, report).toEqual([]);
    expect(result.checks!.lost, report).toEqual([]);
    expect(result.checks!.linearizable, report).toBe(true);
    expect(result.checks!.outcomes.ok, report).toBeGreaterThan(100);
  }, 240_000);
});
