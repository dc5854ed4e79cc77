import 'reflect-metadata';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MemoryStorage,
  NodeRemovedError,
  errorToWire,
  RaftModule,
  RaftOptionsError,
  RaftRpcListener,
  RaftService,
  type RaftLogger,
  type RaftModuleOptions,
} from '../../lib/index.js';
import { eventually, freePort } from '../integration/helpers.js';
import { membersOn, type Member } from '../support/members.js';
import { send, sendSigned, type Signing } from './helpers.js';

/**
 * The module's security as a user meets it: when it insists on a secret, the RPCs on their own
 * listener, a cluster over signed RPCs, and the 410 answer to a node removed from it.
 */
const SECRET = 'module security test secret 0123';

const apps: INestApplication[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((app) => app.close()));
});

/** A logger that keeps what it is given (to show the secret is never in it). */
function recordingLogger(): RaftLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, log: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), debug: (m) => lines.push(m) };
}

async function createApp(options: Partial<RaftModuleOptions> & { rpcListener?: { host?: string; port?: number } }): Promise<INestApplication> {
  @Module({ imports: [RaftModule.forRoot({ nodeId: 1, stateMachine: () => null, storage: new MemoryStorage(), electionTimeoutMs: 100, ...options } as never)] })
  class App {}
  const app = await NestFactory.create(App, { logger: false, abortOnError: false });
  apps.push(app);
  return app;
}

