/**
 * The sample node's settings, from the environment:
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | `NODE_ID` | this node's id (positive integer) | required |
 * | `HOST`, `PORT` | where the public HTTP API (`/kv`, `/cluster`) listens | `127.0.0.1`, `3000 + NODE_ID` |
 * | `RPC_HOST`, `RPC_PORT` | where the Raft RPCs (`/raft/*`) listen, on their own server; `RPC_PORT=none` serves them on the public port instead (not recommended) | `HOST`, `4000 + NODE_ID` |
 * | `PUBLIC_URL` | how peers reach this node's Raft RPCs | `http://RPC_HOST:RPC_PORT` |
 * | `PEERS` | the initial cluster: `1=http://127.0.0.1:4001,2=…` (the peers' RPC urls, this node included); empty to join a running cluster | empty |
 * | `RAFT_CLUSTER_SECRET` | the cluster's shared secret (same on every node, ≥ 16 bytes); required unless the cluster is this node alone | — |
 * | `RAFT_PREVIOUS_CLUSTER_SECRETS` | comma-separated secrets still accepted during a rotation | empty |
 * | `RAFT_INSECURE_NO_AUTH` | `1`: serve the RPCs without authentication (a private development network only) | off |
 * | `ADMIN_TOKEN` | when set, `POST/DELETE /cluster/members` require `authorization: Bearer <token>` | unset (open) |
 * | `DATABASE_URL` | a PostgreSQL server for the log | embedded PostgreSQL under `DATA_DIR` |
 * | `DATA_DIR` | embedded PostgreSQL's directory | `./data/node-<NODE_ID>` |
 * | `CLUSTER_ID` | keeps several clusters apart in one database | `default` |
 * | `ELECTION_TIMEOUT_MS` | minimum election timeout | 250 |
 * | `SNAPSHOT_EVERY` | snapshot the key-value map and compact the log every this many entries (0: never) | 10000 |
 * | `MAX_INFLIGHT_APPENDS` | pipelined AppendEntries per follower (the library's `maxInflightAppends`) | the library's default |
 * | `LEASE_READS` | `1`: reads (`GET /kv/:key`) from the leader's lease, without a heartbeat round (opt-in: assumes clock rates within 10 %; set it on every node) | off |
 * | `APPEND_ENTRIES_ENCODING` | how this node sends AppendEntries: `binary`, or `json` (the Go model's body) | binary |
 * | `SNAPSHOT_TRAILING_ENTRIES` | entries kept before a snapshot when compacting (a follower this little behind gets entries, not the snapshot) | 1000 |
 * | `HTTP_PLATFORM` | the public API's HTTP server: `fastify` (less CPU per request; needs the RPCs' own listener) or `express` | `fastify`; `express` with `RPC_PORT=none` |
 */
export interface SampleConfig {
  nodeId: number;
  host: string;
  port: number;
  /** How peers reach this node's Raft RPCs (the RPC listener's URL, or the public one with `RPC_PORT=none`). */
  url: string;
  /** The Raft RPCs' own listener; undefined: they are served on the public port. */
  rpc?: { host: string; port: number };
  /** Nest's HTTP platform for the public API (see HTTP_PLATFORM). */
  httpPlatform?: 'express' | 'fastify';
  peers: { id: number; url: string }[];
  databaseUrl?: string;
  dataDir: string;
  clusterId: string;
  electionTimeoutMs: number;
  snapshotEvery?: number;
  snapshotTrailingEntries?: number;
  appendEntriesEncoding?: 'binary' | 'json';
  leaseReads?: boolean;
  maxInflightAppends?: number;
  clusterSecret?: string;
  previousClusterSecrets?: string[];
  insecureNoAuth?: boolean;
  adminToken?: string;
}

export function parsePeers(text: string | undefined): { id: number; url: string }[] {
  if (!text?.trim()) return [];
  return text.split(',').map((item) => {
    const [id, url] = item.trim().split('=');
    const parsed = Number(id);
    if (!Number.isSafeInteger(parsed) || parsed <= 0 || !url) throw new Error(`PEERS: expected id=url, got ${JSON.stringify(item)}`);
    return { id: parsed, url };
  });
}

