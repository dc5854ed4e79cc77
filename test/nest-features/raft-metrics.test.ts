import { Module } from '@nestjs/common';
import { Registry } from 'prom-client';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStorage, RaftModule, RaftService, type RaftModuleOptions } from '../../lib/index.js';
import { RaftHealthIndicator } from '../../lib/nest/health/raft.health.js';
import type { RaftNodeEvent } from '../../lib/nest/metrics/raft-node-events.js';
import { RaftMetrics, provideRaftMetrics } from '../../lib/nest/metrics/raft.metrics.js';
import { Faults, TEST_CLUSTER_OPTIONS, closeApps, eventually, faultyTransport, leaderOf, peersOn, startApp } from './fixtures.js';
import { holdsEventually } from '../support/wait.js';

function appModule(options: RaftModuleOptions, registry: Registry) {
  @Module({ imports: [RaftModule.forRoot(options)], providers: [...provideRaftMetrics({ registry }), RaftHealthIndicator] })
  class App {}
  return App;
}

/** The value of `name` with these labels, as the registry would expose it now (gauges collected). */
async function valueOf(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  type Value = { value: number; labels: Record<string, string | number>; metricName?: string };
  const series = (await registry.getMetricsAsJSON()).flatMap((m) => (m.values as Value[]).map((v) => ({ ...v, name: v.metricName ?? m.name })));
  const found = series.find(
    (v) => v.name === name && Object.keys(v.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l),
  );
  return found?.value;
}

afterEach(closeApps);

