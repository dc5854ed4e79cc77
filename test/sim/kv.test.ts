import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, formatCommand, KvStore, type KvCommand } from './kv.js';

describe('KV state machine', () => {
  it('round-trips commands through bytes', () => {
    const cmd: KvCommand = { op: 'cas', key: 'k1', expected: null, value: '1.2', client: 1, id: 2 };
    expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    expect(formatCommand(cmd)).toBe('cas(k1,null→"1.2")');
    expect(() => decodeCommand(new TextEncoder().encode('{"op":"drop"}'))).toThrow(TypeError);
  });

  it('reads, writes and compares-and-sets registers', () => {
    const kv = new KvStore();
    expect(kv.apply({ op: 'get', key: 'a', client: 1, id: 1 })).toBeNull();
    expect(kv.apply({ op: 'cas', key: 'a', expected: 'x', value: 'y', client: 1, id: 2 })).toBe(false);
    expect(kv.apply({ op: 'cas', key: 'a', expected: null, value: 'v1', client: 1, id: 3 })).toBe(true);
    expect(kv.apply({ op: 'put', key: 'a', value: 'v2', client: 1, id: 4 })).toBeNull();
    expect(kv.apply({ op: 'cas', key: 'a', expected: 'v1', value: 'v3', client: 1, id: 5 })).toBe(false);
    expect(kv.apply({ op: 'get', key: 'a', client: 1, id: 6 })).toBe('v2');
    expect(kv.get('b')).toBeNull();
  });
});
