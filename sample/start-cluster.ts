/**
 * `npm start`: a 3-node cluster of the sample on this machine, each node its own process, public API
 * on 127.0.0.1:3001-3003, Raft RPCs on their own listeners at 127.0.0.1:4001-4003, signed with a
 * cluster secret generated for this run (or RAFT_CLUSTER_SECRET when set). Embedded PostgreSQL by
 * default (./data/node-N); DATABASE_URL switches to a real server. Ctrl-C stops all three.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, 'src', 'main.js');
const count = Number(process.env.NODES ?? 3);
const ids = Array.from({ length: count }, (_, i) => i + 1);
const urlOf = (id: number) => `http://127.0.0.1:${3000 + id}`;
const rpcUrlOf = (id: number) => `http://127.0.0.1:${4000 + id}`;
const peers = ids.map((id) => `${id}=${rpcUrlOf(id)}`).join(',');
// The children get the secret through their environment; it is never printed.
const clusterSecret = process.env.RAFT_CLUSTER_SECRET || randomBytes(32).toString('base64url');

const children = new Map<number, ChildProcess>();
for (const id of ids) {
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, NODE_ID: String(id), PORT: String(3000 + id), RPC_PORT: String(4000 + id), HOST: '127.0.0.1', PEERS: peers, RAFT_CLUSTER_SECRET: clusterSecret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `[node ${id}] `;
  child.stdout!.on('data', (d: Buffer) => process.stdout.write(d.toString().replace(/^(?=.)/gm, prefix)));
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(d.toString().replace(/^(?=.)/gm, prefix)));
  child.on('exit', (code, signal) => console.log(`${prefix}exited (${signal ?? code})`));
  children.set(id, child);
}

function stopAll(): void {
  for (const child of children.values()) child.kill('SIGTERM');
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);

async function clusterStatus(id: number): Promise<{ role: string; leaderId: number; term: number; pid: number } | undefined> {
  try {
    const res = await fetch(`${urlOf(id)}/cluster`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as { role: string; leaderId: number; term: number; pid: number }) : undefined;
  } catch {
    return undefined;
  }
}

const deadline = Date.now() + 60_000;
for (;;) {
  const statuses = await Promise.all(ids.map(clusterStatus));
  const leader = statuses.find((s) => s?.role === 'leader');
  if (leader && statuses.every(Boolean)) {
    console.log('');
    console.log(`cluster up: ${ids.length} nodes`);
    ids.forEach((id, i) => console.log(`  node ${id}  ${urlOf(id)}  (Raft RPCs ${rpcUrlOf(id)}, signed)  pid ${statuses[i]!.pid}  ${statuses[i]!.role}`));
    console.log(`leader: node ${ids[statuses.indexOf(leader)]} (term ${leader.term})`);
    console.log('');
    console.log('try:');
    console.log(`  curl -X PUT ${urlOf(1)}/kv/greeting -H 'content-type: application/json' -d '{"value":"hello"}'`);
    console.log(`  curl ${urlOf(2)}/kv/greeting`);
    console.log(`  curl -X POST ${urlOf(3)}/kv/greeting/cas -H 'content-type: application/json' -d '{"expected":"hello","value":"world"}'`);
    console.log(`  curl ${urlOf(1)}/cluster`);
    console.log('Ctrl-C stops the cluster.');
    break;
  }
  if (Date.now() > deadline) {
    console.error('the cluster did not elect a leader within 60 s');
    stopAll();
    break;
  }
  await new Promise((r) => setTimeout(r, 250));
}