describe('RaftMetrics (prom-client)', () => {
  it('single node: term, role, indexes, lag, elections and commits, on a given registry; RPC and batch histograms from the driver events hook', async () => {
    const [p] = await peersOn(['127.0.0.56']);
    const registry = new Registry();
    const events = new Subject<RaftNodeEvent>();
    const app = await startApp(
      appModule({ nodeId: 1, url: p!.url, peers: [{ id: 1, url: p!.url }], stateMachine: () => null, storage: new MemoryStorage(), electionTimeoutMs: 100 }, registry),
      p!.host,
      p!.port,
      // the hook RaftMetrics uses when the driver has it (it does not yet): attached before init
      { before: (a) => Object.assign(a.get(RaftService).node, { events$: events.asObservable() }) },
    );
    const raft = app.get(RaftService);
    await eventually(() => (raft.isLeader() ? true : undefined), 5000, 'leadership');
    for (const c of ['a', 'b', 'c']) await raft.command(c);
    const s = raft.status();
    const node = { node_id: '1' };

    expect(await valueOf(registry, 'raft_term', node)).toBe(s.term);
    expect(await valueOf(registry, 'raft_role', { ...node, role: 'leader' })).toBe(1);
    for (const role of ['follower', 'pre-candidate', 'candidate', 'stopped']) expect(await valueOf(registry, 'raft_role', { ...node, role })).toBe(0);
    expect(await valueOf(registry, 'raft_leader_id', node)).toBe(1);
    expect(await valueOf(registry, 'raft_commit_index', node)).toBe(s.commitIndex);
    expect(await valueOf(registry, 'raft_applied_index', node)).toBe(s.appliedIndex);
    expect(await valueOf(registry, 'raft_last_log_index', node)).toBe(s.lastIndex);
    expect(await valueOf(registry, 'raft_apply_lag', node)).toBe(0);
    expect(await valueOf(registry, 'raft_members', node)).toBe(1);
    expect(await valueOf(registry, 'raft_learners', node)).toBe(0);
    expect(await valueOf(registry, 'raft_snapshot_index', node)).toBe(s.snapshotIndex);
    expect(await valueOf(registry, 'raft_log_start_index', node)).toBe(s.logStartIndex);
    expect(await valueOf(registry, 'raft_elections_total', node)).toBe(1);
    expect(await valueOf(registry, 'raft_elections_won_total', node)).toBe(1);
    expect(await valueOf(registry, 'raft_leadership_lost_total', node)).toBe(0);
    // commits$ (which counts them) is delivered asynchronously, just after command() answers.
    await holdsEventually(async () => expect(await valueOf(registry, 'raft_committed_entries_total', { ...node, type: 'command' })).toBe(3));
    expect(await valueOf(registry, 'raft_committed_entries_total', { ...node, type: 'noop' })).toBe(1);
    expect(await registry.metrics()).toContain('# TYPE raft_replication_lag gauge');

    events.next({ type: 'rpc', rpc: 'AppendEntries', to: 2, ms: 3, ok: true });
    events.next({ type: 'persist', entries: 7, ms: 2 });
    events.next({ type: 'append', to: 2, entries: 5, bytes: 100 });
    expect(await valueOf(registry, 'raft_rpc_duration_seconds_count', { ...node, rpc: 'AppendEntries', peer: '2', outcome: 'ok' })).toBe(1);
    expect(await valueOf(registry, 'raft_persist_batch_entries_sum', node)).toBe(7);
    expect(await valueOf(registry, 'raft_persist_duration_seconds_sum', node)).toBeCloseTo(0.002);
    expect(await valueOf(registry, 'raft_append_entries_batch_entries_sum', node)).toBe(5);
    events.next({ type: 'snapshot', kind: 'taken', index: 9, bytes: 2048, ms: 4 });
    expect(await valueOf(registry, 'raft_snapshot_bytes_sum', { ...node, kind: 'taken' })).toBe(2048);
    expect(await valueOf(registry, 'raft_snapshot_duration_seconds_count', { ...node, kind: 'taken' })).toBe(1);

    await app.close();
    expect(await registry.getMetricsAsJSON()).toEqual([]); // its last node gone, nothing is left registered
  });

  it('3 nodes on one registry: one series per node; on the leader the replication lag of a peer cut off from it', async () => {
    const peers = await peersOn(['127.0.0.57', '127.0.0.58', '127.0.0.59']);
    const registry = new Registry();
    const faults = new Faults();
    const started = await Promise.all(
      peers.map((p) =>
        startApp(
          appModule(
            {
              nodeId: p.id,
              url: p.url,
              peers: peers.map(({ id, url }) => ({ id, url })),
              stateMachine: () => null,
              storage: new MemoryStorage(),
              electionTimeoutMs: 300,
              transport: faultyTransport(p.id, faults),
              ...TEST_CLUSTER_OPTIONS,
            },
            registry,
          ),
          p.host,
          p.port,
        ),
      ),
    );
    const services = started.map((a) => a.get(RaftService));
    const leader = await leaderOf(services);
    const cut = services.find((s) => s !== leader)!;
    for (const s of services) {
      expect(await valueOf(registry, 'raft_role', { node_id: String(s.nodeId), role: s === leader ? 'leader' : 'follower' })).toBe(1);
      expect(await valueOf(registry, 'raft_leader_id', { node_id: String(s.nodeId) })).toBe(leader.nodeId);
    }

    // the leader's AppendEntries no longer reach one follower (the other keeps the majority)
    faults.drop((from, to, rpc) => from === leader.nodeId && to === cut.nodeId && rpc === 'appendEntries');
    for (let i = 0; i < 5; i++) await leader.command(String(i));
    const lag = await valueOf(registry, 'raft_replication_lag', { node_id: String(leader.nodeId), peer: String(cut.nodeId) });
    expect(lag).toBeGreaterThanOrEqual(5);
    const other = services.find((s) => s !== leader && s !== cut)!;
    expect(await valueOf(registry, 'raft_replication_lag', { node_id: String(leader.nodeId), peer: String(other.nodeId) })).toBe(0);
    expect(await valueOf(registry, 'raft_replication_lag', { node_id: String(other.nodeId), peer: String(cut.nodeId) })).toBeUndefined(); // leader only

    // the same lag in the health indicator: shown, and degrading only with maxReplicationLag
    const health = started[services.indexOf(leader)]!.get(RaftHealthIndicator);
    const details = (await health.isHealthy()).raft;
    expect(details).toMatchObject({ status: 'up', role: 'leader' });
    expect(details.replication?.find((r) => r.id === cut.nodeId)?.lag).toBeGreaterThanOrEqual(5);
    expect((await health.isHealthy('raft', { maxReplicationLag: 2 })).raft).toMatchObject({ status: 'degraded', reason: 'replication_lag' });

    faults.heal();
    await eventually(async () => ((await valueOf(registry, 'raft_replication_lag', { node_id: String(leader.nodeId), peer: String(cut.nodeId) })) === 0 ? true : undefined), 5000, 'catch-up');

    // one node closed: its series go, the others stay
    await started[services.indexOf(cut)]!.close();
    expect(await valueOf(registry, 'raft_term', { node_id: String(cut.nodeId) })).toBeUndefined();
    expect(await valueOf(registry, 'raft_term', { node_id: String(leader.nodeId) })).toBe(leader.term);
    expect(started[0]!.get(RaftMetrics)).toBeInstanceOf(RaftMetrics);
  });
});
