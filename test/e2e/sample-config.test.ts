import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../sample/src/config.js';

describe("the sample's configuration from the environment", () => {
  it('reads the compaction settings, and leaves them to the library when unset', () => {
    const config = loadConfig({ NODE_ID: '2', SNAPSHOT_EVERY: '500', SNAPSHOT_TRAILING_ENTRIES: '0' });
    expect(config.snapshotEvery).toBe(500);
    expect(config.snapshotTrailingEntries).toBe(0);
    const defaults = loadConfig({ NODE_ID: '2' });
    expect('snapshotEvery' in defaults).toBe(false);
    expect('snapshotTrailingEntries' in defaults).toBe(false);
  });

  it('refuses a count that is not a non-negative integer, naming the variable', () => {
    for (const bad of ['-1', '1.5', 'many', '']) {
      expect(() => loadConfig({ NODE_ID: '1', SNAPSHOT_TRAILING_ENTRIES: bad })).toThrow(/^SNAPSHOT_TRAILING_ENTRIES must be a non-negative integer/);
      expect(() => loadConfig({ NODE_ID: '1', SNAPSHOT_EVERY: bad })).toThrow(/^SNAPSHOT_EVERY must be a non-negative integer/);
    }
  });

  it('reads the AppendEntries encoding, and refuses any other', () => {
    expect(loadConfig({ NODE_ID: '1', APPEND_ENTRIES_ENCODING: 'json' }).appendEntriesEncoding).toBe('json');
    expect(loadConfig({ NODE_ID: '1' }).appendEntriesEncoding).toBeUndefined();
    expect(() => loadConfig({ NODE_ID: '1', APPEND_ENTRIES_ENCODING: 'xml' })).toThrow(/^APPEND_ENTRIES_ENCODING must be binary or json/);
  });

  it('turns lease reads on only when asked', () => {
    expect(loadConfig({ NODE_ID: '1', LEASE_READS: '1' }).leaseReads).toBe(true);
    expect(loadConfig({ NODE_ID: '1' }).leaseReads).toBeUndefined();
  });

  it('serves the public API on Fastify unless told otherwise, and on Express when the RPCs share its port', () => {
    expect(loadConfig({ NODE_ID: '1' }).httpPlatform).toBe('fastify');
    expect(loadConfig({ NODE_ID: '1', HTTP_PLATFORM: 'express' }).httpPlatform).toBe('express');
    expect(loadConfig({ NODE_ID: '1', RPC_PORT: 'none' }).httpPlatform).toBe('express');
    expect(() => loadConfig({ NODE_ID: '1', RPC_PORT: 'none', HTTP_PLATFORM: 'fastify' })).toThrow(/^HTTP_PLATFORM=fastify needs the Raft RPCs on their own listener/);
    expect(() => loadConfig({ NODE_ID: '1', HTTP_PLATFORM: 'koa' })).toThrow(/^HTTP_PLATFORM must be express or fastify/);
  });

  it('passes the pipelining depth through, and refuses a bad one', () => {
    expect(loadConfig({ NODE_ID: '1', MAX_INFLIGHT_APPENDS: '4' }).maxInflightAppends).toBe(4);
    expect(() => loadConfig({ NODE_ID: '1', MAX_INFLIGHT_APPENDS: 'x' })).toThrow(/^MAX_INFLIGHT_APPENDS must be a non-negative integer/);
  });
});
