/**
 * `npm run fuzz -- --requests 10000 [--seed N] [--concurrency 16]`: hostile traffic against a live
 * 3-node cluster of the sample (see fuzzer.ts). Prints progress, then, last, exactly
 * `fuzz: N requests, A accepted, E 5xx, C crashes, state unchanged: yes|no`; exits non-zero on any failure.
 */
import { runFuzz } from './fuzzer.js';

function option(name: string, fallback: number): number {
  const args = process.argv.slice(2);
  const at = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (at < 0) return fallback;
  const text = args[at]!.includes('=') ? args[at]!.split('=')[1] : args[at + 1];
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}

const requests = option('requests', 10_000);
const seed = option('seed', Date.now() % 1_000_000);
const concurrency = Math.max(1, option('concurrency', 16));
console.log(`fuzz: seed ${seed} (replay the same requests with --seed ${seed}), ${requests} requests, ${concurrency} at a time`);
const result = await runFuzz({ requests, seed, concurrency, log: (line) => console.log(line) });
for (const problem of result.problems) console.log(`fuzz: PROBLEM ${problem}`);
if (result.noAnswer || result.unexpected) console.log(`fuzz: ${result.noAnswer} without an answer, ${result.unexpected} not the expected answer`);
console.log(result.line);
process.exit(result.ok ? 0 : 1);
