import { createHash } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DataSource, type Logger } from 'typeorm';
import { StorageClosedError, StorageCorruptionError } from '../../lib/storage/errors.js';
import { RaftInitialSchema1764400000000 } from '../../lib/storage/typeorm/migrations/1764400000000-raft-initial-schema.js';
import { nodeLockName } from '../../lib/storage/typeorm/node-lock.js';
import {
  RAFT_ENTITIES,
  RAFT_MIGRATIONS,
  RAFT_MIGRATIONS_TABLE,
  safeIntegerTransformer,
  StorageLockedError,
  toSafeInteger,
  TypeOrmStorage,
  UnsafeDurabilityError,
  type TypeOrmStorageOptions,
} from '../../lib/storage/typeorm/index.js';
import { describeStorageContract } from './contract.js';
import { bytes, command, commands, config, DATABASE_URL, noop, realPostgresAvailable, THREE_NODES, uniqueName, withClient } from './fixtures.js';

const available = await realPostgresAvailable();

/** Every schema this file creates, dropped at the end. */
const schemas: string[] = [];
function newSchema(): string {
  const schema = uniqueName('raft_test');
  schemas.push(schema);
  return schema;
}
afterAll(async () => {
  if (!available || schemas.length === 0) return;
  await withClient(DATABASE_URL, (client) => client.query(schemas.map((schema) => `DROP SCHEMA IF EXISTS "${schema}" CASCADE`).join('; ')));
});

/** The schema of the contract suite and of most tests below (each test uses its own cluster ids). */
const SCHEMA = newSchema();

