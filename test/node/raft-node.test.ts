import { afterEach, describe, expect, it } from 'vitest';
import { firstValueFrom, take, toArray } from 'rxjs';
import { ConfigurationChangeError, NotLeaderError } from '../../lib/core/errors.js';
import { CommandTimeoutError, NodeStoppedError, RaftOptionsError, StorageFailureError } from '../../lib/node/errors.js';
import { RaftNode } from '../../lib/node/raft-node.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import { MemoryNetwork } from '../../lib/transport/memory-transport.js';
import { MemoryCluster } from './memory-cluster.js';

let cluster: MemoryCluster | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  cluster = undefined;
});

describe('RaftNode (in-process, memory storage and network)', () => {
  it('elects a leader, answers a command on the leader and forwards one from a follower', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    expect(await leader.command('set a 1')).toBe('1');
    const follower = [...cluster.nodes.values()].find((n) => n !== leader)!;
    expect(await follower.command('set b 2')).toBe('2');
    expect(await follower.command('get a')).toBe('1');
    expect(follower.leaderId).toBe(leader.id);
  });

  it('delivers the state machine error to the caller, and keeps going', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await expect(leader.command('fail x')).rejects.toThrow('refused x');
    expect(await leader.command('set x 1')).toBe('1');
  });

  it('emits every committed entry on every node, in order and gapless', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const seen = firstValueFrom(cluster.node(3).commits$.pipe(take(5), toArray()));
    for (let i = 0; i < 5; i++) await leader.command(`set k${i} ${i}`);
    const entries = await seen;
    const indexes = entries.map((e) => e.index);
    expect(indexes).toEqual(indexes.map((_, i) => indexes[0]! + i));
  });

  it('batches concurrent commands into few storage writes (group commit)', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const storage = cluster.storages.get(leader.id)!;
    let saves = 0;
    const save = storage.save.bind(storage);
    storage.save = (batch) => {
      saves++;
      return save(batch);
    };
    const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => leader.command(`set k${i} v${i}`)));
    expect(answers[499]).toBe('v499');
    expect(saves).toBeLessThan(50);
  });

  it('serves again after the leader stops, with a new leader', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const first = await cluster.leader();
    await first.command('set a 1');
    await cluster.stop(first.id);
    const second = await cluster.leader(5000, cluster.ids.filter((id) => id !== first.id));
    expect(second.id).not.toBe(first.id);
    expect(await second.command('get a')).toBe('1');
  });

  it('recovers term, vote, log and configuration after a restart, and re-applies the log', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set a 1');
    const victim = [1, 2, 3].find((id) => id !== leader.id)!;
    await cluster.node(victim).waitForApplied(leader.commitIndex);
    const before = cluster.node(victim).status();
    await cluster.stop(victim);
    const restarted = await cluster.start(victim);
    expect(restarted.term).toBeGreaterThanOrEqual(before.term);
    expect(restarted.status().lastIndex).toBeGreaterThanOrEqual(before.lastIndex);
    expect(restarted.status().members.map((m) => m.id)).toEqual([1, 2, 3]);
    await restarted.waitForApplied(before.appliedIndex);
    expect(cluster.machines.get(victim)!.data.get('a')).toBe('1');
  });

  it('adds a server that started empty, then removes the leader', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set a 1');
    const joiner = await cluster.start(4, true);
    await leader.addMember({ id: 4 });
    expect(leader.status().members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    await joiner.waitForApplied(leader.commitIndex);
    expect(cluster.machines.get(4)!.data.get('a')).toBe('1');
    await leader.removeMember(leader.id);
    const next = await cluster.leader(5000, [1, 2, 3, 4].filter((id) => id !== leader.id));
    expect(next.status().members.map((m) => m.id)).not.toContain(leader.id);
    expect(await next.command('get a')).toBe('1');
    expect(leader.isLeader()).toBe(false);
  });

  it('replays stored entries and then live ones with commitsFrom', async () => {
    cluster = new MemoryCluster([1]);
    await cluster.startAll();
    const leader = await cluster.leader();
    for (let i = 0; i < 5; i++) await leader.command(`set k${i} ${i}`);
    const all = firstValueFrom(leader.commitsFrom(2).pipe(take(7), toArray()));
    await leader.command('set late 1');
    await leader.command('set later 2');
    const indexes = (await all).map((e) => e.index);
    expect(indexes).toEqual([2, 3, 4, 5, 6, 7, 8]);
  });

  it('times out a command that cannot commit, with a typed error', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    for (const id of [1, 2, 3]) if (id !== leader.id) cluster.network.disconnect(leader.id, id);
    await expect(leader.command('set z 1', { timeoutMs: 40 })).rejects.toBeInstanceOf(CommandTimeoutError);
  });

  it('without a leader, a command fails with NotLeaderError', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.start(1);
    await expect(cluster.node(1).command('set a 1', { timeoutMs: 200 })).rejects.toBeInstanceOf(NotLeaderError);
  });

  it('stops cleanly: in-flight commands are rejected with NodeStoppedError', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    for (const id of [1, 2, 3]) if (id !== leader.id) cluster.network.disconnect(leader.id, id);
    const pending = leader.command('set z 1');
    await cluster.stop(leader.id);
    await expect(pending).rejects.toBeInstanceOf(NodeStoppedError);
    await expect(leader.command('set y 1')).rejects.toBeInstanceOf(NodeStoppedError);
  });

  it('stops when storage fails, rejecting what waits on it', async () => {
    cluster = new MemoryCluster([1]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const storage = cluster.storages.get(1)!;
    storage.save = () => Promise.reject(new Error('disk on fire'));
    await expect(leader.command('set a 1')).rejects.toBeInstanceOf(StorageFailureError);
    expect(leader.isRunning).toBe(false);
  });

  it('validates its options and names the bad field', () => {
    const base = { storage: new MemoryStorage(), transport: new MemoryNetwork().transport(1), stateMachine: () => null };
    expect(() => new RaftNode({ ...base, nodeId: 0 })).toThrowError(expect.objectContaining({ field: 'nodeId' }));
    expect(() => new RaftNode({ ...base, nodeId: 1, peers: [{ id: 2 }] })).toThrowError(expect.objectContaining({ field: 'peers' }));
    expect(() => new RaftNode({ ...base, nodeId: 1, electionTimeoutMs: -5 })).toThrow(RaftOptionsError);
    expect(() => new RaftNode({ ...base, nodeId: 1, peers: [{ id: 1 }, { id: 1 }] })).toThrowError(expect.objectContaining({ field: 'peers[1].id' }));
  });
});

