/**
 * The sample node's settings, from the environment:
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | `NODE_ID` | this node's id (positive integer) | required |
 * | `HOST`, `PORT` | where the HTTP API (and the Raft RPCs) listen | `127.0.0.1`, `3000 + NODE_ID` |
 * | `PUBLIC_URL` | how peers reach this node | `http://HOST:PORT` |
 * | `PEERS` | the initial cluster: `1=http://127.0.0.1:3001,2=…` (this node included); empty to join a running cluster | empty |
 * | `DATABASE_URL` | a PostgreSQL server for the log | embedded PostgreSQL under `DATA_DIR` |
 * | `DATA_DIR` | embedded PostgreSQL's directory | `./data/node-<NODE_ID>` |
 * | `CLUSTER_ID` | keeps several clusters apart in one database | `default` |
 * | `ELECTION_TIMEOUT_MS` | minimum election timeout | 250 |
 */
export interface SampleConfig {
  nodeId: number;
  host: string;
  port: number;
  url: string;
  peers: { id: number; url: string }[];
  databaseUrl?: string;
  dataDir: string;
  clusterId: string;
  electionTimeoutMs: number;
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

export function loadConfig(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const nodeId = Number(env.NODE_ID);
  if (!Number.isSafeInteger(nodeId) || nodeId <= 0) throw new Error(`NODE_ID must be a positive integer, got ${JSON.stringify(env.NODE_ID)}`);
  const host = env.HOST ?? '127.0.0.1';
  const port = Number(env.PORT ?? 3000 + nodeId);
  return {
    nodeId,
    host,
    port,
    url: env.PUBLIC_URL ?? `http://${host}:${port}`,
    peers: parsePeers(env.PEERS),
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    dataDir: env.DATA_DIR ?? `./data/node-${nodeId}`,
    clusterId: env.CLUSTER_ID ?? 'default',
    electionTimeoutMs: Number(env.ELECTION_TIMEOUT_MS ?? 250),
  };
}
