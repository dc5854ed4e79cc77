/**
 * The physical floor of a replicated write on this machine, measured the way issue 6 quotes it:
 * one durable PostgreSQL commit from node-postgres, and one keep-alive HTTP round trip between two
 * Node processes on loopback. One unbatched replicated write needs at least leader commit + round
 * trip + follower commit.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import pg from 'pg';
import { fmt, summarize, type LatencySummary } from './bench-stats.js';
import { freePort, waitFor } from './bench-procs.js';

export interface FloorResult {
  /** One INSERT of a 100-byte row, autocommit (one round trip, one WAL flush). */
  readonly pgCommit: LatencySummary;
  /** BEGIN; INSERT of 256 rows × 100 B in one statement; COMMIT — a group-committed batch. */
  readonly pgBatch256: LatencySummary;
  /** POST of 100 bytes to another Node process, answer ~30 bytes, keep-alive. */
  readonly httpRoundTrip: LatencySummary;
  /** pgCommit p50 × 2 + httpRoundTrip p50. */
  readonly replicatedWriteFloorMs: number;
  /** For comparison: a keep-alive GET /cluster to an idle node of the sample (Nest on the sample's platform). */
  readonly nestRoundTrip?: LatencySummary;
  /** The library's TypeOrmStorage.save() alone (an idle process): hard state + 1 entry, and + 256 entries. */
  readonly storageSave1?: LatencySummary;
  readonly storageSave256?: LatencySummary;
}

/** What measureStorageSave needs of a storage: the RaftStorage contract, loosely typed (it comes from dist/). */
export interface SaveableStorage {
  load(): Promise<unknown>;
  save(batch: { hardState?: { term: number; vote: number; commit: number }; entries: readonly { index: number; term: number; type: 'command'; command: Uint8Array }[] }): Promise<void>;
  close(): Promise<void>;
}

/**
 * The storage layer's own cost per batch, without a cluster around it: what a node pays on top of
 * the bare PostgreSQL commit (queries, encoding, TypeORM) for one entry and for a 256-entry batch.
 */
export async function measureStorageSave(storage: SaveableStorage, seconds: number): Promise<{ save1: LatencySummary; save256: LatencySummary }> {
  await storage.load();
  try {
    let index = 0;
    const command = new Uint8Array(Buffer.from(JSON.stringify({ op: 'put', key: 'k1', value: 'x'.repeat(100) })));
    const batch = (n: number) => {
      const entries = Array.from({ length: n }, () => ({ index: ++index, term: 1, type: 'command' as const, command }));
      return { hardState: { term: 1, vote: 1, commit: Math.max(0, index - n) }, entries };
    };
    const save1 = summarize(await timeFor(seconds * 1000, 100, () => storage.save(batch(1))));
    const save256 = summarize(await timeFor(seconds * 1000, 10, () => storage.save(batch(256))));
    return { save1, save256 };
  } finally {
    await storage.close();
  }
}

const TABLE = `raft_bench_floor_${process.pid}`;

async function timeFor(ms: number, warmup: number, op: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await op();
  const samples: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    await op();
    samples.push(performance.now() - t0);
  }
  return samples;
}

export async function measureFloor(databaseUrl: string, seconds: number): Promise<FloorResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let pgCommit: LatencySummary;
  let pgBatch256: LatencySummary;
  try {
    await client.query(`CREATE TABLE ${TABLE} (id bigserial PRIMARY KEY, payload bytea NOT NULL)`);
    const payload = Buffer.alloc(100, 7);
    pgCommit = summarize(await timeFor(seconds * 1000, 200, () => client.query(`INSERT INTO ${TABLE} (payload) VALUES ($1)`, [payload])));
    const rows = 256;
    const values = Array.from({ length: rows }, (_, i) => `($${i + 1})`).join(',');
    const params = Array.from({ length: rows }, () => payload);
    pgBatch256 = summarize(
      await timeFor(seconds * 1000, 20, async () => {
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${TABLE} (payload) VALUES ${values}`, params);
        await client.query('COMMIT');
      }),
    );
  } finally {
    await client.query(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => undefined);
    await client.end();
  }

  // A minimal HTTP server in its own process: reads the body, answers a small JSON.
  const host = '127.0.0.2';
  const port = await freePort(host);
  const server = spawn(
    process.execPath,
    [
      '-e',
      `require('node:http').createServer((req, res) => { const c = []; req.on('data', (d) => c.push(d)); req.on('end', () => { const body = '{"term":1,"success":true}'; res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }); res.end(body); }); }).listen(${port}, '${host}', () => console.log('ready'));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`floor HTTP server exited with ${code}`)));
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const body = Buffer.alloc(100, 'x');
    const post = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({ host, port, method: 'POST', path: '/raft/appendentries', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => resolve());
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    await waitFor('the floor HTTP server', () => post().then(() => true), 5_000);
    const httpRoundTrip = summarize(await timeFor(seconds * 1000, 500, post));
    agent.destroy();
    return { pgCommit, pgBatch256, httpRoundTrip, replicatedWriteFloorMs: 2 * pgCommit.p50Ms + httpRoundTrip.p50Ms };
  } finally {
    server.kill('SIGKILL');
  }
}

/** Sequential keep-alive GETs of `url` for `seconds`: the round trip through a framework's route. */
export async function measureGetRoundTrip(url: string, seconds: number): Promise<LatencySummary> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(url, { agent }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url}: ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  try {
    return summarize(await timeFor(seconds * 1000, 300, get));
  } finally {
    agent.destroy();
  }
}

export function describeFloor(f: FloorResult): string {
  const storage = f.storageSave1 && f.storageSave256 ? `; TypeOrmStorage.save p50 ${fmt(f.storageSave1.p50Ms, 3)} ms (1 entry), ${fmt(f.storageSave256.p50Ms, 2)} ms (256)` : '';
  return `floor: pg commit p50 ${fmt(f.pgCommit.p50Ms, 3)} ms (256-row batch ${fmt(f.pgBatch256.p50Ms, 2)} ms); HTTP round trip p50 ${fmt(f.httpRoundTrip.p50Ms, 3)} ms; replicated write ≥ ${fmt(f.replicatedWriteFloorMs, 2)} ms${storage}`;
}