describe('waiting for a leader', () => {
  // Regression: leader$ still named the old leader while the engine had already dropped it (the Ready
  // that says so was being saved), so the wait for "a new leader" ended at once and read()/command()
  // looped on microtasks: timers and I/O (the very save that would end the wait) starved until the deadline.
  it('yields to the event loop while its loss of the leader is still being saved', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set a 1');
    const follower = [...cluster.nodes.values()].find((n) => n !== leader)!;
    const storage = cluster.storages.get(follower.id)!;
    const save = storage.save.bind(storage);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    storage.save = async (batch) => {
      await gate; // a slow disk on the follower, from now on until released
      await save(batch);
    };
    const other = [...cluster.ids].find((id) => id !== leader.id && id !== follower.id)!;
    // A vote request at a higher term (a transfer skips the lease check): the engine forgets the leader now.
    const vote = follower.rpcHandler.requestVote({ type: 'RequestVote', from: other, to: follower.id, term: follower.term + 1, lastLogIndex: 1_000, lastLogTerm: 1_000, preVote: false, transfer: true });
    expect(follower.leaderId).toBe(0);
    const order: string[] = [];
    // How often the retry loops woke up before the save was let through: a handful, not a spin.
    const internals = follower as unknown as { waitForLeaderChange: (...args: unknown[]) => Promise<void> };
    const wait = internals.waitForLeaderChange.bind(follower);
    let waits = 0;
    internals.waitForLeaderChange = (...args) => (waits++, wait(...args));
    let waitsBeforeRelease = -1;
    setTimeout(() => {
      order.push('timer fired');
      waitsBeforeRelease = waits;
      release();
    }, 50);
    const read = follower.barrier({ timeoutMs: 3_000 }).then(
      () => order.push('barrier settled'),
      () => order.push('barrier settled'),
    );
    const command = follower.command('set b 2', { timeoutMs: 3_000 }).then(
      () => order.push('command settled'),
      () => order.push('command settled'),
    );
    await Promise.all([read, command]);
    expect(order[0]).toBe('timer fired'); // with the spin, both calls ran to their deadline before any timer
    expect(waitsBeforeRelease).toBeGreaterThan(0);
    expect(waitsBeforeRelease).toBeLessThanOrEqual(4); // one wait per call; a spin yielding through setImmediate makes thousands
    expect((await vote).voteGranted).toBe(true); // answered once its save was done
  });
});

