import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Configuration, Entry } from '../../lib/core/types.js';
import type { StorageBatch } from '../../lib/storage/storage.js';

/** The PostgreSQL of the tests: `RAFT_TEST_DATABASE_URL`, or the local one. */
export const DATABASE_URL = process.env.RAFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether {@link DATABASE_URL} answers. When the variable is set, a database is expected, so the
 * tests run (and fail) anyway; without it, the real-server tests are skipped on a machine that has none.
 */
export async function realPostgresAvailable(): Promise<boolean> {
  if (process.env.RAFT_TEST_DATABASE_URL) return true;
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    return true;
  } catch {
    console.warn(`no PostgreSQL at ${DATABASE_URL}: skipping the real-server storage tests (set RAFT_TEST_DATABASE_URL to require them)`);
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A name no other test (or test file running in parallel) uses: a cluster id or a schema. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

/** Runs `work` with a plain `pg` client on `url` (another process, as far as the storage can tell). */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

export function command(index: number, term: number, payload: Uint8Array = bytes(index & 0xff, 0, 255, 0)): Entry {
  return { index, term, type: 'command', command: payload };
}

export function noop(index: number, term: number): Entry {
  return { index, term, type: 'noop', command: new Uint8Array(0) };
}

export function config(index: number, term: number, configuration: Configuration): Entry {
  return { index, term, type: 'config', command: new Uint8Array(0), config: configuration };
}

/** `count` command entries from `from`, all in `term`. */
export function commands(from: number, count: number, term: number): Entry[] {
  return Array.from({ length: count }, (_, i) => command(from + i, term));
}

export const THREE_NODES: Configuration = {
  voters: [1, 2, 3],
  addresses: { '1': 'http://127.0.0.1:3001', '2': 'http://127.0.0.1:3002', '3': 'http://127.0.0.1:3003' },
};

export const JOINT_FOUR_NODES: Configuration = {
  voters: [1, 2, 3, 4],
  outgoing: [1, 2, 3],
  addresses: { '1': 'http://127.0.0.1:3001', '2': 'http://127.0.0.1:3002', '3': 'http://127.0.0.1:3003', '4': 'http://127.0.0.1:3004' },
};

/**
 * The endless, deterministic sequence of batches of the crash test: a bootstrap batch, then appends,
 * with every fifth batch rewriting the last two entries as a new leader's truncation would.
 */
export function* crashWorkload(): Generator<StorageBatch> {
  yield { baseConfiguration: THREE_NODES, hardState: { term: 1, vote: 1, commit: 0 }, entries: [] };
  let last = 0;
  for (let round = 1; ; round++) {
    const term = 1 + Math.floor(round / 10);
    const truncateFrom = round % 5 === 0 && last > 2 ? last - 1 : undefined;
    const from = truncateFrom ?? last + 1;
    const entries = Array.from({ length: 1 + (round % 7) }, (_, i) => command(from + i, term, bytes(round & 0xff, 0, i)));
    yield { hardState: { term, vote: 1, commit: Math.max(0, from - 1) }, ...(truncateFrom ? { truncateFrom } : {}), entries };
    last = entries.at(-1)!.index;
  }
}

/**
 * A data directory initialized once by EmbeddedPostgres (initdb takes seconds of CPU), kept in the
 * temporary directory across runs and keyed by the PGlite version, for tests to copy: a copy starts
 * in a fraction of a second. Several test files may ask at once: each builds its own and renames it
 * into place; the first rename wins.
 */
export async function embeddedTemplate(): Promise<string> {
  const { createRequire } = await import('node:module');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { EmbeddedPostgres } = await import('../../lib/storage/embedded/index.js');
  // The package does not export its package.json: find it from its entry point.
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const packageJson = path.join(entry.slice(0, entry.lastIndexOf(`${path.sep}dist${path.sep}`)), 'package.json');
  const version = (JSON.parse(fs.readFileSync(packageJson, 'utf8')) as { version: string }).version;
  const template = path.join(os.tmpdir(), `nestjs-raft-test-template-pglite-${version}`);
  if (fs.existsSync(path.join(template, 'pgdata', 'PG_VERSION'))) return template;
  const building = `${template}.${randomUUID()}`;
  await (await EmbeddedPostgres.start({ dataDir: building })).stop();
  try {
    fs.renameSync(building, template);
  } catch {
    fs.rmSync(building, { recursive: true, force: true }); // another file won the race
  }
  return template;
}

/** A new embedded data directory at `target`, copied from {@link embeddedTemplate}. */
export async function embeddedDataDir(target: string): Promise<string> {
  const { cpSync } = await import('node:fs');
  cpSync(await embeddedTemplate(), target, { recursive: true });
  return target;
}
