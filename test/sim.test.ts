/**
 * The deterministic cluster simulator as a test suite: many seeds of a hostile world must produce no
 * violation, a seed must replay byte for byte, and every negative control (one deliberately broken
 * rule) must be caught, which shows that the checkers can fail.
 *
 * A failure names the seed and the command that replays it with a step-by-step trace.
 */
import { describe, expect, it } from 'vitest';
import { BUGS, type BugName } from './sim/bugs.js';
import { replayCommand, runSeed, type RunOptions } from './sim/simulator.js';

/** Seeds per cluster size; 3 + 5 nodes together must be at least 300. */
const PLAN = [
  { nodes: 3, seeds: 300 },
  { nodes: 5, seeds: 200 },
  { nodes: 7, seeds: 20 },
] as const;
const CHUNK = 40;
/** A negative control must be caught within this many seeds. */
const BUG_BOUND = 200;

function failuresOf(options: Omit<RunOptions, 'seed'>, seeds: readonly number[]): string[] {
  const failures: string[] = [];
  for (const seed of seeds) {
    const result = runSeed({ ...options, seed });
    if (result.violations.length > 0) {
      failures.push(`seed ${seed}: ${result.violations.join(' | ')}\n  replay: ${replayCommand(seed, result.nodes, options.bug)}`);
    }
  }
  return failures;
}

/** Runs seeds 1, 2, … until one is caught; returns that seed and its first violation. */
function firstCaught(options: Omit<RunOptions, 'seed'>, bound: number): { seed: number; violation: string } | undefined {
  for (let seed = 1; seed <= bound; seed++) {
    const result = runSeed({ ...options, seed });
    if (result.violations.length > 0) return { seed, violation: result.violations[0]! };
  }
  return undefined;
}

describe('deterministic simulator', () => {
  for (const { nodes, seeds } of PLAN) {
    describe(`${nodes} nodes`, () => {
      for (let from = 1; from <= seeds; from += CHUNK) {
        const to = Math.min(seeds, from + CHUNK - 1);
        it(`seeds ${from}–${to}: no violation`, () => {
          const range = Array.from({ length: to - from + 1 }, (_, i) => from + i);
          const failures = failuresOf({ nodes }, range);
          expect(failures, failures.join('\n')).toEqual([]);
        });
      }
    });
  }

  it('replays a seed byte for byte (trace and outcome digest)', () => {
    const traceOf = (seed: number) => {
      const lines: string[] = [];
      const result = runSeed({ seed, nodes: 5, durationMs: 5_000, trace: (line) => lines.push(line) });
      return { lines, digest: result.digest };
    };
    const a = traceOf(11);
    const b = traceOf(11);
    expect(a.lines.length).toBeGreaterThan(1000);
    expect(b.lines).toEqual(a.lines);
    expect(b.digest).toBe(a.digest);
    expect(traceOf(12).digest).not.toBe(a.digest);
    // Tracing observes the run without changing it.
    expect(runSeed({ seed: 11, nodes: 5, durationMs: 5_000 }).digest).toBe(a.digest);
  });

  it('exercises the faults it claims to (leaders, crashes, partitions, membership changes, clients, lease reads)', () => {
    const totals = { leaderTerms: 0, crashes: 0, networkChanges: 0, configChangesCommitted: 0, opsOk: 0, opsUnknown: 0, committedEntries: 0, leaseReads: 0 };
    for (let seed = 1; seed <= 10; seed++) {
      const { stats } = runSeed({ seed, nodes: 5 });
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += stats[key];
    }
    expect(totals.leaderTerms).toBeGreaterThan(50);
    expect(totals.crashes).toBeGreaterThan(100);
    expect(totals.networkChanges).toBeGreaterThan(100);
    expect(totals.configChangesCommitted).toBeGreaterThan(5);
    expect(totals.opsOk).toBeGreaterThan(1000);
    expect(totals.opsUnknown).toBeGreaterThan(0);
    expect(totals.committedEntries).toBeGreaterThan(1000);
    expect(totals.leaseReads).toBeGreaterThan(0); // some seeds serve reads from the leader's lease
  });

  describe('negative controls: each broken rule is caught', () => {
    const bugs = Object.keys(BUGS) as BugName[];
    for (const bug of bugs) {
      it(`${bug} within ${BUG_BOUND} seeds`, () => {
        const caught = firstCaught({ nodes: 3, bug }, BUG_BOUND);
        expect(caught, `${bug} was not caught in ${BUG_BOUND} seeds`).toBeDefined();
      });
    }

    // These three are first seen by each server's own promises (a vote or an acknowledgement that
    // was not durable); the cluster-wide invariants of Figure 3 must catch them too, later.
    for (const bug of ['forget-vote-on-restart', 'truncate-after-prev', 'reply-before-persist'] as const) {
      it(`${bug} within ${BUG_BOUND} seeds by the cluster-wide invariants alone`, () => {
        const caught = firstCaught({ nodes: 3, bug, promiseChecks: false }, BUG_BOUND);
        expect(caught, `${bug} was not caught in ${BUG_BOUND} seeds without the promise checks`).toBeDefined();
      });
    }
  });
});
