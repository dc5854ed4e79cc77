import { describe, expect, it } from 'vitest';
import { runFuzz } from './fuzzer.js';

/**
 * A short run of `npm run fuzz` (see fuzzer.ts): 1500 hostile requests against a live 3-node cluster
 * of the sample — nothing accepted, no 5xx, no crash, every node's persisted log, term and vote
 * unchanged, and the cluster still commits. `FUZZ_SEED` replays a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_129);

describe('the fuzzer against a live cluster', () => {
  it('1500 hostile requests: 0 accepted, 0 5xx, 0 crashes, state unchanged', async () => {
    const lines: string[] = [];
    const result = await runFuzz({ requests: 1500, seed: SEED, concurrency: 16, log: (line) => lines.push(line) });
    const report = [...lines, ...result.problems.map((p) => `PROBLEM ${p}`), result.line].join('\n');
    expect(result.problems, report).toEqual([]);
    expect(result.line, report).toBe(`fuzz: ${result.requests} requests, 0 accepted, 0 5xx, 0 crashes, state unchanged: yes`);
    expect(result.ok, report).toBe(true);
    expect(result.requests).toBeGreaterThanOrEqual(1500);
    // The run reached every kind of refusal (not only the first line of defence).
    for (const status of ['400', '401', '403', '404', '409', '412', '413', '415', '429']) expect(result.statuses[status], `${status} in ${JSON.stringify(result.statuses)}`).toBeGreaterThan(0);
  }, 120_000);
});
