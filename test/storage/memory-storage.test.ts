import { describe, expect, it } from 'vitest';
import type { Entry } from '../../lib/core/types.js';
import { StorageClosedError, StorageCorruptionError } from '../../lib/storage/errors.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import type { StorageBatch, StoredSnapshot } from '../../lib/storage/storage.js';
import { describeStorageContract } from './contract.js';
import { bytes, commands, THREE_NODES } from './fixtures.js';

describeStorageContract('MemoryStorage', () => {
  const storages = new Map<string, MemoryStorage>();
  return {
    open(nodeId, clusterId) {
      const key = `${clusterId}/${nodeId}`;
      let storage = storages.get(key);
      if (!storage) storages.set(key, (storage = new MemoryStorage()));
      return storage;
    },
  };
});

describe('MemoryStorage', () => {
  const before: StorageBatch = { baseConfiguration: THREE_NODES, hardState: { term: 1, vote: 1, commit: 5 }, entries: commands(1, 5, 1) };
  const compaction: StorageBatch = {
    snapshot: { metadata: { index: 4, term: 1, configuration: { voters: [1] } }, data: bytes(4) },
    compact: { index: 3, term: 1, configuration: { voters: [1] } },
    entries: commands(6, 1, 1),
  };

  it('loses a snapshot and compaction still in flight at a crash, and keeps what was durable', async () => {
    const storage = new MemoryStorage(20);
    await storage.load();
    await storage.save(before);
    const lost = storage.save(compaction);
    storage.crash();
    await expect(lost).rejects.toBeInstanceOf(StorageClosedError);
    expect(await storage.load()).toEqual({ hardState: before.hardState, baseConfiguration: THREE_NODES, entries: before.entries });
    expect(await storage.loadSnapshot()).toBeUndefined();
    expect(await storage.entries(1, 5)).toEqual(before.entries);

    // Saved again and durable this time, it survives the next crash.
    await storage.save(compaction);
    storage.crash();
    expect(await storage.load()).toEqual({
      hardState: before.hardState,
      logStart: { index: 3, term: 1 },
      baseConfiguration: { voters: [1] },
      entries: commands(4, 3, 1),
      snapshot: compaction.snapshot!.metadata,
    });
    expect(await storage.loadSnapshot()).toEqual(compaction.snapshot);
  });

  it('refuses to load a log it finds inconsistent', async () => {
    const tampered = async (tamper: (inside: { log: Entry[]; snapshot: StoredSnapshot | undefined }) => void, message: RegExp) => {
      const storage = new MemoryStorage();
      await storage.save(before);
      await storage.save(compaction);
      tamper(storage as unknown as { log: Entry[]; snapshot: StoredSnapshot | undefined });
      await expect(storage.load()).rejects.toBeInstanceOf(StorageCorruptionError);
      await expect(storage.load()).rejects.toThrow(message);
    };
    await tampered((inside) => inside.log.splice(1, 1), /memory log is inconsistent: entry 6 follows index 4/);
    await tampered((inside) => inside.log.shift(), /memory log is inconsistent: entry 5 follows index 3/);
    await tampered((inside) => (inside.log[1] = { ...inside.log[1]!, term: 0 }), /entry 5 has term 0, lower than term 1 of index 4/);
    await tampered((inside) => (inside.snapshot = { ...inside.snapshot!, metadata: { ...inside.snapshot!.metadata, index: 7 } }), /the snapshot at index 7 is outside the log, which spans 3\.\.6/);
    await tampered((inside) => (inside.snapshot = { ...inside.snapshot!, metadata: { ...inside.snapshot!.metadata, term: 2 } }), /the snapshot at index 4 has term 2, but the log has term 1 there/);
  });
});
