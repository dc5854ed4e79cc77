/**
 * The PostgreSQL the chaos run keeps its nodes' logs in, and the faults it can suffer.
 *
 * - `throwaway` (preferred): a private server made with `initdb` in a temporary directory on a free
 *   port, so the run can stop it abruptly (`pg_ctl stop -m immediate`: every backend is killed, nothing
 *   is flushed, the next start runs crash recovery) without disturbing anyone else on the machine.
 * - `shared` (fallback when `initdb` is missing): databases of this run on an existing server; an
 *   "abrupt stop" refuses new connections to them (`ALLOW_CONNECTIONS false`) and terminates their
 *   backends (`pg_terminate_backend`), which is what a node sees of a crashed server.
 *
 * Each node incarnation gets its own database. Before the node first starts, the database gets an
 * event trigger that puts an audit trigger on `raft_hard_state` as soon as the node's migrations create
 * it: every change of (term, vote) is copied into `chaos_vote_audit` in the same transaction, so the
 * "one vote per term" check sees every durable vote, not a sample of them. Two more triggers serve the
 * checks under log compaction: every entry inserted into `raft_log_entries` is copied into
 * `chaos_log_shadow` (last version per index; compaction does not delete it there), and every snapshot
 * written into `raft_snapshots` is recorded in `chaos_snapshot_audit` as taken or installed (see
 * AUDIT_SQL for how the shadow stays trustworthy through truncations and installed snapshots).
 */
