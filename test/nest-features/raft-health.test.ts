import { Controller, Get, Inject, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule, type HealthIndicatorFunction } from '@nestjs/terminus';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStorage, RaftModule, RaftService, type RaftModuleOptions } from '../../lib/index.js';
import { RaftHealthIndicator } from '../../lib/nest/health/raft.health.js';
import { TEST_CLUSTER_OPTIONS, closeApps, eventually, freePort, http, peersOn, startApp } from './fixtures.js';

const decoder = new TextDecoder();

@Controller('health')
class HealthController {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(RaftHealthIndicator) private readonly raft: RaftHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    const indicator: HealthIndicatorFunction = () => this.raft.isHealthy('raft', { maxLag: 2 }); // the result type is terminus's
    return this.health.check([indicator]);
  }
}

function appModule(options: RaftModuleOptions) {
  @Module({
    imports: [RaftModule.forRoot(options), TerminusModule.forRoot({ logger: false })],
    controllers: [HealthController],
    providers: [RaftHealthIndicator], // what the lead adds to RaftModule's providers and exports
  })
  class App {}
  return App;
}

/** A state machine whose `apply` of `wait` blocks until released: committed entries pile up unapplied. */
function gatedMachine() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  return {
    release: () => release(),
    apply: async (_index: number, command: Uint8Array) => {
      if (decoder.decode(command) === 'wait') await gate;
      return null;
    },
  };
}

afterEach(closeApps);

describe('RaftHealthIndicator (through @nestjs/terminus)', () => {
  it('up with a leader and the log applied; degraded while more than maxLag entries wait to be applied; down once stopped', async () => {
    const [p] = await peersOn(['127.0.0.54']);
    const machine = gatedMachine();
    const app = await startApp(
      appModule({ nodeId: 1, url: p!.url, peers: [{ id: 1, url: p!.url }], stateMachine: machine.apply, storage: new MemoryStorage(), electionTimeoutMs: 100 }),
      p!.host,
      p!.port,
    );
    const raft = app.get(RaftService);
    await eventually(() => (raft.isLeader() ? true : undefined), 5000, 'leadership');
    await raft.command('1');

    const up = await http('GET', `${p!.url}/health`);
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ status: 'ok', details: { raft: { status: 'up', role: 'leader', leaderId: 1, nodeId: 1, applyLag: 0, replication: [] } } });
    expect(up.body.details.raft.commitIndex).toBe(raft.commitIndex);

    const pending = ['wait', '2', '3', '4', '5'].map((c) => raft.command(c));
    await eventually(() => (raft.status().commitIndex - raft.status().appliedIndex > 2 ? true : undefined), 5000, 'an apply lag');
    const degraded = await http('GET', `${p!.url}/health`);
    expect(degraded.status).toBe(200); // degraded still serves
    expect(degraded.body).toMatchObject({ status: 'degraded', details: { raft: { status: 'degraded', reason: 'apply_lag' } } });
    expect(degraded.body.details.raft.applyLag).toBeGreaterThan(2);

    machine.release();
    await Promise.all(pending);
    expect(await http('GET', `${p!.url}/health`)).toMatchObject({ status: 200, body: { status: 'ok', details: { raft: { status: 'up', applyLag: 0 } } } });

    const indicator = app.get(RaftHealthIndicator);
    await app.close();
    expect(await indicator.isHealthy()).toMatchObject({ raft: { status: 'down', reason: 'stopped', role: 'stopped' } });
  });

  it('down (503) while no leader is known', async () => {
    const host = '127.0.0.55';
    const [port, absent] = await Promise.all([freePort(host), freePort(host)]);
    const url = `http://${host}:${port}`;
    // node 2 of this two-node cluster never starts: no majority, no leader
    const app = await startApp(
      appModule({
        nodeId: 1,
        url,
        peers: [{ id: 1, url }, { id: 2, url: `http://${host}:${absent}` }],
        stateMachine: () => null,
        storage: new MemoryStorage(),
        electionTimeoutMs: 100,
        ...TEST_CLUSTER_OPTIONS,
      }),
      host,
      port,
    );
    await new Promise((r) => setTimeout(r, 400)); // several election timeouts
    const answer = await http('GET', `${url}/health`);
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ status: 'error', error: { raft: { status: 'down', reason: 'no_leader', leaderId: 0 } } });
    // and programmatically, as HealthCheckService reports it
    await expect(app.get(HealthCheckService).check([() => app.get(RaftHealthIndicator).isHealthy('consensus')])).rejects.toMatchObject({
      response: { status: 'error', details: { consensus: { status: 'down', reason: 'no_leader' } } },
    });
  });
});
