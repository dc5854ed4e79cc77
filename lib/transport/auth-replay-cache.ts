/**
 * The nonces of signed peer requests seen recently, so that a captured request cannot be sent again.
 *
 * A request is only accepted while its timestamp is within the clock window (±`windowMs`) of the
 * receiver's clock, so a nonce has to be remembered only until its timestamp leaves the window; after
 * that the window check refuses the request anyway. Memory is bounded (`maxEntries` nonces in all,
 * `maxSenders` senders) without ever accepting a replay: when a nonce must be forgotten early, the
 * sender's *floor* rises to that nonce's timestamp, and a request at or below its sender's floor is
 * refused as too old. Invariant: every accepted nonce whose timestamp is above its sender's floor is
 * still in the cache, so a replay is either found or below the floor.
 */
import type { NodeId } from '../core/types.js';

/** What {@link NonceReplayCache.admit} decided. */
export type NonceVerdict = 'fresh' | 'replayed' | 'too_old';

export interface NonceReplayCacheOptions {
  /** How long a nonce must be remembered after its timestamp (the clock window). */
  readonly windowMs: number;
  /** Nonces kept in all (default 262 144, a few tens of MB at most). */
  readonly maxEntries?: number;
  /** Senders kept (default 1024). */
  readonly maxSenders?: number;
  readonly now?: () => number;
}

interface SenderNonces {
  /** Nonce → timestamp, in the order they were accepted. */
  readonly nonces: Map<string, number>;
  /** Requests at or below this timestamp are refused (their nonces may have been forgotten). */
  floor: number;
}

export class NonceReplayCache {
  private readonly senders = new Map<NodeId, SenderNonces>();
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private readonly maxSenders: number;
  private readonly now: () => number;
  private size = 0;
  /** The floor a sender record starts with: nonces of dropped sender records are at or below it. */
  private droppedFloor = -Infinity;
  private admitted = 0;

  constructor(options: NonceReplayCacheOptions) {
    this.windowMs = options.windowMs;
    this.maxEntries = Math.max(1, options.maxEntries ?? 262_144);
    this.maxSenders = Math.max(1, options.maxSenders ?? 1024);
    this.now = options.now ?? Date.now;
  }

  /** Nonces held now. */
  get entries(): number {
    return this.size;
  }

  /**
   * Records `nonce` of `sender` (timestamp `timestamp`, already checked against the window) unless it
   * was seen before. Call it only for requests whose signature is valid, so that forged requests cannot
   * fill the cache.
   */
  admit(sender: NodeId, nonce: string, timestamp: number): NonceVerdict {
    const now = this.now();
    let record = this.senders.get(sender);
    if (record) {
      this.expire(record, now);
      if (record.nonces.has(nonce)) return 'replayed';
      if (timestamp <= record.floor) return 'too_old';
      // Most recently used senders last, so that the least recently used one is dropped first.
      this.senders.delete(sender);
      this.senders.set(sender, record);
    } else {
      if (timestamp <= this.droppedFloor) return 'too_old';
      if (this.senders.size >= this.maxSenders) this.dropSender(now);
      record = { nonces: new Map(), floor: this.droppedFloor };
      this.senders.set(sender, record);
    }
    record.nonces.set(nonce, timestamp);
    this.size++;
    if (this.size > this.maxEntries) this.evict(now);
    if (++this.admitted % 4096 === 0) this.sweep(now);
    return 'fresh';
  }

  /** Forgets the nonces whose timestamps have left the window (oldest first, in acceptance order). */
  private expire(record: SenderNonces, now: number): void {
    const cutoff = now - this.windowMs;
    for (const [nonce, timestamp] of record.nonces) {
      if (timestamp >= cutoff) break;
      record.nonces.delete(nonce);
      this.size--;
    }
  }

  private sweep(now: number): void {
    for (const [sender, record] of this.senders) {
      this.expire(record, now);
      // An empty record only matters for its floor, and a floor below the window refuses nothing the window does not.
      if (record.nonces.size === 0 && (record.floor <= this.droppedFloor || record.floor < now - this.windowMs)) this.senders.delete(sender);
    }
  }

  /** Over the bound: the sender holding the most nonces forgets its oldest eighth, raising its floor. */
  private evict(now: number): void {
    this.sweep(now);
    if (this.size <= this.maxEntries) return;
    let largest: SenderNonces | undefined;
    for (const record of this.senders.values()) if (!largest || record.nonces.size > largest.nonces.size) largest = record;
    if (!largest) return;
    let drop = Math.max(1, Math.ceil(largest.nonces.size / 8));
    for (const [nonce, timestamp] of largest.nonces) {
      if (drop-- <= 0) break;
      largest.nonces.delete(nonce);
      this.size--;
      largest.floor = Math.max(largest.floor, timestamp);
    }
  }

  /** Too many senders: drop the least recently used one, remembering its newest timestamp as a floor for newcomers. */
  private dropSender(now: number): void {
    this.sweep(now);
    if (this.senders.size < this.maxSenders) return;
    const [sender, record] = this.senders.entries().next().value as [NodeId, SenderNonces];
    let newest = record.floor;
    for (const timestamp of record.nonces.values()) newest = Math.max(newest, timestamp);
    this.droppedFloor = Math.max(this.droppedFloor, newest);
    this.size -= record.nonces.size;
    this.senders.delete(sender);
  }
}
