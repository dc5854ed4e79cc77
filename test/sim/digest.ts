import type { Entry } from '../../lib/core/types.js';

/**
 * Content digests of log entries for the checkers: equal entries always get equal digests, so a
 * reported mismatch is always real (a collision could only hide one, with probability ~2⁻⁵²).
 * Digests are cached per entry object; entries are immutable and shared between servers.
 */
const cache = new WeakMap<Entry, number>();

/** A 52-bit digest of an entry's index, term, type, command bytes and configuration. */
export function entryDigest(entry: Entry): number {
  let digest = cache.get(entry);
  if (digest === undefined) {
    let a = 0x811c9dc5;
    let b = 0x01000193 ^ 0x5bd1e995;
    const mixNumber = (n: number): void => {
      a = fnv(a, n & 0xffff);
      a = fnv(a, n >>> 16);
      b = fnv(b, (n >>> 16) ^ 0x55);
      b = fnv(b, n & 0xffff);
    };
    mixNumber(entry.index);
    mixNumber(entry.term);
    mixNumber(entry.type === 'command' ? 1 : entry.type === 'noop' ? 2 : 3);
    const bytes = entry.command;
    mixNumber(bytes.length);
    for (let i = 0; i < bytes.length; i++) {
      a = fnv(a, bytes[i]!);
      b = fnv(b, bytes[i]! ^ 0xa5);
    }
    if (entry.config) {
      for (const id of entry.config.voters) mixNumber(id);
      mixNumber(0xfffe);
      for (const id of entry.config.outgoing ?? []) mixNumber(id);
      mixNumber(entry.config.outgoing ? 1 : 0);
    }
    digest = combine(a, b);
    cache.set(entry, digest);
  }
  return digest;
}

/** The digest of a log prefix, given the digest of the prefix before it and the next entry's digest. */
export function chainDigest(previous: number, entry: number): number {
  const hi = Math.floor(previous / 0x100000);
  const lo = previous % 0x100000;
  let a = fnv(fnv(0x811c9dc5, hi & 0xffff), hi >>> 16);
  let b = fnv(0x9747b28c, lo);
  const ehi = Math.floor(entry / 0x100000);
  const elo = entry % 0x100000;
  a = fnv(fnv(a, ehi & 0xffff), ehi >>> 16);
  b = fnv(fnv(b, elo), ehi & 0xff);
  return combine(a, b);
}

function fnv(hash: number, value: number): number {
  return Math.imul(hash ^ value, 0x01000193) >>> 0;
}

/** 32 bits of `a` and 20 bits of `b`: a non-negative safe integer. */
function combine(a: number, b: number): number {
  return a * 0x100000 + (b & 0xfffff);
}

/** A running 32-bit FNV-1a digest of text, for run digests (determinism checks). */
export class TextDigest {
  private hash = 0x811c9dc5;
  private count = 0;

  add(text: string): void {
    let h = this.hash;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    this.hash = Math.imul(h ^ 10, 0x01000193) >>> 0;
    this.count++;
  }

  get value(): string {
    return `${(this.hash >>> 0).toString(16).padStart(8, '0')}/${this.count}`;
  }
}