async function startupError(options: Partial<RaftModuleOptions>): Promise<unknown> {
  return createApp(options).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('when the module insists on a cluster secret', () => {
  const three = [
    { id: 1, url: 'http://127.0.0.30:1' },
    { id: 2, url: 'http://127.0.0.30:2' },
    { id: 3, url: 'http://127.0.0.30:3' },
  ];

  it('refuses to start a multi-node or joining node without a secret, naming clusterSecret', async () => {
    for (const peers of [three, undefined, []]) {
      const error = await startupError({ ...(peers ? { peers } : {}) });
      expect(error, JSON.stringify(peers)).toBeInstanceOf(RaftOptionsError);
      expect((error as RaftOptionsError).field).toBe('clusterSecret');
      expect((error as Error).message).toMatch(/RAFT_CLUSTER_SECRET|insecureNoAuth/);
    }
  });

  it('refuses a short secret without printing it, and takes RAFT_CLUSTER_SECRET from the environment', async () => {
    const short = 'tooshort-123';
    const error = await startupError({ peers: three, clusterSecret: short });
    expect((error as RaftOptionsError).field).toBe('clusterSecret');
    expect((error as Error).message).toMatch(/at least 16 bytes long \(got 12\)/);
    expect((error as Error).message).not.toContain(short);
    const saved = process.env.RAFT_CLUSTER_SECRET;
    try {
      process.env.RAFT_CLUSTER_SECRET = short;
      expect(((await startupError({ peers: three })) as RaftOptionsError).field).toBe('RAFT_CLUSTER_SECRET');
      process.env.RAFT_CLUSTER_SECRET = SECRET;
      expect(await startupError({ peers: three })).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.RAFT_CLUSTER_SECRET;
      else process.env.RAFT_CLUSTER_SECRET = saved;
    }
    expect(((await startupError({ peers: three, clusterSecret: SECRET, previousClusterSecrets: ['x'] })) as RaftOptionsError).field).toBe('previousClusterSecrets[0]');
  });

  it('refuses a listener without a port, and mutual TLS without a secret, naming the option', async () => {
    expect(((await startupError({ peers: three, clusterSecret: SECRET, rpcListener: { host: '127.0.0.30' } })) as RaftOptionsError).field).toBe('rpcListener.port');
    const single = [{ id: 1, url: 'http://127.0.0.30:1' }];
    expect(((await startupError({ peers: single, peerCertificateNodeId: () => 1 })) as RaftOptionsError).field).toBe('peerCertificateNodeId');
  });

  it('starts without a secret with insecureNoAuth (and says so), and a single node without one refuses peer RPCs', async () => {
    const logger = recordingLogger();
    expect(await startupError({ peers: three, insecureNoAuth: true, logger })).toBeUndefined();
    expect(logger.lines.join('\n')).toMatch(/insecureNoAuth: the Raft RPC endpoints accept unauthenticated requests/);

    const host = '127.0.0.30';
    const port = await freePort(host);
    const url = `http://${host}:${port}`;
    const app = await createApp({ url, peers: [{ id: 1, url }] });
    await app.listen(port, host);
    await eventually(() => (app.get(RaftService).isLeader() ? true : undefined), 5000, 'leadership');
    const reply = await sendSigned({ secret: SECRET, sender: 2, clusterId: 'default', to: 1 }, `${url}/raft/appendentries`, {
      term: 99,
      leader_id: 2,
      prev_log_index: 0,
      prev_log_term: 0,
      entries: [],
      commit_index: 0,
    });
    expect(reply.status).toBe(401);
    expect(reply.json).toMatchObject({ code: 'auth_not_configured' });
    expect(app.get(RaftService).isLeader()).toBe(true);
    expect(app.get(RaftService).term).toBeLessThan(99);
  });
});


/** Starts one node with its RPCs on their own listener. */
async function startMember(m: Member, all: readonly Member[], options: Partial<RaftModuleOptions> = {}): Promise<INestApplication> {
  const app = await createApp({
    nodeId: m.id,
    url: m.rpcUrl,
    peers: all.map((p) => ({ id: p.id, url: p.rpcUrl })),
    stateMachine: (index: number) => index,
    clusterId: 'module-security',
    clusterSecret: SECRET,
    rpcListener: { host: m.host, port: m.rpcPort },
    ...options,
  });
  await app.listen(m.port, m.host);
  return app;
}

function leaderOf(nodes: INestApplication[]): RaftService | undefined {
  const leaders = nodes.map((a) => a.get(RaftService)).filter((s) => s.isLeader());
  return leaders.length === 1 ? leaders[0] : undefined;
}

describe('a cluster over signed RPCs on their own listener', () => {
  it('commits over the RPC listeners; the public port never serves /raft; a node with another secret is shut out', async () => {
    const all = await membersOn(['127.0.0.31', '127.0.0.32', '127.0.0.33']);
    const logger = recordingLogger();
    const [a, b] = await Promise.all([startMember(all[0]!, all, { logger }), startMember(all[1]!, all)]);
    const outsider = await startMember(all[2]!, all, { clusterSecret: 'not the cluster secret, 32 bytes' });
    const leader = await eventually(() => leaderOf([a!, b!]), 10_000, 'a leader among the nodes with the secret');
    const follower = [a!, b!].map((x) => x.get(RaftService)).find((s) => s !== leader)!;
    expect(typeof (await follower.command('x'))).toBe('number'); // forwarded to the leader over a signed /raft/command

    expect(a!.get(RaftRpcListener).address).toMatchObject({ host: all[0]!.host, port: all[0]!.rpcPort });
    for (const path of ['/raft/id', '/raft/appendentries']) {
      expect((await send(`${all[0]!.url}${path}`, { method: path.endsWith('id') ? 'GET' : 'POST', body: '{}' })).status, path).toBe(404);
    }
    expect((await send(`${all[0]!.rpcUrl}/raft/id`, { method: 'GET' })).text).toBe('1');
    expect((await send(`${all[0]!.rpcUrl}/raft/appendentries`, { body: '{}' })).status).toBe(401);
    // The listener serves the RPC routes and nothing else: other paths and methods are 404.
    for (const [method, path] of [['GET', '/raft/appendentries'], ['POST', '/raft/nope'], ['GET', '/'], ['POST', '/kv/x']] as const) {
      expect((await send(`${all[0]!.rpcUrl}${path}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) })).status, `${method} ${path}`).toBe(404);
    }
    expect((await send(`${all[0]!.rpcUrl}/raft/id?x=1`, { method: 'GET' })).text).toBe('1');

    // The outsider's requests are refused, so it never learns the log; the others never accept it as leader.
    const outsiderRaft = outsider.get(RaftService);
    await new Promise((r) => setTimeout(r, 500));
    expect(outsiderRaft.commitIndex).toBe(0);
    expect(outsiderRaft.status().lastIndex).toBe(0);
    expect(leaderOf([a!, b!])?.nodeId).toBe(leader.nodeId);
    expect(logger.lines.join('\n')).not.toContain(SECRET);
  });

  it('serves /raft/installsnapshot only on the RPC listener, behind the same checks as the other RPCs', async () => {
    const [m] = await membersOn(['127.0.0.35']);
    const app = await startMember(m!, [m!], { storage: new MemoryStorage(), unauthenticatedRateLimit: false });
    const chunk = {
      term: 1,
      leader_id: 2,
      last_included_index: 1,
      last_included_term: 1,
      configuration: { voters: [1, 2] },
      size: 4,
      offset: 0,
      data: 'AAE=',
      done: false,
    };
    expect((await send(`${m!.url}/raft/installsnapshot`, { body: JSON.stringify(chunk), headers: { 'content-type': 'application/json' } })).status).toBe(404);
    const target = `${m!.rpcUrl}/raft/installsnapshot`;
    const unsigned = await send(target, { body: JSON.stringify(chunk), headers: { 'content-type': 'application/vnd.raft+json' } });
    expect(unsigned.status).toBe(401);
    expect(unsigned.json).toMatchObject({ code: 'unauthenticated' });
    const signing: Signing = { secret: SECRET, sender: 2, clusterId: 'module-security', to: 1 };
    expect((await sendSigned({ ...signing, secret: 'not the cluster secret, 32 bytes' }, target, chunk)).status).toBe(401);
    const malformed = await sendSigned(signing, target, { ...chunk, offset: 9 });
    expect(malformed.status).toBe(400);
    expect(malformed.json.error).toMatch(/offset must not exceed size \(4\)/);
    const mismatch = await sendSigned({ ...signing, sender: 3 }, target, chunk);
    expect(mismatch.status).toBe(403);
    expect(mismatch.json).toMatchObject({ code: 'sender_mismatch' });
    await app.close();
    apps.splice(apps.indexOf(app), 1);
  });

  it('forRootAsync takes the listener address from the options (extra rpcListener: true)', async () => {
    const [m] = await membersOn(['127.0.0.34']);
    @Module({
      imports: [
        RaftModule.forRootAsync({
          useFactory: (): RaftModuleOptions => ({
            nodeId: 1,
            url: m!.rpcUrl,
            peers: [{ id: 1, url: m!.rpcUrl }],
            stateMachine: () => 'ok',
            storage: new MemoryStorage(),
            electionTimeoutMs: 100,
            rpcListener: { host: m!.host, port: m!.rpcPort },
          }),
          rpcListener: true,
        }),
      ],
    })
    class App {}
    const app = await NestFactory.create(App, { logger: false });
    apps.push(app);
    await app.listen(m!.port, m!.host);
    expect((await send(`${m!.rpcUrl}/raft/id`, { method: 'GET' })).text).toBe('1');
    expect((await send(`${m!.url}/raft/id`, { method: 'GET' })).status).toBe(404);
    await app.close();
    apps.length = 0;
    // Closed with the application.
    await expect(send(`${m!.rpcUrl}/raft/id`, { method: 'GET', timeoutMs: 1000 })).rejects.toThrow();
  });

  it('answers 410 to a node removed from the cluster, up to the term of its removal, and not after', async () => {
    const all = await membersOn(['127.0.0.35', '127.0.0.36', '127.0.0.37']);
    const nodes = await Promise.all(all.map((m) => startMember(m, all)));
    const leader = await eventually(() => leaderOf(nodes), 10_000, 'a leader');
    const removed = all.find((m) => m.id !== leader.nodeId)!;
    const stay = all.find((m) => m.id !== leader.nodeId && m.id !== removed.id)!;
    await leader.removeMember(removed.id);
    // The removed node learns it from the leader's 410 to what it forwards: a typed error, not a 500.
    const removedRaft = nodes[removed.id - 1]!.get(RaftService);
    await eventually(
      () => removedRaft.command('from the removed node', { timeoutMs: 3_000 }).then(() => undefined, (e: unknown) => (e instanceof NodeRemovedError ? e : undefined)),
      10_000,
      'NodeRemovedError on the removed node',
    );
    expect(errorToWire(new NodeRemovedError())).toMatchObject({ status: 410, body: { code: 'removed' } });
    await nodes[removed.id - 1]!.close();
    const stayRaft = nodes[stay.id - 1]!.get(RaftService);
    await eventually(() => (stayRaft.status().members.length === 2 && stayRaft.commitIndex === leader.commitIndex ? true : undefined), 5000, 'the change to reach the follower');
    const term = stayRaft.term;
    const as = (to: Member): Signing => ({ secret: SECRET, sender: removed.id, clusterId: 'module-security', to: to.id });
    const voteBody = (t: number) => ({ term: t, candidate_id: removed.id, last_log_index: 1, last_log_term: 1, pre_vote: true });
    const refused = await eventually(
      async () => {
        const reply = await sendSigned(as(stay), `${stay.rpcUrl}/raft/requestvote`, voteBody(term));
        return reply.status === 410 ? reply : undefined;
      },
      5000,
      'a 410 for the removed node',
    );
    expect(refused.json).toMatchObject({ code: 'removed' });
    expect(refused.json.error).toMatch(new RegExp(`node ${removed.id} was removed from the cluster`));
    // A later term is not refused by the rule (only Raft itself judges it): a pre-vote changes nothing.
    const later = await sendSigned(as(stay), `${stay.rpcUrl}/raft/requestvote`, voteBody(term + 1));
    expect(later.status).toBe(200);
    expect(later.json).toMatchObject({ vote_granted: false });
    // The members that stay are never refused.
    const fromLeader: Signing = { secret: SECRET, sender: leader.nodeId, clusterId: 'module-security', to: stay.id };
    const vote = await sendSigned(fromLeader, `${stay.rpcUrl}/raft/requestvote`, { term, candidate_id: leader.nodeId, last_log_index: 0, last_log_term: 0, pre_vote: true });
    expect(vote.status).toBe(200);
    expect(await leader.command('after')).toEqual(expect.any(Number));
  });
});
