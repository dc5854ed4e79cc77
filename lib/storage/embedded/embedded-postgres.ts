import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { TypeOrmStorageOptions } from '../typeorm/typeorm-storage.js';
import { ConnectionGate } from './connection-gate.js';
import { DataDirectoryLock } from './data-dir-lock.js';
import { DurableNodeFS } from './durable-node-fs.js';
import { fsyncTree } from './fsync-tree.js';

export interface EmbeddedPostgresOptions {
  /**
   * The directory of this server, created if missing (for example `./data/node-1`): the database
   * goes into its `pgdata/` subdirectory, next to a lock file. `memory://` keeps everything in memory,
   * gone on stop: for tests only, and not durable (see {@link EmbeddedPostgres.durable}).
   */
  readonly dataDir: string;
  /** Interface to listen on. Default `127.0.0.1`: the server has no authentication. */
  readonly host?: string;
  /** TCP port; default 0, a free one (read it back from {@link EmbeddedPostgres.port}). */
  readonly port?: number;
  /**
   * Client connections accepted at once. Default 1, and raising it is unsafe: PGlite is one
   * PostgreSQL session, so all connections share it (session settings, advisory locks, the unnamed
   * prepared statement), and pglite-socket 0.2.x interleaves the extended-protocol messages of two
   * connections, so one client can get another's statement and results
   * (electric-sql/pglite#1046). One {@link TypeOrmStorage} needs exactly one connection.
   */
  readonly maxConnections?: number;
  /** How long a connection beyond {@link maxConnections} waits for a free one before it is refused. Default 1000 ms. */
  readonly connectionWaitMs?: number;
}

/** What `pg` / TypeORM need to reach an {@link EmbeddedPostgres}. */
export interface EmbeddedPostgresConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly database: string;
}

/** PGlite's single role and database. */
const USER = 'postgres';
const DATABASE = 'postgres';

/**
 * The zero-set-up PostgreSQL: PGlite (PostgreSQL compiled to WebAssembly, running in this process)
 * behind pglite-socket's wire-protocol server, reached on a loopback TCP port, so the storage uses
 * the same TypeORM and `pg` code as with a real server.
 *
 * ```ts
 * const pg = await EmbeddedPostgres.start({ dataDir: `./data/node-${id}` });
 * const storage = new TypeOrmStorage({ nodeId: id, ...pg.storageOptions() });
 * // ...
 * await storage.close();
 * await pg.stop();
 * ```
 *
 * **Connections.** One at a time (see {@link EmbeddedPostgresOptions.maxConnections}): one node per
 * embedded server, which is how it is meant to be used (a data directory per node). A second client
 * waits up to {@link EmbeddedPostgresOptions.connectionWaitMs} for it, then is refused with a
 * PostgreSQL error (SQLSTATE 53300, "... takes 1 connection(s) at a time") by the
 * {@link ConnectionGate} in front of pglite-socket.
 *
 * **Durability.** On a data directory, a commit is on disk when it returns, like on a native server:
 * PGlite's Node filesystem writes each PostgreSQL file as a real file, and this class starts
 * PostgreSQL with fsync on and `wal_sync_method = fsync` over a filesystem whose fsync reaches the
 * disk ({@link DurableNodeFS}); at start it commits one transaction and checks that it caused an
 * fsync, and refuses to start otherwise. So `SHOW fsync` says `on` truthfully, and the storage's
 * durability check passes without any unsafe option. With `memory://` nothing survives the process:
 * `SHOW fsync` says `off`, and {@link storageOptions} passes `unsafeAllowAsyncCommit` explicitly.
 *
 * **Exclusion.** PGlite is a single session, so PostgreSQL advisory locks cannot keep two clients of
 * one embedded server apart (a session re-acquires its own lock). What keeps a node unique is the
 * data directory's lock file ({@link DataDirectoryLock}: one process per directory) and the single
 * connection; within one process, {@link TypeOrmStorage} also refuses a second storage for a node
 * it already has open.
 *
 * **Speed.** PGlite is single-threaded and runs in this process's event loop: fine for development,
 * tests and small clusters; use a real PostgreSQL for production load.
 */
export class EmbeddedPostgres {
  private stopping: Promise<void> | undefined;

  private constructor(
    /** The directory given to {@link start}, resolved; `memory://` for an in-memory server. */
    readonly dataDir: string,
    readonly host: string,
    readonly port: number,
    /** Whether a commit survives a crash of the process or the machine (false for `memory://`). */
    readonly durable: boolean,
    private readonly db: PGlite,
    private readonly server: PGLiteSocketServer,
    private readonly gate: ConnectionGate,
    private readonly filesystem: DurableNodeFS | undefined,
    private readonly lock: DataDirectoryLock | undefined,
  ) {}