import { execFile as execFileCb, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFile = promisify(execFileCb);

export const AUDIT_SQL = `
CREATE TABLE IF NOT EXISTS chaos_vote_audit (
  seq bigserial PRIMARY KEY, cluster_id text, node_id bigint, term bigint, vote bigint, commit_index bigint,
  at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS chaos_log_shadow (
  node_id bigint NOT NULL, "index" bigint NOT NULL, term bigint NOT NULL, type text NOT NULL, command bytea NOT NULL, config jsonb,
  PRIMARY KEY (node_id, "index"));
CREATE TABLE IF NOT EXISTS chaos_pin (node_id bigint PRIMARY KEY, pinned_to bigint NOT NULL);
CREATE TABLE IF NOT EXISTS chaos_snapshot_audit (
  seq bigserial PRIMARY KEY, node_id bigint, "index" bigint, term bigint, kind text, matched boolean, old_commit bigint,
  at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS chaos_violations (seq bigserial PRIMARY KEY, node_id bigint, detail text, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION chaos_audit_hard_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The durable commit index before this transaction, for the snapshot trigger (transaction-local).
  IF nullif(current_setting('chaos.old_commit', true), '') IS NULL THEN
    PERFORM set_config('chaos.old_commit', CASE WHEN TG_OP = 'INSERT' THEN '0' ELSE OLD.commit_index::text END, true);
  END IF;
  IF TG_OP = 'INSERT' OR NEW.term IS DISTINCT FROM OLD.term OR NEW.vote IS DISTINCT FROM OLD.vote THEN
    INSERT INTO chaos_vote_audit (cluster_id, node_id, term, vote, commit_index) VALUES (NEW.cluster_id, NEW.node_id, NEW.term, NEW.vote, NEW.commit_index);
  END IF;
  RETURN NEW;
END $$;
-- Every entry ever stored, by index (the last version wins): compaction deletes from raft_log_entries,
-- not from here. A version at or below the node's latest own snapshot (chaos_pin) is committed; one
-- that replaces such a version is a violation.
CREATE OR REPLACE FUNCTION chaos_shadow_entries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO chaos_violations (node_id, detail)
    SELECT n.node_id, format('entry %s (term %s %s) at or below an own snapshot (at %s) replaced by term %s %s', n."index", s.term, s.type, p.pinned_to, n.term, n.type)
    FROM new_rows n JOIN chaos_log_shadow s ON s.node_id = n.node_id AND s."index" = n."index" JOIN chaos_pin p ON p.node_id = n.node_id
    WHERE n."index" <= p.pinned_to AND (s.term, s.type, s.command, s.config::text) IS DISTINCT FROM (n.term, n.type, n.command, n.config::text);
  INSERT INTO chaos_log_shadow (node_id, "index", term, type, command, config)
    SELECT node_id, "index", term, type, command, config FROM new_rows
    ON CONFLICT (node_id, "index") DO UPDATE SET term = EXCLUDED.term, type = EXCLUDED.type, command = EXCLUDED.command, config = EXCLUDED.config;
  RETURN NULL;
END $$;
-- Every snapshot written: 'taken' when the stored log holds its index/term (a node's own snapshot is of
-- entries it applied, so it does; so does the rare leader's snapshot that agrees with the log, which
-- keeps the log), else 'installed' (the leader's, replacing a log that is behind or diverges): then the
-- shadow forgets what it held above the old durable commit index (and above the node's own snapshots).
CREATE OR REPLACE FUNCTION chaos_snapshot_written() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_commit bigint := nullif(current_setting('chaos.old_commit', true), '')::bigint;
  matched boolean;
  pin bigint;
BEGIN
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.raft_log_entries WHERE cluster_id = $1 AND node_id = $2 AND "index" = $3 AND term = $4)', TG_TABLE_SCHEMA)
    INTO matched USING NEW.cluster_id, NEW.node_id, NEW."index", NEW.term;
  IF old_commit IS NULL THEN
    EXECUTE format('SELECT commit_index FROM %I.raft_hard_state WHERE cluster_id = $1 AND node_id = $2', TG_TABLE_SCHEMA) INTO old_commit USING NEW.cluster_id, NEW.node_id;
  END IF;
  INSERT INTO chaos_snapshot_audit (node_id, "index", term, kind, matched, old_commit)
    VALUES (NEW.node_id, NEW."index", NEW.term, CASE WHEN matched THEN 'taken' ELSE 'installed' END, matched, old_commit);
  IF matched THEN
    INSERT INTO chaos_pin (node_id, pinned_to) VALUES (NEW.node_id, NEW."index")
      ON CONFLICT (node_id) DO UPDATE SET pinned_to = greatest(chaos_pin.pinned_to, EXCLUDED.pinned_to);
  ELSE
    SELECT p.pinned_to INTO pin FROM chaos_pin p WHERE p.node_id = NEW.node_id;
    DELETE FROM chaos_log_shadow WHERE node_id = NEW.node_id AND "index" > greatest(coalesce(old_commit, 0), coalesce(pin, 0)) AND "index" <= NEW."index";
  END IF;
  RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION chaos_install_audit() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' AND object_type = 'table' LOOP
    IF r.object_identity ~ '(^|\\.)"?raft_hard_state"?$' THEN
      EXECUTE format('CREATE TRIGGER chaos_audit AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION chaos_audit_hard_state()', r.object_identity);
    ELSIF r.object_identity ~ '(^|\\.)"?raft_log_entries"?$' THEN
      EXECUTE format('CREATE TRIGGER chaos_shadow AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION chaos_shadow_entries()', r.object_identity);
    ELSIF r.object_identity ~ '(^|\\.)"?raft_snapshots"?$' THEN
      EXECUTE format('CREATE TRIGGER chaos_snapshot AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION chaos_snapshot_written()', r.object_identity);
    END IF;
  END LOOP;
END $$;
DROP EVENT TRIGGER IF EXISTS chaos_install_audit;
CREATE EVENT TRIGGER chaos_install_audit ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION chaos_install_audit();
`;

export interface PgServerOptions {
  mode: 'auto' | 'throwaway' | 'shared';
  sharedUrl: string;
  /** Make commits asynchronous (the async-commit negative control). */
  asyncCommit: boolean;
  /** The nodes accept asynchronous commit on their own (an env of the sample), so the server can run that way all the time. */
  nodesAcceptAsyncCommit: boolean;
  /** A prefix for the database names, unique to the run. */
  prefix: string;
  keep: boolean;
  log: (line: string) => void;
}

export abstract class PgServer {
  abstract readonly kind: 'throwaway' | 'shared';
  abstract readonly host: string;
  abstract readonly port: number;
  protected up = true;
  readonly databases: string[] = [];
  private chain: Promise<unknown> = Promise.resolve();

  /** Stops and starts never overlap (the fault loop and the final heal may both ask). */
  protected serialized<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.chain.then(operation, operation);
    this.chain = run.catch(() => undefined);
    return run;
  }

  constructor(protected readonly options: PgServerOptions) {}

  get isUp(): boolean {
    return this.up;
  }

  abstract adminUrl(): string;
  abstract urlFor(database: string, applicationName?: string): string;
  /** An abrupt stop: every connection is cut, nothing is flushed. */
  abstract stopAbruptly(): Promise<void>;
  abstract start(): Promise<void>;
  abstract close(): Promise<void>;
  /** Synchronous last resort when the harness is interrupted (an 'exit' handler cannot await). */
  closeNow(): void {}
  /** Only meaningful for the async-commit control on a throwaway server. */
  async setSynchronousCommit(_on: boolean): Promise<void> {}
  describe(): string {
    return `${this.kind} PostgreSQL on ${this.host}:${this.port}`;
  }

  async query<T = Record<string, unknown>>(database: string | undefined, sql: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: database ? this.urlFor(database, 'raft-chaos-harness') : this.adminUrl(), connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** A fresh database for one node incarnation, with the vote audit in place. */
  async createNodeDatabase(name: string): Promise<void> {
    await this.query(undefined, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await this.query(undefined, `CREATE DATABASE ${name}`);
    this.databases.push(name);
    await this.query(name, AUDIT_SQL);
  }

  async waitUntilUp(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.query(undefined, 'SELECT 1');
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(100);
      }
    }
  }
}

