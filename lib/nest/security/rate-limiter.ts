/**
 * Throttles unauthenticated requests to the RPC endpoints, per remote address, before any signature
 * work is done: a token bucket per address (IPv6 per /64), refilled at `perSecond` up to `burst`.
 *
 * Every request that is not from a trusted address takes a token up front (so that concurrent
 * requests cannot all pass a "bucket not empty" check); the token is given back when the request
 * turns out to be correctly signed, and the address is then trusted — not throttled at all — for
 * `trustMs`. Authenticated peers therefore never spend tokens. Both maps are bounded (least recently
 * used addresses are forgotten first).
 */

/** Options of the unauthenticated-request limiter (module option `unauthenticatedRateLimit`). */
export interface RaftRateLimitOptions {
  /** Requests an address may make at once. Default 32. */
  readonly burst?: number;
  /** Tokens refilled per second. Default 8. */
  readonly perSecond?: number;
  /** How long an address that sent a correctly signed request is not throttled, in ms. Default 60 000. */
  readonly trustMs?: number;
  /** Addresses remembered at most. Default 16 384. */
  readonly maxAddresses?: number;
}

export const RATE_LIMIT_DEFAULTS = { burst: 32, perSecond: 8, trustMs: 60_000, maxAddresses: 16_384 } as const satisfies Required<RaftRateLimitOptions>;

interface Bucket {
  tokens: number;
  at: number;
}

/** A token taken by {@link AddressRateLimiter.take}: give it to {@link AddressRateLimiter.authenticated} on success. */
export interface RateLimitTicket {
  readonly key: string;
  /** The address was trusted: no token was taken. */
  readonly trusted: boolean;
}

export class AddressRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly trusted = new Map<string, number>();
  private readonly options: Required<RaftRateLimitOptions>;

  constructor(
    options: RaftRateLimitOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.options = { ...RATE_LIMIT_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    for (const [name, value] of Object.entries(this.options)) {
      if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) throw new RangeError(`unauthenticatedRateLimit.${name} must be a positive number, got ${String(value)}`);
    }
  }

  /** The key an address is counted under: IPv4 as is (also when IPv4-mapped), IPv6 by its /64. */
  static keyOf(address: string | undefined): string {
    if (!address) return 'unknown';
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return mapped[1]!;
    if (!address.includes(':')) return address;
    return `${expandIpv6(address).slice(0, 4).join(':')}::/64`;
  }

  /**
   * Takes a token for a request from `address`; `undefined` when the bucket is empty (answer 429).
   * A trusted address takes none.
   */
  take(address: string | undefined): RateLimitTicket | undefined {
    const key = AddressRateLimiter.keyOf(address);
    const now = this.now();
    const trustedUntil = this.trusted.get(key);
    if (trustedUntil !== undefined) {
      if (trustedUntil > now) return { key, trusted: true };
      this.trusted.delete(key);
    }
    const bucket = this.refill(key, now);
    if (bucket.tokens < 1) return undefined;
    bucket.tokens -= 1;
    return { key, trusted: false };
  }

  /** Seconds until the address has a token again (for `retry-after`). */
  retryAfterSeconds(address: string | undefined): number {
    const bucket = this.buckets.get(AddressRateLimiter.keyOf(address));
    const missing = bucket ? Math.max(0, 1 - bucket.tokens) : 0;
    return Math.max(1, Math.ceil(missing / this.options.perSecond));
  }

  /** The request of `ticket` was correctly signed: its token is returned and its address trusted. */
  authenticated(ticket: RateLimitTicket): void {
    const now = this.now();
    if (!ticket.trusted) {
      const bucket = this.buckets.get(ticket.key);
      if (bucket) bucket.tokens = Math.min(this.options.burst, bucket.tokens + 1);
    }
    this.trusted.delete(ticket.key);
    this.trusted.set(ticket.key, now + this.options.trustMs);
    if (this.trusted.size > this.options.maxAddresses) this.trusted.delete(this.trusted.keys().next().value!);
  }

  private refill(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.options.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.options.perSecond);
      bucket.at = now;
      this.buckets.delete(key); // most recently used last
    } else {
      bucket = { tokens: this.options.burst, at: now };
      if (this.buckets.size >= this.options.maxAddresses) this.dropFullBuckets(now);
    }
    this.buckets.set(key, bucket);
    return bucket;
  }

  /** Makes room: forgets buckets that are full again (nothing to remember), else the least recently used. */
  private dropFullBuckets(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.options.perSecond >= this.options.burst) this.buckets.delete(key);
    }
    while (this.buckets.size >= this.options.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

/** The eight groups of an IPv6 address (zone and embedded IPv4 handled), lower case, without leading zeros. */
function expandIpv6(address: string): string[] {
  let text = address.toLowerCase().split('%')[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0') : [];
  return [...left, ...fill, ...right].map((g) => (parseInt(g, 16) || 0).toString(16));
}
