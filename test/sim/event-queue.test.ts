import { describe, expect, it } from 'vitest';
import { EventQueue } from './event-queue.js';

describe('EventQueue', () => {
  it('runs events in time order, ties in insertion order, and moves the clock', () => {
    const q = new EventQueue();
    const order: string[] = [];
    q.schedule(30, () => order.push('c'));
    q.schedule(10, () => order.push('a1'));
    q.schedule(10, () => order.push('a2'));
    q.schedule(20, () => order.push('b'));
    const times: number[] = [];
    for (let e = q.pop(); e; e = q.pop()) {
      times.push(q.now);
      e.run();
    }
    expect(order).toEqual(['a1', 'a2', 'b', 'c']);
    expect(times).toEqual([10, 10, 20, 30]);
  });

  it('skips cancelled events and never schedules in the past', () => {
    const q = new EventQueue();
    const ran: number[] = [];
    const e = q.schedule(5, () => ran.push(5));
    q.schedule(7, () => ran.push(7));
    e.cancelled = true;
    expect(q.peekTime()).toBe(7);
    q.pop()!.run();
    q.at(1, () => ran.push(1));
    const late = q.pop()!;
    expect(late.at).toBe(7);
    late.run();
    expect(ran).toEqual([7, 1]);
    expect(q.pop()).toBeUndefined();
  });

  it('keeps order with many interleaved events', () => {
    const q = new EventQueue();
    const seen: number[] = [];
    for (let i = 0; i < 1000; i++) q.at((i * 7919) % 1000, () => seen.push(q.now));
    for (let e = q.pop(); e; e = q.pop()) e.run();
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen).toHaveLength(1000);
  });
});
