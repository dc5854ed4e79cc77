import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Get, Inject, Injectable, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MemoryStorage,
  RaftModule,
  RaftOptionsError,
  RaftService,
  type RaftModuleOptions,
  type RaftOptionsFactory,
  type RaftStateMachine,
} from '../../lib/index.js';
import { embeddedDataDir } from '../storage/fixtures.js';
import { eventually, freePort, http } from '../integration/helpers.js';

const decoder = new TextDecoder();

/** An injectable state machine with a dependency, to show the module resolves it through Nest. */
@Injectable()
class Counter {
  total = 0;
}

@Injectable()
class CountingMachine implements RaftStateMachine<number> {
  constructor(@Inject(Counter) private readonly counter: Counter) {}
  apply(command: Uint8Array): number {
    this.counter.total += Number(decoder.decode(command));
    return this.counter.total;
  }
}

@Module({ providers: [Counter, CountingMachine], exports: [Counter, CountingMachine] })
class MachineModule {}

@Injectable()
class Settings {
  constructor(readonly nodeId: number, readonly url: string) {}
}

let apps: INestApplication[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
  apps = [];
});

async function listen(module: unknown, host: string, port: number): Promise<INestApplication> {
  const app = await NestFactory.create(module as never, { logger: false });
  apps.push(app);
  await app.listen(port, host);
  return app;
}

async function singleNode(host: string) {
  const port = await freePort(host);
  const url = `http://${host}:${port}`;
  return { port, url, options: { nodeId: 1, url, peers: [{ id: 1, url }], electionTimeoutMs: 100 } };
}

