import { describe, expect, it } from 'vitest';
import { CALM_NETWORK, Network } from './network.js';
import { Prng } from './prng.js';

describe('Network', () => {
  it('cuts links one way, by partition, and by isolation, and heals', () => {
    const net = new Network();
    net.cutLink(1, 2);
    expect(net.isCut(1, 2)).toBe(true);
    expect(net.isCut(2, 1)).toBe(false);
    net.partition([[1, 2], [3]]);
    expect(net.isCut(1, 2)).toBe(false);
    expect(net.isCut(1, 3) && net.isCut(3, 1) && net.isCut(2, 3)).toBe(true);
    expect(net.describe()).toBe('cut 1→3 2→3 3→1 3→2');
    net.heal();
    net.isolate(2, [1, 3]);
    expect(net.isCut(2, 1) && net.isCut(1, 2) && net.isCut(3, 2)).toBe(true);
    expect(net.isCut(1, 3)).toBe(false);
    net.heal();
    expect(net.describe()).toBe('fully connected');
  });

  it('drops on a cut link, loses, duplicates and delays as configured', () => {
    const rng = new Prng(1);
    const net = new Network({ ...CALM_NETWORK, minDelayUs: 100, maxDelayUs: 200 });
    for (let i = 0; i < 100; i++) {
      const plan = net.plan(1, 2, rng);
      expect(plan).toHaveLength(1);
      expect(plan[0]).toBeGreaterThanOrEqual(100);
      expect(plan[0]).toBeLessThanOrEqual(200);
    }
    net.cutLink(1, 2);
    expect(net.plan(1, 2, rng)).toEqual([]);
    net.heal();
    net.conditions = { ...net.conditions, lossRate: 1 };
    expect(net.plan(1, 2, rng)).toEqual([]);
    net.conditions = { ...net.conditions, lossRate: 0, duplicateRate: 1, reorderRate: 1, maxReorderDelayUs: 10_000 };
    const plans = Array.from({ length: 200 }, () => net.plan(1, 2, rng));
    expect(plans.every((p) => p.length === 2)).toBe(true);
    expect(plans.some((p) => p[0]! > 200)).toBe(true);
  });
});