class ThrowawayServer extends PgServer {
  readonly kind = 'throwaway' as const;
  readonly host = '127.0.0.1';
  private runAs: string[] = [];

  constructor(
    options: PgServerOptions,
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
  ) {
    super(options);
    if (process.getuid?.() === 0) this.runAs = ['runuser', '-u', 'postgres', '--'];
  }

  private get data(): string {
    return join(this.dir, 'data');
  }

  adminUrl(): string {
    return `postgres://postgres@${this.host}:${this.port}/postgres`;
  }
  urlFor(database: string, applicationName?: string): string {
    return `postgres://postgres@${this.host}:${this.port}/${database}${applicationName ? `?application_name=${encodeURIComponent(applicationName)}` : ''}`;
  }

  private async run(tool: string, args: string[]): Promise<void> {
    const command = [...this.runAs, join(this.bin, tool), ...args];
    await execFile(command[0]!, command.slice(1), { timeout: 60_000 });
  }

  async init(): Promise<void> {
    if (this.runAs.length > 0) {
      const uid = Number(spawnSync('id', ['-u', 'postgres']).stdout.toString().trim());
      const gid = Number(spawnSync('id', ['-g', 'postgres']).stdout.toString().trim());
      chownSync(this.dir, uid, gid);
    }
    chmodSync(this.dir, 0o700);
    await this.run('initdb', ['-D', this.data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
    const settings = [
      `listen_addresses='127.0.0.1'`,
      `port=${this.port}`,
      `unix_socket_directories='${this.dir}'`,
      'max_connections=300',
      'shared_buffers=128MB',
      `fsync=${this.options.asyncCommit && this.options.nodesAcceptAsyncCommit ? 'off' : 'on'}`,
      // The async-commit control: commits are acknowledged from memory; the WAL writer is made lazy so
      // that an immediate stop loses more than a few microseconds of them.
      `synchronous_commit=${this.options.asyncCommit && this.options.nodesAcceptAsyncCommit ? 'off' : 'on'}`,
      ...(this.options.asyncCommit ? ['wal_writer_delay=10000ms', 'wal_writer_flush_after=1GB', 'wal_buffers=64MB', 'checkpoint_timeout=1h', 'max_wal_size=4GB'] : []),
      'log_min_messages=warning',
    ];
    appendFileSync(join(this.data, 'postgresql.conf'), `\n# raft chaos harness\n${settings.join('\n')}\n`);
    await this.start();
  }

  start(): Promise<void> {
    return this.serialized(async () => {
      if (this.up && this.started) return;
      await this.run('pg_ctl', ['-D', this.data, '-l', join(this.dir, 'server.log'), '-w', '-t', '60', 'start']);
      this.up = true;
      this.started = true;
    });
  }
  private started = false;

  stopAbruptly(): Promise<void> {
    return this.serialized(async () => {
      this.up = false;
      await this.run('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', '-t', '60', 'stop']);
    });
  }

  override async setSynchronousCommit(on: boolean): Promise<void> {
    if (!this.up) return;
    await this.query(undefined, `ALTER SYSTEM SET synchronous_commit = ${on ? 'on' : 'off'}`);
    await this.query(undefined, 'SELECT pg_reload_conf()');
  }

  override closeNow(): void {
    const command = [...this.runAs, join(this.bin, 'pg_ctl'), '-D', this.data, '-m', 'immediate', '-w', 'stop'];
    spawnSync(command[0]!, command.slice(1), { stdio: 'ignore', timeout: 30_000 });
    if (!this.options.keep) rmSync(this.dir, { recursive: true, force: true });
  }

  async close(): Promise<void> {
    try {
      await this.run('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already stopped
    }
    if (!this.options.keep) rmSync(this.dir, { recursive: true, force: true });
    else this.options.log(`kept the throwaway PostgreSQL in ${this.dir}`);
  }

  override describe(): string {
    return `throwaway PostgreSQL (${this.bin}) on ${this.host}:${this.port}, data in ${this.dir}`;
  }
}

class SharedServer extends PgServer {
  readonly kind = 'shared' as const;
  readonly host: string;
  readonly port: number;
  private readonly base: URL;

  constructor(options: PgServerOptions) {
    super(options);
    this.base = new URL(options.sharedUrl);
    this.host = this.base.hostname;
    this.port = Number(this.base.port || 5432);
  }

  adminUrl(): string {
    return this.base.href;
  }
  urlFor(database: string, applicationName?: string): string {
    const url = new URL(this.base.href);
    url.pathname = `/${database}`;
    if (applicationName) url.searchParams.set('application_name', applicationName);
    return url.href;
  }

  stopAbruptly(): Promise<void> {
    return this.serialized(async () => {
      this.up = false;
      for (const db of this.databases) await this.query(undefined, `ALTER DATABASE ${db} ALLOW_CONNECTIONS false`);
      await this.query(undefined, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()`, [this.databases]);
    });
  }

  start(): Promise<void> {
    return this.serialized(async () => {
      if (this.up) return;
      for (const db of this.databases) await this.query(undefined, `ALTER DATABASE ${db} ALLOW_CONNECTIONS true`);
      this.up = true;
    });
  }

  async close(): Promise<void> {
    if (this.options.keep) return;
    for (const db of this.databases) await this.query(undefined, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
  }
}

function findPostgresBin(): string | undefined {
  const roots = ['/usr/lib/postgresql'];
  for (const root of roots) {
    if (!existsSync(root)) continue;
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(root, versions[0]!, 'bin');
  }
  const fromConfig = spawnSync('pg_config', ['--bindir']);
  if (fromConfig.status === 0) {
    const dir = fromConfig.stdout.toString().trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb']);
  if (which.status === 0) return join(which.stdout.toString().trim(), '..');
  return undefined;
}

export async function startPostgres(options: PgServerOptions): Promise<PgServer> {
  if (options.mode !== 'shared') {
    const bin = findPostgresBin();
    const canRunAs = process.getuid?.() !== 0 || spawnSync('id', ['-u', 'postgres']).status === 0;
    if (bin && canRunAs) {
      const dir = mkdtempSync(join(tmpdir(), 'raft-chaos-pg-'));
      const server = new ThrowawayServer(options, bin, dir, await freePort());
      try {
        await server.init();
        await server.waitUntilUp();
        return server;
      } catch (error) {
        await server.close().catch(() => undefined);
        if (options.mode === 'throwaway') throw error;
        options.log(`could not start a throwaway PostgreSQL (${(error as Error).message.split('\n')[0]}); using ${options.sharedUrl}`);
      }
    } else if (options.mode === 'throwaway') {
      throw new Error('initdb not found (or no postgres user to run it as root): cannot make a throwaway PostgreSQL');
    } else {
      options.log(`initdb not found; using databases on ${options.sharedUrl} (abrupt stops become backend terminations)`);
    }
  }
  if (options.asyncCommit) throw new Error('the async-commit control needs a throwaway PostgreSQL (it changes server settings)');
  const shared = new SharedServer(options);
  await shared.waitUntilUp(5_000);
  return shared;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
