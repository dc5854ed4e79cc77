import { describe, expect, it } from 'vitest';
import { Prng } from './prng.js';

describe('Prng', () => {
  it('gives the same sequence for the same seed and stream', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 100 }, () => a.nextU32());
    const ys = Array.from({ length: 100 }, () => b.nextU32());
    expect(xs).toEqual(ys);
  });

  it('gives different sequences for different seeds, streams and large seeds', () => {
    const first = (p: Prng) => Array.from({ length: 8 }, () => p.nextU32()).join(',');
    const seen = new Set([first(new Prng(1)), first(new Prng(2)), first(new Prng(1, 1)), first(new Prng(2 ** 40 + 1)), first(new Prng(0))]);
    expect(seen.size).toBe(5);
  });

  it('keeps its helpers in range and roughly uniform', () => {
    const p = new Prng(7);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const f = p.next();
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(1);
      const b = p.between(3, 5);
      expect(b === 3 || b === 4 || b === 5).toBe(true);
      counts[p.int(10)]!++;
    }
    for (const c of counts) expect(c).toBeGreaterThan(800);
    expect(p.chance(0)).toBe(false);
    expect(p.chance(1)).toBe(true);
    expect(() => p.pick([])).toThrow(RangeError);
  });

  it('shuffles deterministically and forks independent streams', () => {
    expect(new Prng(3).shuffle([1, 2, 3, 4, 5, 6])).toEqual(new Prng(3).shuffle([1, 2, 3, 4, 5, 6]));
    const parent = new Prng(9);
    const a = parent.fork(1);
    const b = parent.fork(1);
    expect(a.nextU32()).not.toBe(b.nextU32());
  });
});