  static async start(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
    const inMemory = options.dataDir.startsWith('memory://');
    const dataDir = inMemory ? options.dataDir : path.resolve(options.dataDir);
    const lock = inMemory ? undefined : DataDirectoryLock.acquire(dataDir);
    let db: PGlite | undefined;
    let server: PGLiteSocketServer | undefined;
    let gate: ConnectionGate | undefined;
    try {
      let filesystem: DurableNodeFS | undefined;
      if (inMemory) {
        db = await PGlite.create({ dataDir: 'memory://' });
      } else {
        const pgdata = path.join(dataDir, 'pgdata');
        const fresh = !fs.existsSync(path.join(pgdata, 'PG_VERSION'));
        filesystem = new DurableNodeFS(pgdata);
        db = await PGlite.create({
          fs: filesystem,
          startParams: [...PGlite.defaultStartParams.filter((param) => param !== '-F'), '-c', 'wal_sync_method=fsync'],
        });
        if (fresh) await fsyncTree(pgdata);
        await EmbeddedPostgres.checkCommitsFsync(db, filesystem);
      }
      const socketPath = EmbeddedPostgres.privateSocketPath(inMemory ? undefined : dataDir);
      const maxConnections = options.maxConnections ?? 1;
      // pglite-socket listens on a private local socket; clients reach it through the gate's TCP port,
      // with slack for connections the gate has let go of but pglite-socket has not yet cleaned up.
      server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: maxConnections + 8 });
      await server.start();
      const host = options.host ?? '127.0.0.1';
      let described = `embedded PostgreSQL on ${dataDir}`;
      gate = new ConnectionGate(socketPath, maxConnections, options.connectionWaitMs ?? 1_000, () => described);
      const port = await gate.listen(host, options.port ?? 0);
      described = `embedded PostgreSQL at ${host}:${port} (${dataDir})`;
      return new EmbeddedPostgres(dataDir, host, port, !inMemory, db, server, gate, filesystem, lock);
    } catch (error) {
      await gate?.close().catch(() => undefined);
      await server?.stop().catch(() => undefined);
      await db?.close().catch(() => undefined);
      lock?.release();
      throw error;
    }
  }

  /**
   * Where pglite-socket listens, reached only through the gate: a named pipe on Windows; elsewhere a
   * Unix socket in the data directory (a stale one, left by a killed process, is removed: the
   * directory lock is ours), or in the temporary directory when that path would be too long.
   */
  private static privateSocketPath(dataDir: string | undefined): string {
    if (process.platform === 'win32') return `\\\\.\\pipe\\nestjs-raft-${randomUUID()}`;
    const inDataDir = dataDir && path.join(dataDir, 'pglite.sock');
    if (inDataDir && Buffer.byteLength(inDataDir) < 100) {
      fs.rmSync(inDataDir, { force: true });
      return inDataDir;
    }
    return path.join(os.tmpdir(), `nestjs-raft-pglite-${randomUUID().slice(0, 8)}.sock`);
  }

  /** Trust, but verify: a commit must have reached the disk through an fsync. */
  private static async checkCommitsFsync(db: PGlite, filesystem: DurableNodeFS): Promise<void> {
    const before = filesystem.fsyncCount;
    // A WAL record in a transaction that then commits: with synchronous_commit on, the commit flushes it.
    await db.exec("SELECT pg_catalog.pg_logical_emit_message(true, 'nestjs-raft', 'fsync check')");
    if (filesystem.fsyncCount === before) {
      throw new Error(
        'embedded PostgreSQL: a commit did not fsync; this PGlite version does not route fsync to the filesystem as expected, ' +
          'so commits would not be durable. Use the pinned @electric-sql/pglite version, or a real PostgreSQL',
      );
    }
  }

  /** How many fsyncs reached the disk since start (0 for `memory://`). */
  get fsyncCount(): number {
    return this.filesystem?.fsyncCount ?? 0;
  }

  /** Connection options for TypeORM (`dataSourceOptions`) or, with `user` for `username`, for `pg`. */
  connectionOptions(): EmbeddedPostgresConnectionOptions {
    return { host: this.host, port: this.port, username: USER, database: DATABASE };
  }

  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  connectionString(): string {
    return `postgres://${USER}@${this.host}:${this.port}/${DATABASE}`;
  }

  /**
   * The connection part of {@link TypeOrmStorageOptions} for this server. For `memory://` it also sets
   * `unsafeAllowAsyncCommit`, out in the open: such a server loses everything when the process ends.
   */
  storageOptions(): Pick<TypeOrmStorageOptions, 'dataSourceOptions' | 'unsafeAllowAsyncCommit'> {
    return { dataSourceOptions: this.connectionOptions(), ...(this.durable ? {} : { unsafeAllowAsyncCommit: true }) };
  }

  /** Stops accepting connections, shuts PostgreSQL down cleanly (a checkpoint) and releases the directory. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.gate.close();
        await this.server.stop();
        await this.db.close();
      } finally {
        this.lock?.release();
      }
    })();
    return this.stopping;
  }

  /**
   * For crash tests: drops the server the way a killed process would, with no shutdown checkpoint.
   * Client connections are cut, the PGlite instance is abandoned as it is (its memory, and the
   * buffers it never wrote back, go with it) and the directory is released, so a new server can
   * start on it and must recover from the WAL alone.
   */
  async simulateCrash(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.gate.close();
        await this.server.stop();
      } finally {
        this.lock?.release();
      }
    })();
    return this.stopping;
  }
}
