/**
 * Measures what a batch costs in TypeOrmStorage, on a real PostgreSQL and on EmbeddedPostgres:
 * a commit of one entry, a commit of 64 entries in one multi-row INSERT, 64 one-row INSERTs in one
 * transaction (what one INSERT per entry would cost), and loading 100,000 entries.
 *
 *   npx tsx test/storage/storage-bench.ts            (RAFT_TEST_DATABASE_URL, or the local server)
 *   BENCH_ROUNDS=200 npx tsx test/storage/storage-bench.ts
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import type { Entry } from '../../lib/core/types.js';
import { EmbeddedPostgres } from '../../lib/storage/embedded/index.js';
import { TypeOrmStorage, type TypeOrmStorageOptions } from '../../lib/storage/typeorm/index.js';
import { DATABASE_URL, uniqueName } from './fixtures.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 100);
const LOAD_ENTRIES = 100_000;
const payload = (index: number) => new Uint8Array(64).fill(index & 0xff);
const entry = (index: number, term = 1): Entry => ({ index, term, type: 'command', command: payload(index) });
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => entry(from + i));

async function timeEach(rounds: number, work: (round: number) => Promise<void>): Promise<number> {
  for (let i = 0; i < 5; i++) await work(-1 - i); // warm up
  const start = performance.now();
  for (let i = 0; i < rounds; i++) await work(i);
  return (performance.now() - start) / rounds;
}

async function bench(label: string, options: Omit<TypeOrmStorageOptions, 'nodeId'>, raw: pg.ClientConfig, schema: string | undefined): Promise<void> {
  console.log(`\n${label}`);
  const clusterId = uniqueName('bench');
  const storage = new TypeOrmStorage({ nodeId: 1, clusterId, ...options });
  await storage.load();
  await storage.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [] });
  let last = 0;

  const one = await timeEach(ROUNDS, async () => {
    await storage.save({ entries: [entry(++last)] });
  });
  const sixtyFour = await timeEach(ROUNDS, async () => {
    await storage.save({ entries: range(last + 1, 64) });
    last += 64;
  });
  const withHardState = await timeEach(ROUNDS, async () => {
    await storage.save({ hardState: { term: 1, vote: 1, commit: last }, entries: range(last + 1, 64) });
    last += 64;
  });
  await storage.close();

  // The same 64 rows as 64 INSERT statements in one transaction, on a plain connection.
  const client = new pg.Client(raw);
  await client.connect();
  const table = `${schema ? `"${schema}".` : ''}raft_log_entries`;
  const separate = await timeEach(Math.max(10, ROUNDS / 4), async () => {
    await client.query('BEGIN');
    for (let i = 0; i < 64; i++) {
      const e = entry(++last);
      await client.query(`INSERT INTO ${table} (cluster_id, node_id, "index", term, type, command, config) VALUES ($1, 1, $2, $3, 'command', $4, NULL)`, [
        clusterId,
        e.index,
        e.term,
        Buffer.from(e.command),
      ]);
    }
    await client.query('COMMIT');
  });
  await client.end();

  console.log(`  commit of 1 entry (one INSERT):                      ${one.toFixed(2)} ms`);
  console.log(`  commit of 64 entries (one multi-row INSERT):         ${sixtyFour.toFixed(2)} ms  (${(sixtyFour / one).toFixed(1)}x)`);
  console.log(`  commit of hard state + 64 entries (BEGIN..COMMIT):   ${withHardState.toFixed(2)} ms  (${(withHardState / one).toFixed(1)}x)`);
  console.log(`  commit of 64 one-row INSERTs in one transaction:     ${separate.toFixed(2)} ms  (${(separate / one).toFixed(1)}x)`);

  // Loading a long log.
  const big = new TypeOrmStorage({ nodeId: 2, clusterId, ...options });
  await big.load();
  for (let from = 1; from <= LOAD_ENTRIES; from += 10_000) await big.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: range(from, 10_000) });
  await big.close();
  const reopened = new TypeOrmStorage({ nodeId: 2, clusterId, ...options });
  const start = performance.now();
  const state = await reopened.load();
  const loadMs = performance.now() - start;
  await reopened.close();
  if (state.entries.length !== LOAD_ENTRIES) throw new Error(`loaded ${state.entries.length} entries`);
  console.log(`  load() of ${LOAD_ENTRIES.toLocaleString('en')} entries (64-byte commands), connect + lock + checks + migrations included: ${loadMs.toFixed(0)} ms`);
}

const schema = uniqueName('raft_bench');
try {
  await bench(`PostgreSQL at ${DATABASE_URL.replace(/:[^:@/]*@/, '@')} (${ROUNDS} rounds)`, { dataSourceOptions: { url: DATABASE_URL, schema } }, { connectionString: DATABASE_URL }, schema);
} finally {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-raft-bench-'));
const embedded = await EmbeddedPostgres.start({ dataDir: dir, maxConnections: 2 });
try {
  // Two connections here (the storage's, then the raw one, never at once), only for this measurement.
  await bench(`EmbeddedPostgres on ${dir} (${ROUNDS} rounds)`, embedded.storageOptions(), { ...embedded.connectionOptions(), user: 'postgres' }, undefined);
} finally {
  await embedded.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
