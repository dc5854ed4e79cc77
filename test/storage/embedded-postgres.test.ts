import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../lib/storage/embedded/index.js';
import { StorageLockedError, TypeOrmStorage } from '../../lib/storage/typeorm/index.js';
import { describeStorageContract } from './contract.js';
import { command, commands, embeddedDataDir, noop, THREE_NODES, uniqueName } from './fixtures.js';

/** One embedded server for the whole file, on a copy of an initialized directory (initdb is slow). */
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-raft-embedded-'));
const dataDir = path.join(root, 'node-1');
let server: EmbeddedPostgres;

/** A refused connection waits this long first. */
const connectionWaitMs = 200;

beforeAll(async () => {
  server = await EmbeddedPostgres.start({ dataDir: await embeddedDataDir(dataDir), connectionWaitMs });
});
afterAll(async () => {
  await server?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

describeStorageContract('TypeOrmStorage on EmbeddedPostgres', () => ({
  open: (nodeId, clusterId) => new TypeOrmStorage({ nodeId, clusterId, ...server.storageOptions() }),
}));

describe('EmbeddedPostgres', () => {
  const opened: TypeOrmStorage[] = [];
  function storage(nodeId: number, clusterId: string): TypeOrmStorage {
    const created = new TypeOrmStorage({ nodeId, clusterId, ...server.storageOptions() });
    opened.push(created);
    return created;
  }
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });

  it('is durable, truthfully: fsync on, and every committed batch fsyncs the WAL', async () => {
    expect(server.durable).toBe(true);
    expect(server.storageOptions()).toEqual({ dataSourceOptions: server.connectionOptions() });
    const client = new pg.Client({ ...server.connectionOptions(), user: 'postgres' });
    await client.connect();
    try {
      const settings = await client.query(`SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method') ORDER BY name`);
      expect(settings.rows).toEqual([
        { name: 'fsync', setting: 'on' },
        { name: 'synchronous_commit', setting: 'on' },
        { name: 'wal_sync_method', setting: 'fsync' },
      ]);
    } finally {
      await client.end();
    }
    const s = storage(1, uniqueName('c'));
    await s.load(); // no unsafe option: the durability check passes on its own
    for (let i = 1; i <= 5; i++) {
      const before = server.fsyncCount;
      await s.save({ hardState: { term: 1, vote: 1, commit: i - 1 }, entries: [command(i, 1)] });
      expect(server.fsyncCount).toBeGreaterThan(before);
    }
  });

  it('takes one client connection: one node per embedded server', async () => {
    const clusterId = uniqueName('c');
    let current = storage(1, clusterId);
    await current.load();
    // The same node again, in this process: refused before it connects.
    await expect(storage(1, clusterId).load()).rejects.toBeInstanceOf(StorageLockedError);
    // Any other client is refused, with a PostgreSQL error, while the storage holds the one connection.
    const busy = /embedded PostgreSQL at 127\.0\.0\.1:\d+ \(.*node-1\) takes 1 connection\(s\) at a time, and none is free/;
    await expect(storage(2, clusterId).load()).rejects.toThrow(busy);
    const client = new pg.Client({ ...server.connectionOptions(), user: 'postgres' });
    await expect(client.connect()).rejects.toMatchObject({ code: '53300', message: expect.stringMatching(busy) });
    // Closed, the connection is free at once, again and again.
    for (let i = 0; i < 5; i++) {
      await current.close();
      current = storage(1, clusterId);
      await current.load();
    }
  });

  it('refuses a second server on the same data directory', async () => {
    await expect(EmbeddedPostgres.start({ dataDir })).rejects.toThrow(new RegExp(`data directory .*node-1 is in use by process ${process.pid}`));
  });

  // Last: it replaces the file's server.
  it('recovers every acknowledged batch after a crash (no shutdown, no checkpoint)', async () => {
    const clusterId = uniqueName('c');
    const s = storage(1, clusterId);
    await s.load();
    const expected = {
      hardState: { term: 3, vote: 2, commit: 40 },
      baseConfiguration: THREE_NODES,
      entries: [noop(1, 1), ...commands(2, 39, 2), ...commands(41, 60, 3)],
    };
    await s.save({ baseConfiguration: THREE_NODES, hardState: { term: 1, vote: 1, commit: 0 }, entries: [noop(1, 1)] });
    await s.save({ hardState: { term: 2, vote: 2, commit: 1 }, entries: commands(2, 39, 2) });
    await s.save({ hardState: { term: 3, vote: 2, commit: 40 }, entries: commands(41, 60, 3) });
    const port = server.port;
    await server.simulateCrash();
    server = await EmbeddedPostgres.start({ dataDir, connectionWaitMs });
    expect(server.port).not.toBe(port);
    const recovered = storage(1, clusterId);
    expect(await recovered.load()).toEqual(expected);
  });
});
