/**
 * A live 3-node cluster of the sample for the fuzzer: separate processes on loopback, the Raft RPCs on
 * their own ports and signed with a random cluster secret, membership changes behind a random admin
 * token, the logs in the real PostgreSQL when one answers (else embedded PostgreSQL).
 *
 * The state digest reads every node's persisted log, term and vote from the database (tables
 * `raft_log_entries` and `raft_hard_state`, keyed by cluster id and node id) while the nodes run. The
 * embedded PostgreSQL takes one connection only (the node's), so with it the digest falls back to what
 * the nodes report on `GET /cluster` (term, commit index, leader): a weaker check, said so in the output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { RAFT_HARD_STATE_TABLE } from '../../lib/storage/typeorm/entities/raft-hard-state.entity.js';
import { RAFT_LOG_ENTRIES_TABLE } from '../../lib/storage/typeorm/entities/raft-log-entry.entity.js';
import { DATABASE_URL, REAL_POSTGRES, dropTestClusters, eventually, freePort, freshClusterId, http, storageFor } from '../integration/helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface FuzzNode {
  readonly id: number;
  readonly host: string;
  /** The sample's public API. */
  readonly url: string;
  /** The Raft RPC listener. */
  readonly rpcUrl: string;
}

export interface ClusterView {
  readonly nodeId: number;
  readonly pid: number;
  readonly role: string;
  readonly term: number;
  readonly leaderId: number;
  readonly commitIndex: number;
}

/** One node's persisted state, as a digest (and the parts worth printing). */
export interface NodeDigest {
  readonly nodeId: number;
  readonly digest: string;
  readonly entries: number;
  readonly term: number;
  readonly vote: number;
}

export class FuzzCluster {
  readonly clusterId = freshClusterId();
  readonly secret = randomBytes(32).toString('base64url');
  readonly adminToken = randomBytes(16).toString('base64url');
  nodes: FuzzNode[] = [];
  /** Processes that exited while they should have been running. */
  readonly crashes: string[] = [];
  private readonly children = new Map<number, ChildProcess>();
  private readonly output = new Map<number, string>();
  private stopping = false;

  constructor(
    private readonly hosts: readonly string[] = ['127.0.0.38', '127.0.0.39', '127.0.0.40'],
    private readonly electionTimeoutMs = 2000,
  ) {}

  /** Whether the digest reads the database (else the weaker /cluster comparison). */
  get databaseDigest(): boolean {
    return REAL_POSTGRES;
  }

  async start(): Promise<void> {
    this.nodes = await Promise.all(
      this.hosts.map(async (host, i) => {
        const port = await freePort(host);
        const rpcPort = await freePort(host);
        return { id: i + 1, host, url: `http://${host}:${port}`, rpcUrl: `http://${host}:${rpcPort}` };
      }),
    );
    const peers = this.nodes.map((n) => `${n.id}=${n.rpcUrl}`).join(',');
    await Promise.all(
      this.nodes.map(async (node) => {
        const { databaseUrl, dataDir } = await storageFor(this.clusterId, node.id);
        const env: Record<string, string> = {
          ...(process.env as Record<string, string>),
          NODE_ID: String(node.id),
          HOST: node.host,
          PORT: new URL(node.url).port,
          RPC_PORT: new URL(node.rpcUrl).port,
          PEERS: peers,
          CLUSTER_ID: this.clusterId,
          ELECTION_TIMEOUT_MS: String(this.electionTimeoutMs),
          RAFT_CLUSTER_SECRET: this.secret,
          ADMIN_TOKEN: this.adminToken,
          ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: dataDir }),
        };
        delete env.RAFT_PREVIOUS_CLUSTER_SECRETS;
        delete env.RAFT_INSECURE_NO_AUTH;
        const child = spawn(process.execPath, ['--import', 'tsx', 'sample/src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
        const keep = (d: Buffer) => this.output.set(node.id, ((this.output.get(node.id) ?? '') + d.toString()).slice(-20_000));
        child.stdout!.on('data', keep);
        child.stderr!.on('data', keep);
        child.on('exit', (code, signal) => {
          if (!this.stopping) this.crashes.push(`node ${node.id} exited (${signal ?? code}): ${(this.output.get(node.id) ?? '').slice(-2000)}`);
        });
        this.children.set(node.id, child);
      }),
    );
    await eventually(
      async () => {
        if (this.crashes.length > 0) throw new Error(this.crashes.join('\n'));
        const views = await this.views();
        const leaders = views.filter((v) => v.role === 'leader');
        return leaders.length === 1 && views.every((v) => v.leaderId === leaders[0]!.nodeId) ? true : undefined;
      },
      90_000,
      'the fuzz cluster to elect a leader',
    );
  }

