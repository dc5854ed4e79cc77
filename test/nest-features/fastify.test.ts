import { Body, Controller, Get, Inject, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpServerDrain, MemoryStorage, NotLeaderError, RaftExceptionFilter, RaftModule, RaftOptionsError, RaftService } from '../../lib/index.js';
import { LeaderOnly } from '../../lib/nest/decorators/leader-only.decorator.js';
import { membersOn, type Member } from '../support/members.js';
import { TEST_CLUSTER_OPTIONS, apps, closeApps, http, leaderOf } from './fixtures.js';

@Controller('ops')
class OpsController {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  /** Replicated through the leader from any node (a follower forwards it). */
  @Post('command')
  async command(@Body() body: { text: string }): Promise<{ answer: unknown; on: number }> {
    return { answer: await this.raft.command(body.text), on: this.raft.nodeId };
  }

  /** Only the leader may do this: the library's NotLeaderError goes through RaftExceptionFilter. */
  @Post('leader-only')
  @LeaderOnly()
  leaderOnly(): { on: number } {
    return { on: this.raft.nodeId };
  }

  /** A RaftError thrown by a handler: RaftExceptionFilter answers it (Fastify's reply has no json()). */
  @Post('raft-error')
  raftError(): never {
    throw new NotLeaderError(7, 'http://node-7.example.test');
  }

  @Get('redirected')
  @LeaderOnly({ redirect: true, leaderUrl: ({ id }) => `http://node-${id}.example.test` })
  redirected(): { on: number } {
    return { on: this.raft.nodeId };
  }
}

function appModule(m: Member, members: readonly Member[], rpcListener: boolean) {
  @Module({
    imports: [
      RaftModule.forRoot({
        nodeId: m.id,
        url: rpcListener ? m.rpcUrl : m.url,
        peers: members.map((p) => ({ id: p.id, url: rpcListener ? p.rpcUrl : p.url })),
        stateMachine: (_index: number, command: Uint8Array) => `applied ${new TextDecoder().decode(command)}`,
        storage: new MemoryStorage(),
        electionTimeoutMs: 300,
        ...TEST_CLUSTER_OPTIONS,
        ...(rpcListener ? { rpcListener: { host: m.host, port: m.rpcPort } } : {}),
      }),
    ],
    controllers: [OpsController],
  })
  class App {}
  return App;
}

afterEach(closeApps);

describe('on Fastify (@nestjs/platform-fastify)', () => {
  it('refuses to serve the Raft RPCs on the application’s own routes, naming rpcListener', async () => {
    const [m] = await membersOn(['127.0.0.60']);
    const app = await NestFactory.create(appModule(m!, [m!], false), new FastifyAdapter(), { logger: false, abortOnError: false });
    apps.push(app);
    const error = await app.init().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RaftOptionsError);
    expect((error as RaftOptionsError).field).toBe('rpcListener');
  });

  it('runs a cluster with the RPCs on their own listener: forwarded commands, typed errors as JSON, @LeaderOnly, a drain', async () => {
    const members = await membersOn(['127.0.0.61', '127.0.0.62', '127.0.0.63']);
    const started = await Promise.all(
      members.map(async (m) => {
        const app = await NestFactory.create(appModule(m, members, true), new FastifyAdapter(), { logger: false, abortOnError: false });
        apps.push(app);
        app.useGlobalFilters(new RaftExceptionFilter());
        await app.listen(m.port, m.host);
        return app;
      }),
    );
    const services = started.map((a) => a.get(RaftService));
    const leader = await leaderOf(services);
    const follower = services.find((s) => s !== leader)!;
    const urlOf = (s: RaftService) => members[s.nodeId - 1]!.url;

    // The public port serves the application only; the RPCs answer on their own listener.
    expect((await http('GET', `${urlOf(leader)}/raft/id`)).status).toBe(404);
    expect((await http('GET', `${members[leader.nodeId - 1]!.rpcUrl}/raft/id`)).body).toBe(leader.nodeId);

    expect(await http('POST', `${urlOf(follower)}/ops/command`, { body: { text: 'x=1' } })).toMatchObject({
      status: 201,
      body: { answer: 'applied x=1', on: follower.nodeId },
    });

    const refused = await http('POST', `${urlOf(follower)}/ops/leader-only`);
    expect(refused.status).toBe(421);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(refused.body).toMatchObject({ statusCode: 421, code: 'not_leader', leader_id: leader.nodeId });
    expect(await http('POST', `${urlOf(leader)}/ops/leader-only`)).toMatchObject({ status: 201, body: { on: leader.nodeId } });

    const filtered = await http('POST', `${urlOf(follower)}/ops/raft-error`);
    expect(filtered).toMatchObject({ status: 421, body: { statusCode: 421, code: 'not_leader', leader_id: 7, leader_url: 'http://node-7.example.test' } });
    expect(filtered.headers.get('content-type')).toMatch(/^application\/json/);

    const redirect = await http('GET', `${urlOf(follower)}/ops/redirected?x=1`);
    expect(redirect.status).toBe(307);
    expect(redirect.headers.get('location')).toBe(`http://node-${leader.nodeId}.example.test/ops/redirected?x=1`);
    expect(redirect.body).toMatchObject({ code: 'not_leader', leader_id: leader.nodeId });

    // HttpServerDrain works on Fastify's server: it stops listening, and the app then closes.
    const app = started[follower.nodeId - 1]!;
    await new HttpServerDrain(app.getHttpServer()).close({ timeoutMs: 1_000 });
    await expect(fetch(`${urlOf(follower)}/ops/redirected`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
    await app.close(); // as the sample does after the drain: Fastify closes a server that no longer listens
    apps.splice(apps.indexOf(app), 1);
  });
});
