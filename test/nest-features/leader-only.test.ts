import { Controller, Get, Inject, Injectable, Module, Post } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Interval, ScheduleModule } from '@nestjs/schedule';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStorage, RaftModule, RaftService } from '../../lib/index.js';
import { LeaderOnly } from '../../lib/nest/decorators/leader-only.decorator.js';
import { RAFT_LEADER_URL, type LeaderUrlResolver } from '../../lib/nest/decorators/leader-only.options.js';
import { RaftExplorer } from '../../lib/nest/decorators/raft.explorer.js';
import { TEST_CLUSTER_OPTIONS, closeApps, eventually, http, leaderOf, peersOn, sleep, startApp, type Peer } from './fixtures.js';

@Controller('jobs')
class JobsController {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  @Post('run')
  @LeaderOnly()
  run(): { ranOn: number } {
    return { ranOn: this.raft.nodeId };
  }

  @LeaderOnly({ redirect: true }) // above the route decorator: the order does not matter
  @Get('redirected')
  redirected(): { ranOn: number } {
    return { ranOn: this.raft.nodeId };
  }

  @Get('mapped')
  @LeaderOnly({ redirect: true, leaderUrl: ({ id }) => `http://node-${id}.example.test` })
  mapped(): { ranOn: number } {
    return { ranOn: this.raft.nodeId };
  }

  @Get('anywhere')
  anywhere(): { ranOn: number } {
    return { ranOn: this.raft.nodeId };
  }
}

@Injectable()
class Jobs {
  /** [role, term] as seen inside each leader-only run. */
  readonly runsAbove: string[] = [];
  readonly runsBelow: string[] = [];
  ticks = 0;

  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  @Interval(25)
  @LeaderOnly()
  everywhereButFollowersA(): void {
    this.runsAbove.push(this.raft.status().role);
  }

  @LeaderOnly()
  @Interval(25)
  async everywhereButFollowersB(): Promise<void> {
    this.runsBelow.push(this.raft.status().role);
  }

  /** Not leader-only: shows the scheduler does call the methods on every node. */
  @Interval(25)
  tick(): void {
    this.ticks++;
  }

  @LeaderOnly()
  plain(value: string): string {
    return `${value} on ${this.raft.nodeId}`;
  }

  @LeaderOnly()
  async plainAsync(value: string): Promise<string> {
    return `${value} on ${this.raft.nodeId}`;
  }
}

function appModule(p: Peer, peers: readonly Peer[], extraProviders: unknown[] = []) {
  @Module({
    imports: [
      RaftModule.forRoot({
        nodeId: p.id,
        url: p.url,
        peers: peers.map(({ id, url }) => ({ id, url })),
        stateMachine: () => null,
        storage: new MemoryStorage(),
        electionTimeoutMs: 300,
        ...TEST_CLUSTER_OPTIONS,
      }),
      DiscoveryModule,
      ScheduleModule.forRoot(),
    ],
    controllers: [JobsController],
    providers: [Jobs, RaftExplorer, ...(extraProviders as never[])],
  })
  class App {}
  return App;
}

async function cluster(hosts: string[], extraProviders: unknown[] = []) {
  const peers = await peersOn(hosts);
  const started = await Promise.all(peers.map((p) => startApp(appModule(p, peers, extraProviders), p.host, p.port)));
  const services = started.map((a) => a.get(RaftService));
  const everLeader = new Set<number>();
  for (const s of services) s.state$.subscribe((st) => st.role === 'leader' && everLeader.add(s.nodeId));
  const leader = await leaderOf(services);
  const followers = services.filter((s) => s !== leader);
  const urlOf = (s: RaftService) => peers[s.nodeId - 1]!.url;
  const jobsOf = (s: RaftService) => started[s.nodeId - 1]!.get(Jobs);
  return { peers, services, leader, followers, urlOf, jobsOf, everLeader };
}

afterEach(closeApps);