describe('RaftModule', () => {
  it('forRoot with an injectable state machine class resolved through the application', async () => {
    const { port, url, options } = await singleNode('127.0.0.5');
    @Module({ imports: [MachineModule, RaftModule.forRoot({ ...options, stateMachine: CountingMachine, storage: new MemoryStorage() })] })
    class App {}
    const app = await listen(App, '127.0.0.5', port);
    const raft = app.get(RaftService);
    await eventually(() => (raft.isLeader() ? true : undefined), 5000, 'leadership');
    expect(await raft.command('2')).toBe(2);
    expect(await raft.command('5')).toBe(7);
    expect(app.get(Counter).total).toBe(7); // the application's own instance was used
    expect((await http('GET', `${url}/raft/id`)).body).toBe(1);
  });

  it('forRootAsync with useFactory and inject, and a custom RPC path', async () => {
    const { port, url } = await singleNode('127.0.0.6');
    @Module({ providers: [{ provide: Settings, useValue: new Settings(1, url) }], exports: [Settings] })
    class SettingsModule {}
    @Module({
      imports: [
        RaftModule.forRootAsync({
          imports: [SettingsModule],
          inject: [Settings],
          useFactory: (s: Settings): RaftModuleOptions => ({
            nodeId: s.nodeId,
            url: s.url,
            peers: [{ id: s.nodeId, url: `${s.url}` }],
            stateMachine: (_index, command) => decoder.decode(command).toUpperCase(),
            storage: new MemoryStorage(),
            electionTimeoutMs: 100,
          }),
          path: '/cluster-rpc',
        }),
      ],
    })
    class App {}
    const app = await listen(App, '127.0.0.6', port);
    const raft = app.get(RaftService);
    await eventually(() => (raft.isLeader() ? true : undefined), 5000, 'leadership');
    expect(await raft.command('hello')).toBe('HELLO');
    expect((await http('GET', `${url}/cluster-rpc/id`)).body).toBe(1);
    expect((await http('GET', `${url}/raft/id`)).status).toBe(404);
  });

  it('forRootAsync with useClass, made global', async () => {
    const { port, options } = await singleNode('127.0.0.7');
    @Injectable()
    class OptionsFactory implements RaftOptionsFactory {
      createRaftOptions(): RaftModuleOptions {
        return { ...options, stateMachine: () => 'ok', storage: new MemoryStorage() };
      }
    }
    @Controller('probe')
    class Probe {
      constructor(@Inject(RaftService) private readonly raft: RaftService) {}
      @Get()
      get() {
        return { id: this.raft.nodeId };
      }
    }
    @Module({ controllers: [Probe] })
    class Feature {}
    @Module({ imports: [RaftModule.forRootAsync({ useClass: OptionsFactory, isGlobal: true }), Feature] })
    class App {}
    const app = await listen(App, '127.0.0.7', port);
    expect((await http('GET', `${await app.getUrl()}/probe`)).body).toEqual({ id: 1 });
  });

  it('two modules in one process form a cluster without colliding', async () => {
    const hosts = ['127.0.0.8', '127.0.0.9'];
    const ports = await Promise.all(hosts.map((h) => freePort(h)));
    const peers = hosts.map((h, i) => ({ id: i + 1, url: `http://${h}:${ports[i]}` }));
    const started = await Promise.all(
      peers.map(async (p, i) => {
        @Module({ imports: [RaftModule.forRoot({ nodeId: p.id, url: p.url, peers, stateMachine: (index) => index, storage: new MemoryStorage(), electionTimeoutMs: 100, clusterSecret: 'two-modules-test-secret' })] })
        class App {}
        return listen(App, hosts[i]!, ports[i]!);
      }),
    );
    const services = started.map((a) => a.get(RaftService));
    expect(services.map((s) => s.nodeId)).toEqual([1, 2]);
    const leader = await eventually(() => services.find((s) => s.isLeader()), 5000, 'a leader');
    const follower = services.find((s) => s !== leader)!;
    const index = await follower.command('x');
    expect(typeof index).toBe('number');
    expect(follower.leaderId).toBe(leader.nodeId);
  });

  it('refuses invalid options at start, naming the field', async () => {
    const cases: [Partial<RaftModuleOptions>, string][] = [
      [{ nodeId: 0 }, 'nodeId'],
      [{ peers: [{ id: 2, url: 'http://127.0.0.1:1' }] }, 'peers'],
      [{ peers: [{ id: 1, url: 'not a url' }] }, 'peers[0].url'],
      [{ electionTimeoutMs: -1 }, 'electionTimeoutMs'],
      [{ stateMachine: undefined as never }, 'stateMachine'],
      [{ appendEntriesEncoding: 'protobuf' as never }, 'appendEntriesEncoding'],
    ];
    for (const [override, field] of cases) {
      @Module({ imports: [RaftModule.forRoot({ nodeId: 1, peers: [{ id: 1, url: 'http://127.0.0.1:1' }], stateMachine: () => null, storage: new MemoryStorage(), ...override })] })
      class App {}
      const error = await NestFactory.create(App, { logger: false, abortOnError: false }).then(
        (app) => app.close().then(() => undefined),
        (e: unknown) => e,
      );
      expect(error, field).toBeInstanceOf(RaftOptionsError);
      expect((error as RaftOptionsError).field).toBe(field);
    }
  });

  it('runs on the embedded PostgreSQL (the default store) and recovers from it after a restart', async () => {
    const dataDir = await embeddedDataDir(join(mkdtempSync(join(tmpdir(), 'raft-module-')), 'node-1'));
    const { port, options } = await singleNode('127.0.0.10');
    const build = () => {
      @Module({ imports: [RaftModule.forRoot({ ...options, stateMachine: (_i, c) => decoder.decode(c), storage: { embedded: { dataDir } } })] })
      class App {}
      return App;
    };
    let app = await listen(build(), '127.0.0.10', port);
    let raft = app.get(RaftService);
    await eventually(() => (raft.isLeader() ? true : undefined), 10_000, 'leadership');
    expect(await raft.command('one')).toBe('one');
    const before = raft.status();
    await app.close();
    apps = [];
    app = await listen(build(), '127.0.0.10', port);
    raft = app.get(RaftService);
    expect(raft.status().lastIndex).toBeGreaterThanOrEqual(before.lastIndex);
    expect(raft.status().term).toBeGreaterThanOrEqual(before.term);
    await eventually(() => (raft.isLeader() ? true : undefined), 10_000, 'leadership after restart');
    expect(await raft.command('two')).toBe('two');
  });
});