describe('leader persistence in parallel with replication (thesis §10.2.1)', () => {
  it('sends a batch to followers while it is still writing it, and still answers after commit', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set warm 0'); // followers confirmed: the leader pipelines to them
    const events: string[] = [];
    const storage = cluster.storages.get(leader.id)!;
    const save = storage.save.bind(storage);
    storage.save = async (batch) => {
      const carries = batch.entries.some((e) => new TextDecoder().decode(e.command).includes('set parallel'));
      await new Promise((r) => setTimeout(r, 300)); // a slow disk on the leader
      await save(batch);
      if (carries) events.push('leader wrote it');
    };
    for (const node of cluster.nodes.values()) {
      if (node === leader) continue;
      const handler = node.rpcHandler;
      cluster.network.register({
        ...handler,
        appendEntries: (request) => {
          if (request.entries.some((e) => new TextDecoder().decode(e.command).includes('set parallel'))) events.push(`follower ${node.id} got it`);
          return handler.appendEntries(request);
        },
      });
    }
    expect(await leader.command('set parallel 1')).toBe('1');
    await new Promise((r) => setTimeout(r, 400));
    expect(events.indexOf('leader wrote it')).toBeGreaterThan(0); // a follower had it before the leader's write finished
    expect(events[0]).toMatch(/^follower \d got it$/);
  });
});

describe('linearizable reads without log writes (ReadIndex)', () => {
  it('reads on the leader and on a follower see every acknowledged write, and move no index', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const follower = [...cluster.nodes.values()].find((n) => n !== leader)!;
    await leader.command('set r 1');
    const before = { commit: leader.commitIndex, last: leader.status().lastIndex };
    for (let i = 0; i < 20; i++) {
      expect(await leader.read(() => cluster!.machines.get(leader.id)!.data.get('r'))).toBe('1');
      expect(await follower.read(() => cluster!.machines.get(follower.id)!.data.get('r'))).toBe('1');
    }
    expect(leader.commitIndex).toBe(before.commit); // 40 reads, not one log entry
    expect(leader.status().lastIndex).toBe(before.last);
    await follower.command('set r 2');
    expect(await follower.read(() => cluster!.machines.get(follower.id)!.data.get('r'))).toBe('2');
  });

  it('a leader cut off from the quorum cannot serve a read (no stale reads)', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set r 1');
    cluster.network.isolate(leader.id);
    await expect(leader.barrier({ timeoutMs: 150 })).rejects.toThrow();
    const next = await cluster.leader(5000, [1, 2, 3].filter((id) => id !== leader.id));
    await next.command('set r 2');
    expect(await next.read(() => cluster!.machines.get(next.id)!.data.get('r'))).toBe('2');
  });
});

