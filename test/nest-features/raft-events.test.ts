import { Inject, Injectable, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStorage, RaftModule, RaftService } from '../../lib/index.js';
import { OnCommit, OnLeaderElected, OnLeadershipLost, type CommitEvent, type LeaderElectedEvent, type LeadershipLostEvent } from '../../lib/nest/decorators/raft-event.decorators.js';
import { RaftExplorer } from '../../lib/nest/decorators/raft.explorer.js';
import { CapturingLogger, Faults, TEST_CLUSTER_OPTIONS, closeApps, eventually, faultyTransport, leaderOf, peersOn, sleep, startApp } from './fixtures.js';

const decoder = new TextDecoder();

@Injectable()
class Listener {
  readonly elected: LeaderElectedEvent[] = [];
  readonly lost: LeadershipLostEvent[] = [];
  readonly all: CommitEvent[] = [];
  readonly slowCalls: { index: number; start: number; end: number }[] = [];
  readonly afterFailure: string[] = [];
  /** Events as they were delivered, to check the order across elected/lost handlers. */
  readonly leadership: string[] = [];

  @OnLeaderElected()
  async onElected(event: LeaderElectedEvent): Promise<void> {
    await sleep(20); // a slow "elected" handler: the "lost" handler must still come after it
    this.elected.push(event);
    this.leadership.push(`elected ${event.term}`);
  }

  @OnLeadershipLost()
  onLost(event: LeadershipLostEvent): void {
    this.lost.push(event);
    this.leadership.push(`lost ${event.term}`);
  }

  @OnCommit()
  onCommit(entry: CommitEvent): void {
    this.all.push(entry);
  }

  @OnCommit({ types: ['command'] })
  async slow(entry: CommitEvent): Promise<void> {
    const start = performance.now();
    await sleep(Math.round(Math.random() * 8));
    this.slowCalls.push({ index: entry.index, start, end: performance.now() });
  }

  @OnCommit({ types: ['command'] })
  failing(entry: CommitEvent): void {
    const text = decoder.decode(entry.command);
    if (text === 'boom') throw new Error('the handler failed on purpose');
    this.afterFailure.push(text);
  }
}

function appModule(options: Parameters<typeof RaftModule.forRoot>[0]) {
  // What the lead wires into RaftModule: the explorer, with DiscoveryModule.
  @Module({ imports: [RaftModule.forRoot(options), DiscoveryModule], providers: [Listener, RaftExplorer] })
  class App {}
  return App;
}

afterEach(closeApps);