describe('@LeaderOnly()', () => {
  it('HTTP routes: 200 on the leader; 421 naming the leader on a follower, or 307 to it with { redirect: true }', async () => {
    const { leader, followers, urlOf } = await cluster(['127.0.0.45', '127.0.0.46', '127.0.0.47']);

    expect(await http('POST', `${urlOf(leader)}/jobs/run`)).toMatchObject({ status: 201, body: { ranOn: leader.nodeId } });
    for (const f of followers) {
      const answer = await http('POST', `${urlOf(f)}/jobs/run`);
      expect(answer.status).toBe(421);
      expect(answer.body).toMatchObject({ statusCode: 421, code: 'not_leader', leader_id: leader.nodeId, leader_url: urlOf(leader) });
      expect(answer.body.error).toContain(`node ${leader.nodeId}`);
      // routes without the decorator answer anywhere
      expect(await http('GET', `${urlOf(f)}/jobs/anywhere`)).toMatchObject({ status: 200, body: { ranOn: f.nodeId } });
    }

    const follower = followers[0]!;
    const redirect = await http('GET', `${urlOf(follower)}/jobs/redirected?x=1`);
    expect(redirect.status).toBe(307);
    expect(redirect.headers.get('location')).toBe(`${urlOf(leader)}/jobs/redirected?x=1`);
    expect(redirect.body).toMatchObject({ code: 'not_leader', leader_id: leader.nodeId });
    expect(await http('GET', `${urlOf(follower)}/jobs/redirected?x=1`, { follow: true })).toMatchObject({ status: 200, body: { ranOn: leader.nodeId } });
    expect(await http('GET', `${urlOf(leader)}/jobs/redirected`)).toMatchObject({ status: 200, body: { ranOn: leader.nodeId } });

    // a public URL for the leader, given by the route
    const mapped = await http('GET', `${urlOf(follower)}/jobs/mapped`);
    expect(mapped.status).toBe(307);
    expect(mapped.headers.get('location')).toBe(`http://node-${leader.nodeId}.example.test/jobs/mapped`);
    expect(mapped.body.leader_url).toBe(`http://node-${leader.nodeId}.example.test`);
  });

  it('an application-wide RAFT_LEADER_URL provider names the leader in the 421 body', async () => {
    const resolver: LeaderUrlResolver = ({ id, raftUrl }) => `https://public.example.test/node-${id}?raft=${encodeURIComponent(raftUrl ?? '')}`;
    const { leader, followers, urlOf } = await cluster(['127.0.0.48', '127.0.0.49', '127.0.0.50'], [{ provide: RAFT_LEADER_URL, useValue: resolver }]);
    const answer = await http('POST', `${urlOf(followers[0]!)}/jobs/run`);
    expect(answer.status).toBe(421);
    expect(answer.body.leader_url).toBe(resolver({ id: leader.nodeId, raftUrl: urlOf(leader) }));
  });

  it('with the RPCs on their own listener, the Raft url is not offered to clients: 421 with leader_id only, unless a resolver maps it', async () => {
    const hosts = ['127.0.0.45', '127.0.0.46', '127.0.0.47'];
    const rpc = await peersOn(hosts); // the RPC listeners: these urls are what peers use
    const pub = await peersOn(hosts); // the public ports
    const build = (i: number) => {
      @Module({
        imports: [
          RaftModule.forRoot({
            nodeId: i + 1,
            url: rpc[i]!.url,
            peers: rpc.map(({ id, url }) => ({ id, url })),
            stateMachine: () => null,
            storage: new MemoryStorage(),
            electionTimeoutMs: 300,
            rpcListener: { host: rpc[i]!.host, port: rpc[i]!.port },
            ...TEST_CLUSTER_OPTIONS,
          }),
          DiscoveryModule,
        ],
        controllers: [JobsController],
        providers: [RaftExplorer],
      })
      class App {}
      return App;
    };
    const started = await Promise.all(pub.map((p, i) => startApp(build(i), p.host, p.port)));
    const services = started.map((a) => a.get(RaftService));
    const leader = await leaderOf(services);
    const follower = services.find((s) => s !== leader)!;

    const answer = await http('GET', `${pub[follower.nodeId - 1]!.url}/jobs/redirected`);
    expect(answer.status).toBe(421); // no public URL known: no redirect
    expect(answer.body).toMatchObject({ code: 'not_leader', leader_id: leader.nodeId });
    expect(answer.body.leader_url).toBeUndefined();
    expect(answer.headers.get('location')).toBeNull();

    const mapped = await http('GET', `${pub[follower.nodeId - 1]!.url}/jobs/mapped`); // the route's own resolver
    expect(mapped.status).toBe(307);
    expect(mapped.headers.get('location')).toBe(`http://node-${leader.nodeId}.example.test/jobs/mapped`);
    expect(await http('GET', `${pub[leader.nodeId - 1]!.url}/jobs/redirected`)).toMatchObject({ status: 200, body: { ranOn: leader.nodeId } });
  });

  it('@Interval jobs run only on the leader (three applications of the same classes in one process); plain methods return undefined on a follower', async () => {
    const { services, leader, followers, jobsOf, everLeader } = await cluster(['127.0.0.51', '127.0.0.52', '127.0.0.53']);
    await sleep(400);
    await eventually(() => (services.every((s) => jobsOf(s).ticks >= 5) && jobsOf(leader).runsAbove.length >= 3 && jobsOf(leader).runsBelow.length >= 3 ? true : undefined), 5000, 'job runs');

    expect(everLeader.size).toBeLessThan(services.length); // some node never led: the check below is not vacuous
    for (const s of services) {
      const jobs = jobsOf(s);
      // each leader-only run happened while the node led, whatever the decorator order
      expect(new Set([...jobs.runsAbove, ...jobs.runsBelow])).toEqual(jobs.runsAbove.length + jobs.runsBelow.length ? new Set(['leader']) : new Set());
      if (!everLeader.has(s.nodeId)) {
        expect(jobs.ticks).toBeGreaterThanOrEqual(5); // the scheduler called it…
        expect(jobs.runsAbove).toEqual([]); // …and the leader-only jobs did not run
        expect(jobs.runsBelow).toEqual([]);
      }
    }

    expect(jobsOf(leader).plain('x')).toBe(`x on ${leader.nodeId}`);
    await expect(jobsOf(leader).plainAsync('y')).resolves.toBe(`y on ${leader.nodeId}`);
    for (const f of followers) {
      expect(jobsOf(f).plain('x')).toBeUndefined();
      const pending = jobsOf(f).plainAsync('y');
      expect(pending).toBeInstanceOf(Promise); // an async method still returns a promise
      await expect(pending).resolves.toBeUndefined();
    }
  });

  it('refuses to guess on an object no application bound', () => {
    const stray = new Jobs(undefined as never);
    expect(() => stray.plain('x')).toThrow(/no Raft node is known for this object/);
  });
});