describe('lease reads (opt-in, thesis §6.4.1)', () => {
  const leaseOptions = { leaseReads: true, electionTimeoutMs: 300, tickMs: 10 };

  it('answer on the leader and on followers without a heartbeat round while the lease holds', async () => {
    cluster = new MemoryCluster([1, 2, 3], leaseOptions);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set l 1');
    await leader.barrier(); // a confirmed round: the lease starts
    let appends = 0;
    for (const node of cluster.nodes.values()) {
      if (node === leader) continue;
      const handler = node.rpcHandler;
      cluster.network.register({ ...handler, appendEntries: (request) => (appends++, handler.appendEntries(request)) });
    }
    const follower = [...cluster.nodes.values()].find((n) => n !== leader)!;
    const index = leader.commitIndex;
    for (let i = 0; i < 20; i++) {
      expect(await leader.read(() => cluster!.machines.get(leader.id)!.data.get('l'))).toBe('1');
      expect(await follower.barrier()).toBe(index);
    }
    // 40 reads; a ReadIndex round each would have sent 80 AppendEntries. Only heartbeats went (one per 30 ms).
    expect(appends).toBeLessThan(10);
    expect(leader.commitIndex).toBe(index); // and no log writes
  });

  it('a leader cut off from the quorum stops serving them before any other node can lead', async () => {
    cluster = new MemoryCluster([1, 2, 3], leaseOptions);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set l 1');
    await leader.barrier();
    cluster.network.isolate(leader.id);
    const others = [1, 2, 3].filter((id) => id !== leader.id);
    let lastLeaseRead = 0;
    let newLeaderAt = 0;
    // Until a new leader is there: every read the isolated leader still answers must come before it.
    while (!newLeaderAt) {
      const answered = await leader.barrier({ timeoutMs: 5 }).then(() => true, () => false);
      if (answered) lastLeaseRead = performance.now();
      if (others.some((id) => cluster!.node(id).isLeader())) newLeaderAt = performance.now();
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(lastLeaseRead).toBeGreaterThan(0); // it did serve from its lease while cut off
    expect(lastLeaseRead).toBeLessThan(newLeaderAt);
    // And never after: the new leader's write is not missed by a read on the old one.
    const next = await cluster.leader(5000, others);
    await next.command('set l 2');
    await expect(leader.barrier({ timeoutMs: 100 })).rejects.toThrow();
  });

  it('are off for the rest of a term in which the leader started a transfer (its TimeoutNow may still arrive)', async () => {
    cluster = new MemoryCluster([1, 2, 3], leaseOptions);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set l 1');
    await leader.barrier(); // a lease
    const target = [1, 2, 3].find((id) => id !== leader.id)!;
    cluster.network.disconnect(leader.id, target); // the handover cannot happen
    await expect(leader.transferLeadership(target, { timeoutMs: 200 })).rejects.toBeInstanceOf(CommandTimeoutError);
    // Until the engine gives the transfer up (an election timeout), then on: its TimeoutNow may still be on its way.
    const core = (leader as unknown as { core: { transferee: number } }).core;
    for (let waited = 0; core.transferee !== 0 && waited < 2_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(core.transferee).toBe(0);
    cluster.network.heal();
    expect(leader.isLeader()).toBe(true);
    let appends = 0;
    for (const node of cluster.nodes.values()) {
      if (node === leader) continue;
      const handler = node.rpcHandler;
      cluster.network.register({ ...handler, appendEntries: (request) => (appends++, handler.appendEntries(request)) });
    }
    const term = leader.term;
    for (let i = 0; i < 10; i++) await leader.barrier();
    expect(leader.term).toBe(term);
    expect(appends).toBeGreaterThanOrEqual(10); // every read took a round
  });

  it('needs checkQuorum', () => {
    expect(() => new RaftNode({ nodeId: 1, storage: new MemoryStorage(), transport: new MemoryNetwork().transport(1), stateMachine: () => null, leaseReads: true, checkQuorum: false })).toThrow(
      expect.objectContaining({ field: 'leaseReads' }),
    );
  });
});

describe('leadership transfer', () => {
  it('hands leadership over on request, and on a graceful stop of the leader', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await leader.command('set t 1');
    const target = [1, 2, 3].find((id) => id !== leader.id)!;
    expect(await leader.transferLeadership(target)).toBe(target);
    expect(cluster.node(target).isLeader()).toBe(true);
    // A graceful stop of the new leader hands over too: someone else leads as soon as it is gone.
    const second = cluster.node(target);
    await cluster.stop(target);
    const third = [...cluster.nodes.values()].find((n) => n.isRunning && n.isLeader());
    expect(third).toBeDefined();
    expect(third!.id).not.toBe(second.id);
    expect(await third!.command('get t')).toBe('1');
  });

  it('refuses a target that is not a voter, leaving nothing subscribed; resolves with the new leader right after an election', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const subject = (leader as unknown as { stateSubject: { observers: unknown[] } }).stateSubject;
    const before = subject.observers.length;
    await expect(leader.transferLeadership(99)).rejects.toBeInstanceOf(ConfigurationChangeError);
    expect(subject.observers.length).toBe(before);
    // Straight back to the previous leader as soon as the new one leads: it resolves once the engine
    // knows the handover happened (a stale leader$ naming the old leader must not count).
    const target = [1, 2, 3].find((id) => id !== leader.id)!;
    expect(await leader.transferLeadership(target)).toBe(target);
    expect(await cluster.node(target).transferLeadership(leader.id, { timeoutMs: 2_000 })).toBe(leader.id);
    expect(cluster.node(target).leaderId).toBe(leader.id);
    await new Promise((r) => setTimeout(r, 10));
    expect(subject.observers.length).toBe(before);
  });
});

describe('operational events', () => {
  it('reports persisted batches, AppendEntries sizes and RPC latencies to an observer', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const seen: string[] = [];
    const subscription = leader.events$.subscribe((e) => seen.push(e.type === 'rpc' ? `rpc ${e.rpc} ${e.ok}` : e.type));
    await leader.command('set e 1');
    await new Promise((r) => setTimeout(r, 50));
    subscription.unsubscribe();
    expect(seen).toContain('persist');
    expect(seen).toContain('append');
    expect(seen).toContain('rpc AppendEntries true');
  });
});