describe.skipIf(!available)('TypeOrmStorage on a real PostgreSQL', () => {
  describeStorageContract('TypeOrmStorage on PostgreSQL', () => ({
    open: (nodeId, clusterId) => new TypeOrmStorage({ nodeId, clusterId, dataSourceOptions: { url: DATABASE_URL, schema: SCHEMA } }),
  }));

  const opened: TypeOrmStorage[] = [];
  function storage(options: Partial<TypeOrmStorageOptions> & { nodeId: number }): TypeOrmStorage {
    const created = new TypeOrmStorage({ dataSourceOptions: { url: DATABASE_URL, schema: SCHEMA }, ...options });
    opened.push(created);
    return created;
  }
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });

  /** Raw SQL on the test schema, from another connection. */
  const sql = (text: string, values: unknown[] = [], schema = SCHEMA) =>
    withClient(DATABASE_URL, async (client) => {
      await client.query(`SET search_path TO "${schema}"`);
      return (await client.query(text, values)).rows as Array<Record<string, unknown>>;
    });

  describe('the node lock', () => {
    it('refuses a second process for the same node, and lets other nodes run', async () => {
      const clusterId = uniqueName('c');
      await storage({ nodeId: 9, clusterId }).load(); // creates the schema and tables
      await withClient(DATABASE_URL, async (other) => {
        await other.query(`SET application_name = 'the other process'`);
        await other.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [nodeLockName(SCHEMA, clusterId, 1)]);
        const refused = storage({ nodeId: 1, clusterId }).load();
        await expect(refused).rejects.toBeInstanceOf(StorageLockedError);
        await expect(refused).rejects.toThrow(new RegExp(`node 1 of cluster '${clusterId}' is already running elsewhere.*application 'the other process'`));
        // Node 2 of the same cluster, and node 1 of another cluster, are not blocked.
        await storage({ nodeId: 2, clusterId }).load();
        await storage({ nodeId: 1, clusterId: uniqueName('c') }).load();
      });
      // The other process ended, and its lock with it.
      await expect(storage({ nodeId: 1, clusterId }).load()).resolves.toMatchObject({ entries: [] });
    });

    it('refuses a second storage for an open node, in this process or through another connection string', async () => {
      const clusterId = uniqueName('c');
      const first = storage({ nodeId: 1, clusterId });
      await first.load();
      await expect(storage({ nodeId: 1, clusterId }).load()).rejects.toThrow(/another storage in this process/);
      // Spelled differently, the process-wide check cannot match it: the advisory lock does.
      const url = new URL(DATABASE_URL);
      const spelledDifferently = storage({
        nodeId: 1,
        clusterId,
        dataSourceOptions: { host: url.hostname, port: Number(url.port || 5432), username: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: url.pathname.slice(1), schema: SCHEMA },
      });
      await expect(spelledDifferently.load()).rejects.toThrow(/already running elsewhere.*application 'nestjs-raft node 1'/);
      await first.close();
      await expect(spelledDifferently.load()).resolves.toMatchObject({ entries: [] });
    });

    it('holds the lock on its one connection until close', async () => {
      const clusterId = uniqueName('c');
      const s = storage({ nodeId: 4, clusterId });
      await s.load();
      const held = () =>
        withClient(DATABASE_URL, async (client) => (await client.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [nodeLockName(SCHEMA, clusterId, 4)])).rows[0].ok === false);
      expect(await held()).toBe(true);
      await s.close();
      await s.close(); // idempotent
      expect(await held()).toBe(false);
      await expect(s.save({ entries: [] })).rejects.toBeInstanceOf(StorageClosedError);
    });

    it('fails the next save once its connection, and so its lock, is lost; a new load() takes it again', async () => {
      const clusterId = uniqueName('c');
      const s = storage({ nodeId: 6, clusterId });
      await s.load();
      await s.save({ hardState: { term: 1, vote: 6, commit: 0 }, entries: [noop(1, 1)] });
      await withClient(DATABASE_URL, (client) =>
        client.query(
          `SELECT pg_terminate_backend(l.pid) FROM pg_locks l, (SELECT hashtextextended($1, 0) AS key) k
            WHERE l.locktype = 'advisory' AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid`,
          [nodeLockName(SCHEMA, clusterId, 6)],
        ),
      );
      await expect(s.save({ entries: [command(2, 1)] })).rejects.toThrow();
      await expect(s.save({ entries: [command(2, 1)] })).rejects.toBeInstanceOf(StorageClosedError);
      await s.close();
      expect((await s.load()).entries).toEqual([noop(1, 1)]);
      await s.save({ entries: [command(2, 1)] });
      expect((await s.entries(1, 2)).map((e) => e.index)).toEqual([1, 2]);
    });
  });

  describe('durability settings', () => {
    it('refuses synchronous_commit = off or local unless unsafeAllowAsyncCommit', async () => {
      for (const value of ['off', 'local']) {
        const options = { url: DATABASE_URL, schema: SCHEMA, extra: { options: `-c synchronous_commit=${value}` } };
        const refused = storage({ nodeId: 1, clusterId: uniqueName('c'), dataSourceOptions: options }).load();
        await expect(refused).rejects.toBeInstanceOf(UnsafeDurabilityError);
        await expect(refused).rejects.toThrow(`synchronous_commit is '${value}'`);
        await expect(storage({ nodeId: 1, clusterId: uniqueName('c'), dataSourceOptions: options, unsafeAllowAsyncCommit: true }).load()).resolves.toBeDefined();
      }
    });

    it('releases the lock when it refuses to start', async () => {
      const clusterId = uniqueName('c');
      const options = { url: DATABASE_URL, schema: SCHEMA, extra: { options: '-c synchronous_commit=off' } };
      await expect(storage({ nodeId: 1, clusterId, dataSourceOptions: options }).load()).rejects.toBeInstanceOf(UnsafeDurabilityError);
      await expect(storage({ nodeId: 1, clusterId }).load()).resolves.toBeDefined();
    });
  });

  describe('torn or inconsistent stores fail load, naming the node, the index and the problem', () => {
    const cases: Array<[string, (clusterId: string) => Promise<unknown>, RegExp]> = [
      ['a missing middle entry', (c) => sql(`DELETE FROM raft_log_entries WHERE cluster_id = $1 AND "index" = 3`, [c]), /log entry at index 4 follows index 2: entries 3\.\.3 are missing/],
      ['a missing first entry', (c) => sql(`DELETE FROM raft_log_entries WHERE cluster_id = $1 AND "index" = 1`, [c]), /the log starts at index 2 instead of 1/],
      ['a term lower than its predecessor', (c) => sql(`UPDATE raft_log_entries SET term = 1 WHERE cluster_id = $1 AND "index" = 4`, [c]), /log entry at index 4 has term 1, lower than term 2 of index 3/],
      ['a last term above the current term', (c) => sql(`UPDATE raft_hard_state SET term = 1 WHERE cluster_id = $1`, [c]), /the last log entry, at index 5, has term 2, higher than the stored current term 1/],
      ['a commit index past the log', (c) => sql(`UPDATE raft_hard_state SET commit_index = 6 WHERE cluster_id = $1`, [c]), /the stored commit index 6 is beyond the last log entry \(index 5\)/],
      ['a term beyond 2^53', (c) => sql(`UPDATE raft_log_entries SET term = 9007199254740993 WHERE cluster_id = $1 AND "index" = 5`, [c]), /log entry at index 5 is invalid: its term: '9007199254740993' is beyond Number\.MAX_SAFE_INTEGER/],
      ['a hard state beyond 2^53', (c) => sql(`UPDATE raft_hard_state SET term = 9007199254740993 WHERE cluster_id = $1`, [c]), /the hard state's term: '9007199254740993' is beyond Number\.MAX_SAFE_INTEGER/],
      ['an invalid configuration', (c) => sql(`UPDATE raft_log_entries SET config = '{"voters":[2,1]}' WHERE cluster_id = $1 AND "index" = 2`, [c]), /log entry at index 2 is invalid: the configuration's voters \[2,1\] are not sorted/],
      ['an unknown configuration field', (c) => sql(`UPDATE raft_base_configuration SET configuration = '{"voters":[1],"witnesses":[4]}' WHERE cluster_id = $1`, [c]), /the base configuration is invalid: the configuration has unknown field\(s\) witnesses/],
      ['bytes in a noop', (c) => sql(`UPDATE raft_log_entries SET command = '\\x01' WHERE cluster_id = $1 AND "index" = 1`, [c]), /log entry at index 1 is invalid: it is a noop entry carrying 1 command bytes/],
    ];
    for (const [what, tear, message] of cases) {
      it(what, async () => {
        const clusterId = uniqueName('c');
        const s = storage({ nodeId: 1, clusterId });
        await s.load();
        await s.save({ baseConfiguration: THREE_NODES, hardState: { term: 2, vote: 1, commit: 5 }, entries: [noop(1, 1), config(2, 1, THREE_NODES), command(3, 2), command(4, 2), command(5, 2)] });
        await s.close();
        await tear(clusterId);
        const load = storage({ nodeId: 1, clusterId }).load();
        await expect(load).rejects.toBeInstanceOf(StorageCorruptionError);
        await expect(load).rejects.toThrow(new RegExp(`^node 1 of cluster '${clusterId}' \\(schema "${SCHEMA}"\\): ${message.source}`));
        // A node that cannot start does not keep its lock.
        const lockFree = await withClient(DATABASE_URL, async (client) => {
          const name = nodeLockName(SCHEMA, clusterId, 1);
          const { rows } = await client.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [name]);
          return rows[0].ok as boolean;
        });
        expect(lockFree).toBe(true);
      });
    }

    it('rows the constraints would refuse, in a schema without them', async () => {
      const schema = newSchema();
      const clusterId = uniqueName('c');
      const options = { dataSourceOptions: { url: DATABASE_URL, schema } };
      const s = storage({ nodeId: 1, clusterId, ...options });
      await s.load();
      await s.save({ hardState: { term: 2, vote: 1, commit: 0 }, entries: [noop(1, 1), config(2, 1, THREE_NODES), command(3, 2)] });
      await s.close();
      await sql('ALTER TABLE raft_log_entries DROP CONSTRAINT raft_log_entries_config_check, DROP CONSTRAINT raft_log_entries_type_check', [], schema);
      for (const [tear, message] of [
        [`UPDATE raft_log_entries SET config = NULL WHERE "index" = 2`, /log entry at index 2 is invalid: it is a config entry without a configuration/],
        [`UPDATE raft_log_entries SET type = 'snapshot' WHERE "index" = 2`, /log entry at index 2 is invalid: it has the unknown type "snapshot"/],
        [`UPDATE raft_log_entries SET config = '{"voters":[1]}' WHERE "index" = 3`, /log entry at index 3 is invalid: it is a command entry carrying a configuration/],
      ] as const) {
        await sql(`UPDATE raft_log_entries SET type = 'config', config = '{"voters":[1,2,3]}' WHERE "index" = 2`, [], schema);
        await sql(`UPDATE raft_log_entries SET config = NULL WHERE "index" = 3`, [], schema);
        await sql(tear, [], schema);
        await expect(storage({ nodeId: 1, clusterId, ...options }).load()).rejects.toThrow(message);
      }
    });
  });

  describe('atomic batches', () => {
    it('leaves no trace of a batch whose INSERT fails, and refuses to go on', async () => {
      const schema = newSchema();
      const clusterId = uniqueName('c');
      const options = { dataSourceOptions: { url: DATABASE_URL, schema } };
      const s = storage({ nodeId: 1, clusterId, ...options });
      await s.load();
      const before = { hardState: { term: 2, vote: 1, commit: 2 }, baseConfiguration: THREE_NODES, entries: [noop(1, 1), command(2, 1), command(3, 2), command(4, 2)] };
      await s.save(before);
      // A failpoint: the database rejects any entry of term 666, after the batch's other statements ran.
      await sql(
        `CREATE FUNCTION failpoint() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'failpoint: term 666'; END $$;
         CREATE TRIGGER failpoint BEFORE INSERT ON raft_log_entries FOR EACH ROW WHEN (NEW.term = 666) EXECUTE FUNCTION failpoint()`,
        [],
        schema,
      );
      const failing = s.save({
        hardState: { term: 666, vote: 3, commit: 2 },
        baseConfiguration: { voters: [7] },
        truncateFrom: 3,
        entries: [command(3, 666), command(4, 666)],
      });
      const queuedBehind = s.save({ hardState: { term: 667, vote: 0, commit: 4 }, entries: [] });
      await expect(failing).rejects.toThrow(/failpoint: term 666/);
      await expect(queuedBehind).rejects.toBeInstanceOf(StorageClosedError);
      await expect(s.entries(1, 4)).rejects.toThrow(/unusable after a failed save/);
      await s.close();
      expect(await storage({ nodeId: 1, clusterId, ...options }).load()).toEqual(before);
    });

    it('writes all entries of a batch with one INSERT inside one transaction, and splits only past 10,000 entries', async () => {
      const queries: string[] = [];
      const logger: Logger = {
        logQuery: (query) => void queries.push(query.replace(/\s+/g, ' ').trim()),
        logQueryError: () => undefined,
        logQuerySlow: () => undefined,
        logSchemaBuild: () => undefined,
        logMigration: () => undefined,
        log: () => undefined,
      };
      const clusterId = uniqueName('c');
      const s = storage({ nodeId: 1, clusterId, dataSourceOptions: { url: DATABASE_URL, schema: SCHEMA, logging: true, logger } });
      await s.load();
      await s.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 70, 1) });

      queries.length = 0;
      await s.save({ hardState: { term: 2, vote: 1, commit: 10 }, truncateFrom: 7, entries: commands(7, 64, 2) });
      expect(queries.map((q) => q.slice(0, 32))).toEqual([
        'START TRANSACTION',
        `INSERT INTO "${SCHEMA}"."raft_hard_s`.slice(0, 32),
        `DELETE FROM "${SCHEMA}"."raft_log_en`.slice(0, 32),
        `INSERT INTO "${SCHEMA}"."raft_log_en`.slice(0, 32),
        'COMMIT',
      ]);
      expect(queries[3]).toMatch(/ FROM unnest\(/); // 64 rows: one statement of a fixed text, with arrays

      queries.length = 0;
      await s.save({ entries: commands(71, 64, 2) });
      expect(queries).toHaveLength(1); // a lone statement is its own transaction

      queries.length = 0;
      await s.save({ entries: commands(135, 20_000, 2) });
      const inserts = queries.filter((q) => q.startsWith('INSERT'));
      expect(queries[0]).toBe('START TRANSACTION');
      expect(queries.at(-1)).toBe('COMMIT');
      expect(inserts).toHaveLength(2); // 10,000 + 10,000 rows
      const state = await s.load();
      expect(state.entries).toHaveLength(20_134);
      expect(state.entries.every((e, i) => e.index === i + 1)).toBe(true);

      // The commands travel as one bytea cut by offsets: every byte value, empty commands, a batch of
      // empty commands only, and configurations with quotes and backslashes come back as written.
      const awkward = [
        command(20_135, 3, new Uint8Array(256).map((_, i) => i)),
        command(20_136, 3, new Uint8Array(0)),
        config(20_137, 3, { voters: [1, 2, 3], addresses: { '1': 'http://a"b\\c', '2': 'http://{x,y}', '3': 'http://NULL' } }),
        command(20_138, 3, bytes(0x5c, 0x22, 0x00, 0x7b, 0x7d, 0x2c)),
      ];
      await s.save({ hardState: { term: 3, vote: 0, commit: 10 }, entries: awkward });
      await s.save({ entries: [noop(20_139, 3), noop(20_140, 3)] });
      expect((await s.load()).entries.slice(-6)).toEqual([...awkward, noop(20_139, 3), noop(20_140, 3)]);
    });
  });

  describe('snapshots and log compaction', () => {
    const FOUR_NODES = { voters: [1, 2, 3, 4] };

    /** A logger collecting every query, whitespace collapsed. */
    function queryLog(): { queries: string[]; logger: Logger } {
      const queries: string[] = [];
      const logger: Logger = {
        logQuery: (query) => void queries.push(query.replace(/\s+/g, ' ').trim()),
        logQueryError: () => undefined,
        logQuerySlow: () => undefined,
        logSchemaBuild: () => undefined,
        logMigration: () => undefined,
        log: () => undefined,
      };
      return { queries, logger };
    }
    /** `INSERT raft_hard_state`, `DELETE raft_log_entries`, `START TRANSACTION`, … */
    const shape = (query: string) => /^(START TRANSACTION|COMMIT)|^(INSERT INTO|DELETE FROM) "[^"]+"\."([a-z_]+)"/.exec(query)?.slice(1).filter(Boolean).join(' ').replace(/ INTO| FROM/, '') ?? query;

    it('stores a snapshot in rows of snapshotChunkBytes, replaces them all, and checks them when reading it back', async () => {
      const clusterId = uniqueName('c');
      const s = storage({ nodeId: 1, clusterId, snapshotChunkBytes: 10 });
      await s.load();
      await s.save({ hardState: { term: 1, vote: 1, commit: 3 }, entries: commands(1, 3, 1) });
      const data = Uint8Array.from({ length: 95 }, (_, i) => i);
      await s.save({ snapshot: { metadata: { index: 3, term: 1, configuration: THREE_NODES }, data }, entries: [] });
      const chunks = () => sql(`SELECT chunk, octet_length(data) AS length FROM raft_snapshot_chunks WHERE cluster_id = $1 ORDER BY chunk`, [clusterId]);
      expect(await chunks()).toEqual(Array.from({ length: 10 }, (_, i) => ({ chunk: i, length: i < 9 ? 10 : 5 })));
      expect(await sql(`SELECT "index", term, size, chunks, encode(sha256, 'hex') AS sha256 FROM raft_snapshots WHERE cluster_id = $1`, [clusterId])).toEqual([
        { index: '3', term: '1', size: '95', chunks: 10, sha256: createHash('sha256').update(data).digest('hex') },
      ]);
      expect(Array.from((await s.loadSnapshot())!.data)).toEqual(Array.from(data));

      // A view into a larger buffer: only its bytes are stored. The old rows are all gone.
      const view = data.subarray(50, 75);
      await s.save({ snapshot: { metadata: { index: 3, term: 1, configuration: FOUR_NODES }, data: view }, entries: [] });
      expect(await chunks()).toEqual([
        { chunk: 0, length: 10 },
        { chunk: 1, length: 10 },
        { chunk: 2, length: 5 },
      ]);
      const loaded = (await s.loadSnapshot())!;
      expect(loaded.metadata).toEqual({ index: 3, term: 1, configuration: FOUR_NODES });
      expect(Array.from(loaded.data)).toEqual(Array.from(view));

      // Torn or changed bytes are corruption, and the storage stays usable.
      const torn = async (tear: string, message: RegExp) => {
        await sql(tear, [clusterId]);
        const read = s.loadSnapshot();
        await expect(read).rejects.toBeInstanceOf(StorageCorruptionError);
        await expect(read).rejects.toThrow(new RegExp(`^node 1 of cluster '${clusterId}' \\(schema "${SCHEMA}"\\): the snapshot at index 3 is invalid: ${message.source}`));
      };
      await torn(`UPDATE raft_snapshot_chunks SET data = '\\x00'::bytea || substring(data from 2) WHERE cluster_id = $1 AND chunk = 1`, /its bytes have SHA-256 [0-9a-f]{64} where its metadata says [0-9a-f]{64}/);
      await torn(`UPDATE raft_snapshot_chunks SET data = substring(data from 2) WHERE cluster_id = $1 AND chunk = 1`, /its chunks hold 24 bytes where its metadata says 25/);
      await torn(`DELETE FROM raft_snapshot_chunks WHERE cluster_id = $1 AND chunk = 1`, /it has 2 chunk row\(s\) where its metadata says 3/);
      await torn(`UPDATE raft_snapshots SET chunks = 2 WHERE cluster_id = $1`, /chunk 2 is where chunk 1 was expected: chunk 1 is missing/);
      await s.save({ hardState: { term: 1, vote: 1, commit: 3 }, entries: [command(4, 1)] });
    });

    it('writes a snapshot and a compaction inside the batch\'s one transaction, in the contract\'s order, and rolls all of it back on failure', async () => {
      const schema = newSchema();
      const clusterId = uniqueName('c');
      const { queries, logger } = queryLog();
      const options = { dataSourceOptions: { url: DATABASE_URL, schema, logging: true, logger } };
      let s = storage({ nodeId: 1, clusterId, ...options });
      await s.load();
      const before = { hardState: { term: 1, vote: 1, commit: 9 }, baseConfiguration: THREE_NODES, entries: commands(1, 10, 1) };
      await s.save(before);
      const snapshot = { metadata: { index: 4, term: 1, configuration: THREE_NODES }, data: bytes(4, 4) };
      await s.save({ snapshot, compact: { index: 2, term: 1, configuration: THREE_NODES }, entries: [] });

      queries.length = 0;
      await s.save({
        hardState: { term: 2, vote: 1, commit: 9 },
        truncateFrom: 10,
        snapshot: { metadata: { index: 8, term: 1, configuration: FOUR_NODES }, data: bytes(8, 8) },
        compact: { index: 6, term: 1, configuration: FOUR_NODES },
        entries: [command(10, 2), command(11, 2)],
      });
      expect(queries.map(shape)).toEqual([
        'START TRANSACTION',
        'INSERT raft_hard_state',
        'DELETE raft_log_entries',
        'DELETE raft_snapshot_chunks',
        'INSERT raft_snapshots',
        'INSERT raft_snapshot_chunks',
        'DELETE raft_log_entries',
        'INSERT raft_base_configuration',
        'INSERT raft_log_entries',
        'COMMIT',
      ]);
      const after = await s.load();
      expect(after).toEqual({
        hardState: { term: 2, vote: 1, commit: 9 },
        logStart: { index: 6, term: 1 },
        baseConfiguration: FOUR_NODES,
        entries: [...commands(7, 3, 1), command(10, 2), command(11, 2)],
        snapshot: { index: 8, term: 1, configuration: FOUR_NODES },
      });

      // The database rejects an entry of term 666 after every other part of the batch ran.
      await sql(
        `CREATE FUNCTION failpoint() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'failpoint: term 666'; END $$;
         CREATE TRIGGER failpoint BEFORE INSERT ON raft_log_entries FOR EACH ROW WHEN (NEW.term = 666) EXECUTE FUNCTION failpoint()`,
        [],
        schema,
      );
      await expect(
        s.save({
          hardState: { term: 666, vote: 1, commit: 11 },
          snapshot: { metadata: { index: 11, term: 2, configuration: THREE_NODES }, data: bytes(1, 1, 1) },
          compact: { index: 10, term: 2, configuration: THREE_NODES },
          entries: [command(12, 666)],
        }),
      ).rejects.toThrow(/failpoint: term 666/);
      await s.close();
      s = storage({ nodeId: 1, clusterId, ...options });
      expect(await s.load()).toEqual(after);
      expect(await s.loadSnapshot()).toEqual({ metadata: after.snapshot, data: bytes(8, 8) });
    });

    describe('inconsistent compacted stores fail load, naming the node, the indexes and the problem', () => {
      const cases: Array<[string, (clusterId: string) => Promise<unknown>, RegExp]> = [
        ['a snapshot past the last entry', (c) => sql(`UPDATE raft_snapshots SET "index" = 11 WHERE cluster_id = $1`, [c]), /the snapshot at index 11 is outside the log, which spans 5\.\.10/],
        ['a snapshot before the log start', (c) => sql(`UPDATE raft_snapshots SET "index" = 4 WHERE cluster_id = $1`, [c]), /the snapshot at index 4 is outside the log, which spans 5\.\.10/],
        [
          'a snapshot past an emptied log',
          async (c) => {
            await sql(`DELETE FROM raft_log_entries WHERE cluster_id = $1`, [c]);
            await sql(`UPDATE raft_hard_state SET commit_index = 5 WHERE cluster_id = $1`, [c]);
          },
          /the snapshot at index 7 is outside the log, which spans 5\.\.5/,
        ],
        ['a snapshot whose term is not its entry\'s', (c) => sql(`UPDATE raft_snapshots SET term = 2 WHERE cluster_id = $1`, [c]), /the snapshot at index 7 has term 2, but the log has term 3 there/],
        [
          'a snapshot with an invalid configuration',
          (c) => sql(`UPDATE raft_snapshots SET configuration = '{"voters":[2,1]}' WHERE cluster_id = $1`, [c]),
          /the snapshot's metadata is invalid: its configuration: the configuration's voters \[2,1\] are not sorted/,
        ],
        [
          'an entry that should have been compacted away',
          (c) => sql(`INSERT INTO raft_log_entries VALUES ($1, 1, 5, 2, 'command', '\\x05', NULL)`, [c]),
          /log entry at index 5 is at or before the log start \(index 5\): it should have been compacted away/,
        ],
        ['a missing first entry after the log start', (c) => sql(`DELETE FROM raft_log_entries WHERE cluster_id = $1 AND "index" = 6`, [c]), /the log starts at index 7 instead of 6: entries 6\.\.6 are missing/],
        ['a log start whose term is above its next entry\'s', (c) => sql(`UPDATE raft_base_configuration SET log_start_term = 3 WHERE cluster_id = $1`, [c]), /log entry at index 6 has term 2, lower than term 3 of the log start \(index 5\)/],
        [
          'a log start beyond 2^53',
          (c) => sql(`UPDATE raft_base_configuration SET log_start_index = 9007199254740993 WHERE cluster_id = $1`, [c]),
          /the log start's index: '9007199254740993' is beyond Number\.MAX_SAFE_INTEGER/,
        ],
        ['a commit index past the compacted log', (c) => sql(`DELETE FROM raft_log_entries WHERE cluster_id = $1 AND "index" > 7`, [c]), /the stored commit index 8 is beyond the last log entry \(index 7\)/],
      ];
      for (const [what, tear, message] of cases) {
        it(what, async () => {
          const clusterId = uniqueName('c');
          const s = storage({ nodeId: 1, clusterId });
          await s.load();
          const log = [noop(1, 1), config(2, 1, THREE_NODES), ...commands(3, 4, 2), ...commands(7, 4, 3)];
          await s.save({ baseConfiguration: THREE_NODES, hardState: { term: 3, vote: 1, commit: 8 }, entries: log });
          await s.save({ snapshot: { metadata: { index: 7, term: 3, configuration: THREE_NODES }, data: bytes(7) }, compact: { index: 5, term: 2, configuration: THREE_NODES }, entries: [] });
          await s.close();
          expect(await storage({ nodeId: 1, clusterId }).load()).toMatchObject({ logStart: { index: 5, term: 2 }, entries: log.slice(5) });
          for (const open of opened.splice(0)) await open.close();
          await tear(clusterId);
          const load = storage({ nodeId: 1, clusterId }).load();
          await expect(load).rejects.toBeInstanceOf(StorageCorruptionError);
          await expect(load).rejects.toThrow(new RegExp(`^node 1 of cluster '${clusterId}' \\(schema "${SCHEMA}"\\): ${message.source}`));
        });
      }
    });

    it('upgrades tables of the first schema: their rows load as before, and then take snapshots and compactions', async () => {
      const schema = newSchema();
      const clusterId = uniqueName('c');
      await withClient(DATABASE_URL, (client) => client.query(`CREATE SCHEMA "${schema}"`));
      const old = new DataSource({ type: 'postgres', url: DATABASE_URL, schema, migrations: [RaftInitialSchema1764400000000], migrationsTableName: RAFT_MIGRATIONS_TABLE });
      await old.initialize();
      try {
        await old.runMigrations();
      } finally {
        await old.destroy();
      }
      expect(await sql(`SELECT to_regclass('raft_snapshots') AS t`, [], schema)).toEqual([{ t: null }]);
      // Rows as the first version wrote them, for two nodes.
      for (const node of [1, 2]) {
        await sql(`INSERT INTO raft_hard_state VALUES ($1, $2, 2, 1, 3)`, [clusterId, node], schema);
        await sql(`INSERT INTO raft_base_configuration VALUES ($1, $2, $3)`, [clusterId, node, JSON.stringify(THREE_NODES)], schema);
        await sql(
          `INSERT INTO raft_log_entries VALUES ($1, $2, 1, 1, 'noop', '\\x', NULL), ($1, $2, 2, 1, 'config', '\\x', $3), ($1, $2, 3, 2, 'command', '\\x0102', NULL), ($1, $2, 4, 2, 'command', '\\x', NULL)`,
          [clusterId, node, JSON.stringify({ voters: [1, 2] })],
          schema,
        );
      }
      const expected = {
        hardState: { term: 2, vote: 1, commit: 3 },
        baseConfiguration: THREE_NODES,
        entries: [noop(1, 1), config(2, 1, { voters: [1, 2] }), command(3, 2, bytes(1, 2)), command(4, 2, bytes())],
      };
      const options = { dataSourceOptions: { url: DATABASE_URL, schema } };
      const s = storage({ nodeId: 1, clusterId, ...options });
      expect(await s.load()).toEqual(expected);
      expect(await sql(`SELECT name FROM ${RAFT_MIGRATIONS_TABLE} ORDER BY id`, [], schema)).toEqual([{ name: 'RaftInitialSchema1764400000000' }, { name: 'RaftSnapshots1796400000000' }]);
      expect(await s.loadSnapshot()).toBeUndefined();
      await s.save({ snapshot: { metadata: { index: 3, term: 2, configuration: { voters: [1, 2] } }, data: bytes(3) }, compact: { index: 2, term: 1, configuration: { voters: [1, 2] } }, entries: [command(5, 2)] });
      await s.close();
      expect(await storage({ nodeId: 1, clusterId, ...options }).load()).toEqual({
        hardState: expected.hardState,
        logStart: { index: 2, term: 1 },
        baseConfiguration: { voters: [1, 2] },
        entries: [...expected.entries.slice(2), command(5, 2)],
        snapshot: { index: 3, term: 2, configuration: { voters: [1, 2] } },
      });
      // The other node's rows are untouched, and the upgraded tables match the entities.
      expect(await storage({ nodeId: 2, clusterId, ...options }).load()).toEqual(expected);
      const dataSource = new DataSource({ type: 'postgres', url: DATABASE_URL, schema, entities: [...RAFT_ENTITIES], migrations: [...RAFT_MIGRATIONS], migrationsTableName: RAFT_MIGRATIONS_TABLE });
      await dataSource.initialize();
      try {
        expect(await dataSource.showMigrations()).toBe(false);
        expect((await dataSource.driver.createSchemaBuilder().log()).upQueries.map((q) => q.query)).toEqual([]);
      } finally {
        await dataSource.destroy();
      }
    });

    it('validates its snapshot chunk size and what a batch asks to write', async () => {
      expect(() => new TypeOrmStorage({ nodeId: 1, dataSourceOptions: {}, snapshotChunkBytes: 0 })).toThrow(/snapshotChunkBytes/);
      expect(() => new TypeOrmStorage({ nodeId: 1, dataSourceOptions: {}, snapshotChunkBytes: 1.5 })).toThrow(/snapshotChunkBytes/);
      const clusterId = uniqueName('c');
      for (const [batch, message] of [
        [{ compact: { index: -1, term: 0, configuration: THREE_NODES }, entries: [] }, /compaction index -1 is not a non-negative safe integer/],
        [{ compact: { index: 1, term: 1, configuration: { voters: [2, 1] } }, entries: [] }, /compaction: the configuration's voters \[2,1\] are not sorted/],
        [{ snapshot: { metadata: { index: 1, term: 2 ** 53, configuration: THREE_NODES }, data: bytes() }, entries: [] }, /snapshot term 9007199254740992 is not a non-negative safe integer/],
        [{ snapshot: { metadata: { index: 1, term: 1, configuration: THREE_NODES }, data: [1, 2] as unknown as Uint8Array }, entries: [] }, /snapshot: its data is not a Uint8Array/],
      ] as const) {
        const s = storage({ nodeId: 1, clusterId });
        await s.load();
        await expect(s.save(batch)).rejects.toThrow(message);
        await s.close();
      }
    });
  });

  describe('bigint columns', () => {
    it('come back as numbers, and a value beyond 2^53 is an error both ways', async () => {
      const clusterId = uniqueName('c');
      const s = storage({ nodeId: 1, clusterId });
      await s.load();
      const big = Number.MAX_SAFE_INTEGER;
      await s.save({ hardState: { term: big, vote: big, commit: 1 }, entries: [command(1, big)] });
      const [entry] = await s.entries(1, 1);
      expect(entry).toEqual(command(1, big));
      expect((await s.load()).hardState).toEqual({ term: big, vote: big, commit: 1 });
      await expect(s.save({ hardState: { term: 2 ** 53, vote: 0, commit: 1 }, entries: [] })).rejects.toThrow(/term 9007199254740992 is not a non-negative safe integer/);
    });

    it('are parsed by one strict transformer', () => {
      expect(toSafeInteger('42')).toBe(42);
      expect(toSafeInteger('-7')).toBe(-7);
      expect(toSafeInteger(12)).toBe(12);
      expect(toSafeInteger(12n)).toBe(12);
      expect(toSafeInteger('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
      expect(() => toSafeInteger('9007199254740992')).toThrow(RangeError);
      expect(() => toSafeInteger(2n ** 60n)).toThrow(RangeError);
      expect(() => toSafeInteger('1.5')).toThrow(RangeError);
      expect(() => toSafeInteger(1.5)).toThrow(/1\.5 is not an integer/);
      expect(() => toSafeInteger(Number.NaN)).toThrow(/NaN is not an integer/);
      expect(() => toSafeInteger('')).toThrow(RangeError);
      expect(() => toSafeInteger(null)).toThrow(RangeError);
      expect(safeIntegerTransformer.from('5')).toBe(5);
      expect(safeIntegerTransformer.from(null)).toBeNull();
      expect(() => safeIntegerTransformer.to(2 ** 53)).toThrow(RangeError);
    });
  });

  describe('schema and DataSource', () => {
    it('runs the shipped migrations once into its own table, and they match the entities', async () => {
      const schema = newSchema();
      const clusterId = uniqueName('c');
      // Several nodes starting together on a fresh database: the migration runs once.
      await Promise.all([1, 2, 3].map((nodeId) => storage({ nodeId, clusterId, dataSourceOptions: { url: DATABASE_URL, schema } }).load()));
      expect(await sql(`SELECT name FROM ${RAFT_MIGRATIONS_TABLE} ORDER BY id`, [], schema)).toEqual([{ name: 'RaftInitialSchema1764400000000' }, { name: 'RaftSnapshots1796400000000' }]);
      const dataSource = new DataSource({
        type: 'postgres',
        url: DATABASE_URL,
        schema,
        entities: [...RAFT_ENTITIES],
        migrations: [...RAFT_MIGRATIONS],
        migrationsTableName: RAFT_MIGRATIONS_TABLE,
      });
      await dataSource.initialize();
      try {
        expect(await dataSource.showMigrations()).toBe(false); // nothing pending in TypeORM's eyes either
        const drift = await dataSource.driver.createSchemaBuilder().log();
        expect(drift.upQueries.map((q) => q.query)).toEqual([]);
        // And the entities read the rows, bigint columns as numbers.
        const s = storage({ nodeId: 5, clusterId, dataSourceOptions: { url: DATABASE_URL, schema } });
        await s.load();
        await s.save({ hardState: { term: 3, vote: 5, commit: 0 }, entries: [command(1, 3)] });
        const rows = await dataSource.getRepository(RAFT_ENTITIES[0]).find({ where: { clusterId, nodeId: 5 } });
        expect(rows).toMatchObject([{ clusterId, nodeId: 5, index: 1, term: 3, type: 'command', config: null }]);
      } finally {
        await dataSource.destroy();
      }
    });

    it("uses an application's DataSource without destroying it, and does not leave its lock on the pool", async () => {
      const dataSource = new DataSource({ type: 'postgres', url: DATABASE_URL, schema: SCHEMA, poolSize: 2 });
      await dataSource.initialize();
      try {
        const clusterId = uniqueName('c');
        const s = storage({ nodeId: 1, clusterId, dataSource, dataSourceOptions: undefined });
        await s.load();
        await s.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [noop(1, 1)] });
        await s.close();
        expect(dataSource.isInitialized).toBe(true);
        const locks = await dataSource.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = ANY (SELECT pid FROM pg_stat_activity WHERE datname = current_database())
                                              AND objid = (hashtextextended($1, 0) & 4294967295)::oid`, [nodeLockName(SCHEMA, clusterId, 1)]);
        expect(locks).toEqual([{ n: 0 }]);
        const again = storage({ nodeId: 1, clusterId, dataSource, dataSourceOptions: undefined });
        expect((await again.load()).entries).toEqual([noop(1, 1)]);
        await again.close();
      } finally {
        await dataSource.destroy();
      }
    });

    it('validates its options', () => {
      expect(() => new TypeOrmStorage({ nodeId: 0, dataSourceOptions: {} })).toThrow(/nodeId/);
      expect(() => new TypeOrmStorage({ nodeId: 1.5, dataSourceOptions: {} })).toThrow(/nodeId/);
      expect(() => new TypeOrmStorage({ nodeId: 1 })).toThrow(/exactly one of dataSource/);
      expect(() => new TypeOrmStorage({ nodeId: 1, clusterId: '', dataSourceOptions: {} })).toThrow(/clusterId/);
    });

    it('runs two nodes at once in one schema, each seeing only its rows', async () => {
      const clusterId = uniqueName('c');
      const a = storage({ nodeId: 1, clusterId });
      const b = storage({ nodeId: 2, clusterId });
      await Promise.all([a.load(), b.load()]);
      await Promise.all([
        a.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 5, 1) }),
        b.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 2, 1) }),
        a.save({ truncateFrom: 3, entries: [] }),
        b.save({ entries: commands(3, 4, 1) }),
      ]);
      expect((await a.load()).entries).toEqual(commands(1, 2, 1));
      expect((await b.load()).entries).toEqual(commands(1, 6, 1));
    });
  });
});