  /** Each node's `GET /cluster`. */
  views(): Promise<ClusterView[]> {
    return Promise.all(this.nodes.map(async (n) => (await http('GET', `${n.url}/cluster`)).body as ClusterView));
  }

  /** Lines the nodes logged at error level (a 5xx in the RPC controller is logged as "RPC failed"). */
  errorLines(): string[] {
    return [...this.output.values()].flatMap((text) => text.split('\n').filter((line) => /\bERROR\b|RPC failed|Unhandled|uncaught/i.test(line)));
  }

  /** Whether every process still runs. */
  get alive(): boolean {
    return [...this.children.values()].every((c) => c.exitCode === null && c.signalCode === null);
  }

  /** Every node's persisted log, term and vote (database), or its reported term/commit/leader (embedded). */
  async digests(): Promise<NodeDigest[]> {
    if (!REAL_POSTGRES) {
      const views = await this.views();
      return views.map((v) => ({
        nodeId: v.nodeId,
        digest: createHash('sha256').update(JSON.stringify([v.term, v.commitIndex, v.leaderId])).digest('hex'),
        entries: v.commitIndex,
        term: v.term,
        vote: 0,
      }));
    }
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const out: NodeDigest[] = [];
      for (const node of this.nodes) {
        const hash = createHash('sha256');
        const log = await client.query(
          `SELECT index::text, term::text, type, encode(command, 'base64') AS command, config::text AS config FROM ${RAFT_LOG_ENTRIES_TABLE} WHERE cluster_id = $1 AND node_id = $2 ORDER BY index`,
          [this.clusterId, node.id],
        );
        for (const row of log.rows) hash.update(JSON.stringify([row.index, row.term, row.type, row.command, row.config])).update('\n');
        const hard = await client.query(`SELECT term::text, vote::text FROM ${RAFT_HARD_STATE_TABLE} WHERE cluster_id = $1 AND node_id = $2`, [this.clusterId, node.id]);
        const term = Number(hard.rows[0]?.term ?? 0);
        const vote = Number(hard.rows[0]?.vote ?? 0);
        hash.update(`term ${term} vote ${vote}`);
        out.push({ nodeId: node.id, digest: hash.digest('hex'), entries: log.rowCount ?? 0, term, vote });
      }
      return out;
    } finally {
      await client.end();
    }
  }

  /**
   * Waits until nothing changes any more: every node reports the same commit index, and two digests a
   * little apart are equal. Returns the last digest.
   */
  async settle(timeoutMs = 30_000): Promise<NodeDigest[]> {
    return eventually(
      async () => {
        const views = await this.views();
        if (!views.every((v) => v.commitIndex === views[0]!.commitIndex && v.leaderId === views[0]!.leaderId && v.leaderId !== 0)) return undefined;
        const first = await this.digests();
        await new Promise((r) => setTimeout(r, 600));
        const second = await this.digests();
        return JSON.stringify(first) === JSON.stringify(second) ? second : undefined;
      },
      timeoutMs,
      'the cluster to settle',
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.children.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    await dropTestClusters().catch(() => undefined);
  }
}