function port(name: string, text: string | undefined, fallback: number): number {
  const value = Number(text ?? fallback);
  if (!Number.isSafeInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port number, got ${JSON.stringify(text)}`);
  return value;
}

function count(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return value;
}

function encoding(text: string): 'binary' | 'json' {
  if (text !== 'binary' && text !== 'json') throw new Error(`APPEND_ENTRIES_ENCODING must be binary or json, got ${JSON.stringify(text)}`);
  return text;
}

function platform(text: string | undefined, rpcListener: boolean): 'express' | 'fastify' {
  // Fastify by default: the bench measured about a third less CPU per request on the nodes than Express.
  const value = text ?? (rpcListener ? 'fastify' : 'express');
  if (value !== 'express' && value !== 'fastify') throw new Error(`HTTP_PLATFORM must be express or fastify, got ${JSON.stringify(text)}`);
  // The RPC routes read raw bodies through Express's parsers; on Fastify they have their own listener.
  if (value === 'fastify' && !rpcListener) throw new Error('HTTP_PLATFORM=fastify needs the Raft RPCs on their own listener: unset RPC_PORT=none');
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const nodeId = Number(env.NODE_ID);
  if (!Number.isSafeInteger(nodeId) || nodeId <= 0) throw new Error(`NODE_ID must be a positive integer, got ${JSON.stringify(env.NODE_ID)}`);
  const host = env.HOST ?? '127.0.0.1';
  const publicPort = port('PORT', env.PORT, 3000 + nodeId);
  const inline = env.RPC_PORT?.toLowerCase() === 'none';
  const rpc = inline ? undefined : { host: env.RPC_HOST ?? host, port: port('RPC_PORT', env.RPC_PORT, 4000 + nodeId) };
  const previous = env.RAFT_PREVIOUS_CLUSTER_SECRETS?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return {
    nodeId,
    host,
    port: publicPort,
    url: env.PUBLIC_URL ?? (rpc ? `http://${rpc.host}:${rpc.port}` : `http://${host}:${publicPort}`),
    ...(rpc ? { rpc } : {}),
    httpPlatform: platform(env.HTTP_PLATFORM, rpc !== undefined),
    peers: parsePeers(env.PEERS),
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    dataDir: env.DATA_DIR ?? `./data/node-${nodeId}`,
    clusterId: env.CLUSTER_ID ?? 'default',
    electionTimeoutMs: Number(env.ELECTION_TIMEOUT_MS ?? 250),
    ...(env.SNAPSHOT_EVERY !== undefined ? { snapshotEvery: count('SNAPSHOT_EVERY', env.SNAPSHOT_EVERY) } : {}),
    ...(env.SNAPSHOT_TRAILING_ENTRIES !== undefined ? { snapshotTrailingEntries: count('SNAPSHOT_TRAILING_ENTRIES', env.SNAPSHOT_TRAILING_ENTRIES) } : {}),
    ...(env.MAX_INFLIGHT_APPENDS !== undefined ? { maxInflightAppends: count('MAX_INFLIGHT_APPENDS', env.MAX_INFLIGHT_APPENDS) } : {}),
    ...(env.LEASE_READS === '1' || env.LEASE_READS === 'true' ? { leaseReads: true } : {}),
    ...(env.APPEND_ENTRIES_ENCODING !== undefined ? { appendEntriesEncoding: encoding(env.APPEND_ENTRIES_ENCODING) } : {}),
    ...(env.RAFT_CLUSTER_SECRET ? { clusterSecret: env.RAFT_CLUSTER_SECRET } : {}),
    ...(previous?.length ? { previousClusterSecrets: previous } : {}),
    ...(env.RAFT_INSECURE_NO_AUTH === '1' || env.RAFT_INSECURE_NO_AUTH === 'true' ? { insecureNoAuth: true } : {}),
    ...(env.ADMIN_TOKEN ? { adminToken: env.ADMIN_TOKEN } : {}),
  };
}
