import { afterEach, describe, expect, it } from 'vitest';
import { CommandTimeoutError, ConfigurationChangeError, NotLeaderError } from '../../lib/core/errors.js';
import { holdsEventually } from '../support/wait.js';
import { MemoryCluster } from './memory-cluster.js';

const clusters: MemoryCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stopAll()));
});

describe('learners in the node', { timeout: 30_000 }, () => {
  it('a learner added from a follower receives the log, never leads, and is promoted to voter', async () => {
    const c = new MemoryCluster([1, 2, 3]);
    clusters.push(c);
    await c.startAll();
    const leader = await c.leader();
    await leader.command('set a 1');
    const learner = await c.start(4, true);
    const follower = c.node([1, 2, 3].find((id) => id !== leader.id)!);
    await follower.addLearner({ id: 4 }); // forwarded to the leader
    expect(leader.status().learners).toEqual([{ id: 4 }]);
    expect(leader.status().members.map((m) => m.id)).toEqual([1, 2, 3]);
    await leader.command('set b 2');
    await holdsEventually(() => expect(c.machines.get(4)!.data.get('b')).toBe('2'));
    expect(learner.isLeader()).toBe(false);
    expect(learner.status().learners.map((m) => m.id)).toEqual([4]);
    // A learner can read linearizably (it asks the leader for the read index).
    expect(await learner.read(() => c.machines.get(4)!.data.get('a'))).toBe('1');
    await follower.promoteLearner(4);
    await holdsEventually(() => expect(leader.status().members.map((m) => m.id)).toEqual([1, 2, 3, 4]));
    expect(leader.status().learners).toEqual([]);
  });

  it('does not count toward a majority: with two of three voters down, the leader and a learner commit nothing', async () => {
    const c = new MemoryCluster([1, 2, 3]);
    clusters.push(c);
    await c.startAll();
    const leader = await c.leader();
    await c.start(4, true);
    await leader.addLearner({ id: 4 });
    for (const id of [1, 2, 3]) if (id !== leader.id) c.network.isolate(id);
    // Either it times out, or CheckQuorum (which counts voters only) makes it step down: never an answer.
    const error = await leader.command('set lost 1', { timeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(error instanceof CommandTimeoutError || error instanceof NotLeaderError).toBe(true);
    expect(c.machines.get(leader.id)!.data.has('lost')).toBe(false);
  });

  it('refuses to turn a voter into a learner, and removes a learner with removeMember', async () => {
    const c = new MemoryCluster([1, 2, 3]);
    clusters.push(c);
    await c.startAll();
    const leader = await c.leader();
    const voter = [1, 2, 3].find((id) => id !== leader.id)!;
    await expect(leader.addLearner({ id: voter })).rejects.toBeInstanceOf(ConfigurationChangeError);
    await c.start(4, true);
    await leader.addLearner({ id: 4 });
    await leader.removeMember(4);
    expect(leader.status().learners).toEqual([]);
    expect(leader.status().members.map((m) => m.id)).toEqual([1, 2, 3]);
  });
});

describe('forwarding commands from a follower', { timeout: 30_000 }, () => {
  it('sends concurrent commands in batches: fewer requests than commands, every command applied once with its own answer', async () => {
    const c = new MemoryCluster([1, 2, 3]);
    clusters.push(c);
    await c.startAll();
    const leader = await c.leader();
    const follower = c.node([1, 2, 3].find((id) => id !== leader.id)!);
    let single = 0;
    let batches = 0;
    let batched = 0;
    const handler = leader.rpcHandler;
    c.network.register({
      ...handler,
      command: (command, options) => {
        single++;
        return handler.command(command, options);
      },
      commands: (commands, options) => {
        batches++;
        batched += commands.length;
        return handler.commands!(commands, options);
      },
    });
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => follower.command(`set k${i} v${i}`)));
    expect(answers).toEqual(Array.from({ length: 300 }, (_, i) => `v${i}`));
    expect(single + batched).toBe(300);
    expect(single + batches).toBeLessThan(100); // most of them shared a request
    const machine = c.machines.get(leader.id)!;
    expect(machine.data.size).toBe(300);
    // Applied exactly once each: 300 commands, no duplicate application.
    const appliedCommands = machine.appliedIndexes.length;
    expect(appliedCommands).toBe(300);

    // Commands that arrive in one event-loop turn leave together, even with no batch outstanding
    // (before, each of the first few left alone while a request slot was free).
    single = batches = batched = 0;
    expect(await Promise.all(Array.from({ length: 20 }, (_, i) => follower.command(`set burst${i} ${i}`)))).toEqual(Array.from({ length: 20 }, (_, i) => `${i}`));
    expect({ single, batches, batched }).toEqual({ single: 0, batches: 1, batched: 20 });
  });
});

describe('ambiguous outcomes', { timeout: 30_000 }, () => {
  it('a command that reached a leader and then lost every leader ends in CommandTimeoutError (it may have been applied), not NotLeaderError', async () => {
    const c = new MemoryCluster([1, 2, 3]);
    clusters.push(c);
    await c.startAll();
    const leader = await c.leader();
    c.network.isolate(leader.id); // it accepts the command, cannot commit it, steps down (CheckQuorum) and knows no leader
    const error = await leader.command('set maybe 1', { timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(leader.leaderId).toBe(0);
    expect(error).toBeInstanceOf(CommandTimeoutError);
  });
});

describe('a forwarded batch on the leader', { timeout: 30_000 }, () => {
  it("listens to the request's abort signal once per batch, not once per command (no MaxListenersExceededWarning)", async () => {
    const c = new MemoryCluster([1]);
    clusters.push(c);
    await c.startAll();
    const leader = await c.leader();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      const commands = Array.from({ length: 50 }, (_, i) => new TextEncoder().encode(`set b${i} ${i}`));
      const outcomes = await leader.rpcHandler.commands!(commands, { signal: controller.signal, timeoutMs: 5_000 });
      expect(outcomes.every((o) => o.ok)).toBe(true);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
