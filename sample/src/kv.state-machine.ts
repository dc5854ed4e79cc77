import { Injectable } from '@nestjs/common';
import type { RaftStateMachine } from '../../lib/index.js';

/** The commands of the key-value service, as they travel through the Raft log (JSON). */
export type KvCommand =
  | { op: 'put'; key: string; value: unknown }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; expected: unknown; value: unknown }
  | { op: 'get'; key: string };

/** What applying a command answers. */
export type KvAnswer = { found: boolean; value?: unknown } | { ok: boolean };

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * A replicated key-value map: deterministic, in memory, rebuilt on restart from the latest snapshot
 * and the log after it. Values are compared by their JSON text, so `cas` behaves the same on every node.
 */
@Injectable()
export class KvStateMachine implements RaftStateMachine<KvAnswer> {
  private readonly data = new Map<string, unknown>();

  apply(command: Uint8Array): KvAnswer {
    const parsed = JSON.parse(decoder.decode(command)) as KvCommand;
    switch (parsed.op) {
      case 'put':
        this.data.set(parsed.key, parsed.value);
        return { ok: true };
      case 'delete':
        return { ok: this.data.delete(parsed.key) };
      case 'cas': {
        const current = this.data.has(parsed.key) ? JSON.stringify(this.data.get(parsed.key)) : undefined;
        const expected = parsed.expected === undefined || parsed.expected === null ? undefined : JSON.stringify(parsed.expected);
        if (current !== expected) return { ok: false };
        this.data.set(parsed.key, parsed.value);
        return { ok: true };
      }
      case 'get':
        return this.data.has(parsed.key) ? { found: true, value: this.data.get(parsed.key) } : { found: false };
      default:
        throw new Error(`unknown operation ${JSON.stringify((parsed as { op: unknown }).op)}`);
    }
  }

  /** Log compaction: the whole map as JSON (`[[key, value], …]`). */
  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify([...this.data]));
  }

  /** Replaces the map with a snapshot's (on restart, or when the leader installs one). */
  restore(data: Uint8Array): void {
    const entries = JSON.parse(decoder.decode(data)) as [string, unknown][];
    this.data.clear();
    for (const [key, value] of entries) this.data.set(key, value);
  }

  /** This node's copy of `key`: linearizable only behind `RaftService.read()` (which the controller uses). */
  read(key: string): { found: boolean; value?: unknown } {
    return this.data.has(key) ? { found: true, value: this.data.get(key) } : { found: false };
  }

  /** This node's local copy of `key` — possibly stale; clients read through the log instead. */
  localValue(key: string): unknown {
    return this.data.get(key);
  }

  /** Number of keys (for the cluster status page). */
  get size(): number {
    return this.data.size;
  }
}
