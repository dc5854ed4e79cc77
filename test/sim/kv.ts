/**
 * The replicated state machine of the simulator: a key-value store whose keys are independent
 * registers with read, write and compare-and-set, matching the model of `linearizability.ts`.
 * Commands travel through the log as JSON bytes; every write carries a value unique in the run, so
 * the linearizability checker can tell writes apart. Reads go through the log too.
 */
export type KvCommand =
  | { readonly op: 'get'; readonly key: string; readonly client: number; readonly id: number }
  | { readonly op: 'put'; readonly key: string; readonly value: string; readonly client: number; readonly id: number }
  | {
      readonly op: 'cas';
      readonly key: string;
      readonly expected: string | null;
      readonly value: string;
      readonly client: number;
      readonly id: number;
    };

/** get: the value (null = absent); put: null; cas: whether it swapped. */
export type KvResult = string | null | boolean;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(bytes: Uint8Array): KvCommand {
  const parsed = JSON.parse(decoder.decode(bytes)) as KvCommand;
  if (parsed.op !== 'get' && parsed.op !== 'put' && parsed.op !== 'cas') throw new TypeError(`not a KV command: ${decoder.decode(bytes)}`);
  return parsed;
}

export class KvStore {
  private readonly data = new Map<string, string>();

  apply(command: KvCommand): KvResult {
    switch (command.op) {
      case 'get':
        return this.data.get(command.key) ?? null;
      case 'put':
        this.data.set(command.key, command.value);
        return null;
      case 'cas': {
        const current = this.data.get(command.key) ?? null;
        if (current !== command.expected) return false;
        this.data.set(command.key, command.value);
        return true;
      }
    }
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** The whole store as text, keys sorted: equal stores serialize equally (what a snapshot holds). */
  serialize(): string {
    return JSON.stringify([...this.data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  static restore(data: string): KvStore {
    const store = new KvStore();
    for (const [key, value] of JSON.parse(data) as [string, string][]) store.data.set(key, value);
    return store;
  }
}

/** A short text form for traces: `put(k1="3.17")`, `get(k2)`, `cas(k0,"1.2"→"4.9")`. */
export function formatCommand(command: KvCommand): string {
  switch (command.op) {
    case 'get':
      return `get(${command.key})`;
    case 'put':
      return `put(${command.key}=${JSON.stringify(command.value)})`;
    case 'cas':
      return `cas(${command.key},${command.expected === null ? 'null' : JSON.stringify(command.expected)}→${JSON.stringify(command.value)})`;
  }
}

export function formatResult(result: KvResult): string {
  return result === null ? 'null' : typeof result === 'boolean' ? String(result) : JSON.stringify(result);
}