describe('@OnLeaderElected / @OnLeadershipLost / @OnCommit', () => {
  it('single node: elected with its term; every committed entry in index order; a throwing handler is logged and skipped; slow handlers are awaited in order', async () => {
    const [p] = await peersOn(['127.0.0.41']);
    const logger = new CapturingLogger();
    const app = await startApp(
      appModule({ nodeId: 1, url: p!.url, peers: [{ id: 1, url: p!.url }], stateMachine: (_i, c) => decoder.decode(c), storage: new MemoryStorage(), electionTimeoutMs: 100 }),
      p!.host,
      p!.port,
      { logger },
    );
    const raft = app.get(RaftService);
    const listener = app.get(Listener);
    await eventually(() => (raft.isLeader() ? true : undefined), 5000, 'leadership');
    await eventually(() => (listener.elected.length > 0 ? true : undefined), 5000, '@OnLeaderElected');
    expect(listener.elected).toEqual([{ nodeId: 1, term: raft.term }]);

    const words = ['a', 'b', 'boom', 'c', ...Array.from({ length: 20 }, (_, i) => `w${i}`)];
    await Promise.all(words.map((w) => raft.command(w))); // concurrent: batched by group commit
    await eventually(() => (listener.slowCalls.length === words.length && listener.afterFailure.length === words.length - 1 ? true : undefined), 5000, 'handlers');

    // @OnCommit(): every entry (the leader's noop included), gapless, in index order, with the command's own bytes
    const indexes = listener.all.map((e) => e.index);
    expect(indexes).toEqual(Array.from({ length: indexes.length }, (_, i) => indexes[0]! + i));
    expect(listener.all.at(-1)!.index).toBe(raft.commitIndex);
    expect(listener.all.some((e) => e.type === 'noop')).toBe(true);
    const commands = listener.all.filter((e) => e.type === 'command');
    expect(commands.map((e) => decoder.decode(e.command)).sort()).toEqual([...words].sort());
    expect(commands.every((e) => e.term === raft.term)).toBe(true);

    // a slow async handler: entry n+1 only after entry n's promise settled
    const calls = listener.slowCalls;
    expect(calls.map((c) => c.index)).toEqual(commands.map((e) => e.index));
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.start).toBeGreaterThanOrEqual(calls[i - 1]!.end);

    // the throwing handler: logged with where it failed, then it got the following entries
    const boomIndex = commands.find((e) => decoder.decode(e.command) === 'boom')!.index;
    expect(logger.errors.some((m) => m.includes('Listener.failing failed at index ' + boomIndex) && m.includes('the handler failed on purpose'))).toBe(true);
    expect(listener.afterFailure).toEqual(commands.map((e) => decoder.decode(e.command)).filter((w) => w !== 'boom'));
    expect(listener.lost).toEqual([]);

    // no delivery during shutdown: the application's providers are shutting down
    await app.close();
    expect(listener.lost).toEqual([]);
  });

  it('3 nodes: a deposed leader gets @OnLeadershipLost naming the new leader, which gets @OnLeaderElected', async () => {
    const peers = await peersOn(['127.0.0.42', '127.0.0.43', '127.0.0.44']);
    const faults = new Faults();
    const started = await Promise.all(
      peers.map((p) =>
        startApp(
          appModule({
            nodeId: p.id,
            url: p.url,
            peers: peers.map(({ id, url }) => ({ id, url })),
            stateMachine: () => null,
            storage: new MemoryStorage(),
            electionTimeoutMs: 200,
            // Without CheckQuorum the cut-off leader does not step down on its own: it learns of the
            // new leader from its first AppendEntries — the deterministic way to see newLeaderId.
            checkQuorum: false,
            transport: faultyTransport(p.id, faults),
            ...TEST_CLUSTER_OPTIONS,
          }),
          p.host,
          p.port,
        ),
      ),
    );
    const services = started.map((a) => a.get(RaftService));
    const listeners = started.map((a) => a.get(Listener));
    const old = await leaderOf(services);
    const oldTerm = old.term;
    const oldListener = listeners[services.indexOf(old)]!;
    await eventually(() => (oldListener.elected.length === 1 ? true : undefined), 5000, 'elected on the first leader');
    expect(oldListener.elected).toEqual([{ nodeId: old.nodeId, term: oldTerm }]);
    for (const l of listeners) if (l !== oldListener) expect(l.elected).toEqual([]);

    // The old leader can send nothing, and nobody's votes reach it: the others elect a new leader,
    // whose AppendEntries then reach the old one.
    faults.drop((from, to, rpc) => from === old.nodeId || (to === old.nodeId && rpc === 'requestVote'));
    const others = services.filter((s) => s !== old);
    const next = await eventually(() => others.find((s) => s.isLeader() && s.term > oldTerm), 10_000, 'a new leader');
    const nextListener = listeners[services.indexOf(next)]!;
    await eventually(() => (oldListener.lost.length === 1 ? true : undefined), 10_000, '@OnLeadershipLost on the old leader');
    expect(oldListener.lost).toEqual([{ nodeId: old.nodeId, term: oldTerm, currentTerm: next.term, newLeaderId: next.nodeId }]);
    expect(oldListener.leadership).toEqual([`elected ${oldTerm}`, `lost ${oldTerm}`]);
    await eventually(() => (nextListener.elected.length === 1 ? true : undefined), 5000, 'elected on the new leader');
    expect(nextListener.elected).toEqual([{ nodeId: next.nodeId, term: next.term }]);
    expect(nextListener.lost).toEqual([]);

    faults.heal();
    await next.command('after');
    await eventually(() => (old.status().appliedIndex === next.commitIndex ? true : undefined), 5000, 'the old leader catching up');
  });
});
