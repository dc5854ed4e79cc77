import { describe, expect, it } from 'vitest';
import { CommitsOverflowError } from '../../lib/core/errors.js';
import { CommitFanout } from '../../lib/node/commit-fanout.js';
import { holdsEventually } from '../support/wait.js';
import { MemoryCluster } from './memory-cluster.js';

const item = (index: number) => ({ index });
const overflow = (last: number, limit: number) => new CommitsOverflowError(last, limit);

describe('commits$ delivery (CommitFanout)', () => {
  it('delivers in order, outside the publisher: publishing never runs a subscriber', async () => {
    const fanout = new CommitFanout<{ index: number }>(100, overflow);
    const seen: number[] = [];
    fanout.observable.subscribe((e) => seen.push(e.index));
    for (let i = 1; i <= 10; i++) fanout.publish(item(i));
    expect(seen).toEqual([]); // not yet: the publisher (the apply loop) goes on at once
    await holdsEventually(() => expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  });

  it('a slow subscriber is served in slices, yielding to the event loop, and others are not held up by it', async () => {
    const fanout = new CommitFanout<{ index: number }>(10_000, overflow, 5);
    let slow = 0;
    let fast = 0;
    fanout.observable.subscribe(() => {
      const until = performance.now() + 1; // 1 ms of synchronous work per entry
      while (performance.now() < until);
      slow++;
    });
    fanout.observable.subscribe(() => fast++);
    for (let i = 1; i <= 200; i++) fanout.publish(item(i));
    let timerTurns = 0;
    const timer = setInterval(() => timerTurns++, 1);
    await holdsEventually(() => expect(slow).toBe(200), 20_000);
    clearInterval(timer);
    expect(fast).toBe(200);
    // 200 ms of subscriber work in ≤ ~5 ms slices: timers ran in between, many times.
    expect(timerTurns).toBeGreaterThan(10);
  });

  it('ends a subscriber that falls limit entries behind with CommitsOverflowError naming the last index it got; the others go on', async () => {
    const fanout = new CommitFanout<{ index: number }>(50, overflow);
    const seen: number[] = [];
    let error: unknown;
    fanout.observable.subscribe({ next: (e) => seen.push(e.index), error: (e: unknown) => (error = e) });
    const other: number[] = [];
    let otherError: unknown;
    fanout.observable.subscribe({ next: (e) => other.push(e.index), error: (e: unknown) => (otherError = e) });
    for (let i = 1; i <= 20; i++) fanout.publish(item(i));
    await holdsEventually(() => expect(seen).toHaveLength(20));
    for (let i = 21; i <= 100; i++) fanout.publish(item(i)); // 80 at once, faster than anyone can take them
    expect(error).toBeInstanceOf(CommitsOverflowError);
    expect((error as CommitsOverflowError).lastDeliveredIndex).toBe(20);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(otherError).toBeInstanceOf(CommitsOverflowError); // also overflowed (same limit), on its own
    expect(other.length).toBeLessThan(100);
  });

  it('in a node: a subscriber that blocks for a while does not stop commands from committing', async () => {
    const c = new MemoryCluster([1, 2, 3], { commitsBufferEntries: 1_000 });
    await c.startAll();
    try {
      const leader = await c.leader();
      let blocked = 0;
      leader.commits$.subscribe(() => {
        const until = performance.now() + 50;
        while (performance.now() < until);
        blocked++;
      });
      await Promise.all(Array.from({ length: 50 }, (_, i) => leader.command(`set k${i} v`)));
      // 50 entries × 50 ms = 2.5 s of subscriber work: every command was answered before it was done.
      expect(blocked).toBeLessThan(50);
      await holdsEventually(() => expect(blocked).toBeGreaterThanOrEqual(50), 20_000); // and it still gets every entry
    } finally {
      await c.stopAll();
    }
  });
});
