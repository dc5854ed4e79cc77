import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { dropTestClusters, eventually, freePort, freshClusterId, http, storageFor } from '../integration/helpers.js';

/**
 * The sample as a user runs it: three separate Node processes on loopback, PostgreSQL for the logs,
 * the Raft RPCs on their own ports (RPC_PORT) and signed with a cluster secret.
 * The leader is killed with SIGKILL — no shutdown hook runs — and must lose nothing acknowledged.
 */
const ELECTION_TIMEOUT_MS = 200;
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.length = 0;
});
afterAll(dropTestClusters);

async function startProcess(env: Record<string, string>): Promise<ChildProcess> {
  const { databaseUrl, dataDir } = await storageFor(env.CLUSTER_ID!, Number(env.NODE_ID));
  const child = spawn(process.execPath, ['--import', 'tsx', 'sample/src/main.ts'], {
    env: { ...process.env, ...env, ELECTION_TIMEOUT_MS: String(ELECTION_TIMEOUT_MS), ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: dataDir }) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.on('exit', (code) => {
    if (code !== null && code !== 0) console.error(`node ${env.NODE_ID} exited with ${code}: ${stderr}`);
  });
  children.push(child);
  return child;
}

interface ClusterView {
  nodeId: number;
  pid: number;
  role: string;
  term: number;
  leaderId: number;
  commitIndex: number;
}

describe('the sample, three processes', () => {
  it('survives kill -9 of the leader with every acknowledged write, and the node recovers on restart', async () => {
    const clusterId = freshClusterId();
    const nodes = await Promise.all(
      [1, 2, 3].map(async (id) => {
        const host = `127.0.0.${id}`;
        const port = await freePort(host);
        const rpcPort = await freePort(host);
        return { id, host, port, url: `http://${host}:${port}`, rpcPort, rpcUrl: `http://${host}:${rpcPort}` };
      }),
    );
    const peers = nodes.map((n) => `${n.id}=${n.rpcUrl}`).join(',');
    const secret = randomBytes(32).toString('base64url');
    const envOf = (n: (typeof nodes)[number]) => ({
      NODE_ID: String(n.id),
      HOST: n.host,
      PORT: String(n.port),
      RPC_PORT: String(n.rpcPort),
      PEERS: peers,
      CLUSTER_ID: clusterId,
      RAFT_CLUSTER_SECRET: secret,
    });
    const processes = new Map(await Promise.all(nodes.map(async (n) => [n.id, await startProcess(envOf(n))] as const)));

    const status = async (n: (typeof nodes)[number]) => (await http('GET', `${n.url}/cluster`)).body as ClusterView;
    const leaderId = await eventually(
      async () => {
        const views = await Promise.all(nodes.map(status));
        const leaders = views.filter((v) => v.role === 'leader');
        return leaders.length === 1 && views.every((v) => v.leaderId === leaders[0]!.nodeId) ? leaders[0]!.nodeId : undefined;
      },
      60_000,
      'the three processes to elect a leader',
    );

    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      const via = nodes[i % 3]!;
      const res = await http('PUT', `${via.url}/kv/k${i}`, { value: `v${i}` });
      expect(res.status).toBe(200);
      acknowledged.push(`k${i}`);
    }

    processes.get(leaderId)!.kill('SIGKILL');
    const survivors = nodes.filter((n) => n.id !== leaderId);
    const newLeader = await eventually(
      async () => {
        const views = await Promise.all(survivors.map(status));
        return views.find((v) => v.role === 'leader' && v.nodeId !== leaderId)?.nodeId;
      },
      20 * ELECTION_TIMEOUT_MS,
      'a new leader after kill -9',
    );
    expect(newLeader).not.toBe(leaderId);
    // The public port never serves the Raft RPCs; the RPC port refuses unsigned requests.
    expect((await http('GET', `${survivors[0]!.url}/raft/id`)).status).toBe(404);
    expect((await http('POST', `${survivors[0]!.url}/raft/appendentries`, {})).status).toBe(404);
    expect((await http('POST', `${survivors[0]!.rpcUrl}/raft/appendentries`, {})).status).toBe(401);
    for (const key of acknowledged) {
      expect((await http('GET', `${survivors[0]!.url}/kv/${key}`)).body).toEqual({ key, value: key.replace('k', 'v') });
    }

    const killed = nodes.find((n) => n.id === leaderId)!;
    processes.set(leaderId, await startProcess(envOf(killed)));
    await http('PUT', `${survivors[1]!.url}/kv/after`, { value: 'restart' });
    const recovered = await eventually(
      async () => {
        const view = await status(killed);
        return view.leaderId === newLeader && view.commitIndex >= acknowledged.length + 2 ? view : undefined;
      },
      30_000,
      'the killed node to rejoin and catch up',
    );
    expect(recovered.term).toBeGreaterThanOrEqual(1);
    expect((await http('GET', `${killed.url}/kv/after`)).body).toEqual({ key: 'after', value: 'restart' });

    // A graceful stop (the public API on Fastify, the sample's default): SIGTERM drains the server,
    // Nest closes, and the process exits with 0.
    const stopping = processes.get(leaderId)!;
    const exited = new Promise<number | null>((resolve) => stopping.once('exit', (code) => resolve(code)));
    stopping.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);
});
