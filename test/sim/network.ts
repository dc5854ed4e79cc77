import type { NodeId } from '../../lib/core/types.js';
import type { Prng } from './prng.js';

/** How hostile the network is; every figure may change during a run. */
export interface NetworkConditions {
  /** Probability that a message is lost (0–0.3 in the scenarios). */
  lossRate: number;
  /** Probability that a delivered message is delivered twice. */
  duplicateRate: number;
  /** Ordinary one-way delay, drawn uniformly from [minDelayUs, maxDelayUs]. */
  minDelayUs: number;
  maxDelayUs: number;
  /** Probability that a message is held back by up to `maxReorderDelayUs` more (reordering). */
  reorderRate: number;
  maxReorderDelayUs: number;
}

export const CALM_NETWORK: NetworkConditions = {
  lossRate: 0,
  duplicateRate: 0,
  minDelayUs: 200,
  maxDelayUs: 1_000,
  reorderRate: 0,
  maxReorderDelayUs: 0,
};

/**
 * The links between servers. A link is directed (`from → to`) and is either up or cut; a partition
 * is a set of cut links, so asymmetric faults (A hears B, B does not hear A) are expressible.
 * The network decides the fate of each message when it is sent: lost, delivered once or twice, and
 * after which delay; the simulator schedules the deliveries.
 */
export class Network {
  conditions: NetworkConditions;
  private readonly cut = new Set<number>();

  constructor(conditions: NetworkConditions = CALM_NETWORK) {
    this.conditions = { ...conditions };
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(linkKey(from, to));
  }

  /** Cuts `from → to` (one direction only). */
  cutLink(from: NodeId, to: NodeId): void {
    if (from !== to) this.cut.add(linkKey(from, to));
  }

  /** Cuts every link between different groups, both ways; links inside a group are restored. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.cut.clear();
    for (let g = 0; g < groups.length; g++) {
      for (let h = 0; h < groups.length; h++) {
        if (g === h) continue;
        for (const a of groups[g]!) for (const b of groups[h]!) this.cutLink(a, b);
      }
    }
  }

  /** Cuts `node` off from every server in `others`, both ways. */
  isolate(node: NodeId, others: readonly NodeId[]): void {
    for (const other of others) {
      this.cutLink(node, other);
      this.cutLink(other, node);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  get cutLinks(): number {
    return this.cut.size;
  }

  /** The cut links, sorted, as `a→b` (for traces). */
  describe(): string {
    if (this.cut.size === 0) return 'fully connected';
    const links = [...this.cut].sort((x, y) => x - y).map((k) => `${Math.floor(k / LINK_BASE)}→${k % LINK_BASE}`);
    return `cut ${links.join(' ')}`;
  }

  /**
   * Decides what happens to one message sent now: the delays (µs) after which copies arrive.
   * An empty list means the message is lost (cut link or random loss).
   */
  plan(from: NodeId, to: NodeId, rng: Prng): number[] {
    if (this.isCut(from, to)) return [];
    const c = this.conditions;
    if (rng.chance(c.lossRate)) return [];
    const delays = [this.delay(rng)];
    if (rng.chance(c.duplicateRate)) delays.push(this.delay(rng));
    return delays;
  }

  private delay(rng: Prng): number {
    const c = this.conditions;
    let d = rng.between(c.minDelayUs, c.maxDelayUs);
    if (rng.chance(c.reorderRate)) d += rng.between(0, c.maxReorderDelayUs);
    return d;
  }
}

const LINK_BASE = 1_000_000;

function linkKey(from: NodeId, to: NodeId): number {
  return from * LINK_BASE + to;
}
