import { afterEach, describe, expect, it } from 'vitest';
import type { Entry, RecoveredState } from '../../lib/core/types.js';
import { StorageCorruptionError } from '../../lib/storage/errors.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import { EMPTY_HARD_STATE, type RaftStorage, type StorageBatch } from '../../lib/storage/storage.js';
import { bytes, command, commands, config, JOINT_FOUR_NODES, noop, THREE_NODES, uniqueName } from './fixtures.js';

/** How the contract suite gets storages of one implementation. */
export interface StorageHarness {
  /**
   * A storage for node `nodeId` of cluster `clusterId`, not yet loaded. A later call for the same
   * pair is the same node restarted: it sees what the earlier ones saved. The suite holds at most one
   * storage open at a time (the embedded server takes one connection), and closes each it opens.
   */
  open(nodeId: number, clusterId: string): RaftStorage;
}

/**
 * The behaviour every {@link RaftStorage} must have, run against each implementation. MemoryStorage is
 * the reference: where a test compares with a model, the model is a MemoryStorage fed the same batches.
 */
export function describeStorageContract(name: string, harness: () => StorageHarness): void {
  // `harness` is called once, at the first test, so it may use what a beforeAll of the caller set up.
  describe(`RaftStorage contract: ${name}`, () => {
    const opened: RaftStorage[] = [];
    let instance: StorageHarness | undefined;
    afterEach(async () => {
      for (const storage of opened.splice(0)) await storage.close();
    });

    /** Opens and loads a storage. */
    async function start(nodeId: number, clusterId: string): Promise<{ storage: RaftStorage; state: RecoveredState }> {
      const storage = (instance ??= harness()).open(nodeId, clusterId);
      opened.push(storage);
      const state = await storage.load();
      return { storage, state };
    }

    /** Closes `storage` and starts the same node again: what a restart after a clean stop recovers. */
    async function restart(storage: RaftStorage, nodeId: number, clusterId: string): Promise<RecoveredState> {
      await storage.close();
      const { state } = await start(nodeId, clusterId);
      return state;
    }

    /** What the reference implementation holds after `batches`. */
    async function model(batches: readonly StorageBatch[]): Promise<RecoveredState> {
      const reference = new MemoryStorage();
      await reference.load();
      for (const batch of batches) await reference.save(batch);
      return reference.load();
    }

    it('starts empty', async () => {
      const { state } = await start(1, uniqueName('c'));
      expect(state).toEqual({ hardState: EMPTY_HARD_STATE, entries: [] });
      expect(state.baseConfiguration).toBeUndefined();
    });

    it('recovers hard state, base configuration with addresses, and entries of every type exactly', async () => {
      const cluster = uniqueName('c');
      const { storage } = await start(1, cluster);
      const entries: Entry[] = [
        noop(1, 1),
        command(2, 1, bytes(0, 0, 0)),
        command(3, 1, new Uint8Array(0)),
        command(4, 2, Uint8Array.from({ length: 256 }, (_, i) => i)),
        config(5, 2, JOINT_FOUR_NODES),
        config(6, 2, { voters: [1, 2, 3, 4], addresses: JOINT_FOUR_NODES.addresses! }),
        config(7, 3, { voters: [2] }),
        command(8, 3, new TextEncoder().encode('{"op":"put","key":"k\u0000","value":"ünïcødé"}')),
      ];
      await storage.save({ baseConfiguration: THREE_NODES, hardState: { term: 3, vote: 2, commit: 6 }, entries });
      const state = await restart(storage, 1, cluster);
      expect(state).toEqual({ hardState: { term: 3, vote: 2, commit: 6 }, baseConfiguration: THREE_NODES, entries });
      for (const entry of state.entries) {
        expect(entry.command).toBeInstanceOf(Uint8Array);
        expect(entry.command.buffer.byteLength).toBe(entry.command.byteLength); // its own bytes, not a view of shared memory
        expect(typeof entry.index).toBe('number');
        expect(typeof entry.term).toBe('number');
      }
      expect(Array.from(state.entries[1]!.command)).toEqual([0, 0, 0]);
      expect(state.entries[2]!.command.byteLength).toBe(0);
    });

    it('keeps the latest hard state, and the base configuration alongside the log', async () => {
      const cluster = uniqueName('c');
      const { storage } = await start(1, cluster);
      await storage.save({ baseConfiguration: THREE_NODES, hardState: { term: 1, vote: 1, commit: 0 }, entries: [] });
      await storage.save({ hardState: { term: 2, vote: 0, commit: 0 }, entries: [noop(1, 2)] });
      await storage.save({ hardState: { term: 2, vote: 3, commit: 1 }, entries: [] });
      await storage.save({ entries: [command(2, 2)] });
      const state = await restart(storage, 1, cluster);
      expect(state.hardState).toEqual({ term: 2, vote: 3, commit: 1 });
      expect(state.baseConfiguration).toEqual(THREE_NODES);
      expect(state.entries).toEqual([noop(1, 2), command(2, 2)]);
    });

    it('truncates a suffix and appends in one batch', async () => {
      const cluster = uniqueName('c');
      const { storage } = await start(1, cluster);
      const batches: StorageBatch[] = [
        { hardState: { term: 2, vote: 1, commit: 1 }, entries: [noop(1, 1), command(2, 1), command(3, 2), command(4, 2), command(5, 2)] },
        { hardState: { term: 3, vote: 0, commit: 2 }, truncateFrom: 3, entries: [command(3, 3, bytes(9)), config(4, 3, THREE_NODES)] },
        { truncateFrom: 10, entries: [command(5, 3)] },
        { truncateFrom: 5, entries: [] },
      ];
      for (const batch of batches) await storage.save(batch);
      const state = await restart(storage, 1, cluster);
      expect(state).toEqual(await model(batches));
      expect(state.entries.map((e) => [e.index, e.term])).toEqual([
        [1, 1],
        [2, 1],
        [3, 3],
        [4, 3],
      ]);
    });

    it('applies concurrent saves in call order', async () => {
      const cluster = uniqueName('c');
      const { storage } = await start(1, cluster);
      const batches: StorageBatch[] = [];
      for (let i = 1; i <= 30; i++) batches.push({ hardState: { term: 1 + Math.floor(i / 10), vote: i % 3, commit: i - 1 }, entries: [command(i, 1 + Math.floor(i / 10))] });
      // A leader change in the middle: entries 26..30 replaced, then more appended.
      batches.push({ hardState: { term: 5, vote: 2, commit: 25 }, truncateFrom: 26, entries: commands(26, 3, 5) });
      for (let i = 29; i <= 40; i++) batches.push({ entries: [command(i, 5)] });
      await Promise.all(batches.map((batch) => storage.save(batch)));
      const state = await restart(storage, 1, cluster);
      expect(state).toEqual(await model(batches));
      expect(state.entries).toHaveLength(40);
      expect(state.hardState).toEqual({ term: 5, vote: 2, commit: 25 });
    });

    it('reads ranges of stored entries', async () => {
      const cluster = uniqueName('c');
      const { storage } = await start(1, cluster);
      const log = [noop(1, 1), ...commands(2, 9, 1)];
      await storage.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: log });
      expect(await storage.entries(1, 10)).toEqual(log);
      expect(await storage.entries(3, 5)).toEqual(log.slice(2, 5));
      expect(await storage.entries(0, 2)).toEqual(log.slice(0, 2));
      expect(await storage.entries(7, 100)).toEqual(log.slice(6));
      expect(await storage.entries(4, 4)).toEqual([log[3]]);
      expect(await storage.entries(5, 4)).toEqual([]);
      expect(await storage.entries(11, 20)).toEqual([]);
    });

    it('keeps nodes and clusters sharing one store apart', async () => {
      const cluster = uniqueName('c');
      const other = uniqueName('c');
      const writes: Array<[number, string, StorageBatch]> = [
        [1, cluster, { baseConfiguration: THREE_NODES, hardState: { term: 1, vote: 1, commit: 0 }, entries: [noop(1, 1)] }],
        [2, cluster, { baseConfiguration: THREE_NODES, hardState: { term: 2, vote: 2, commit: 0 }, entries: [noop(1, 1), command(2, 2)] }],
        [1, other, { hardState: { term: 7, vote: 0, commit: 0 }, entries: commands(1, 3, 7) }],
      ];
      for (const [node, clusterId, batch] of writes) {
        const { storage } = await start(node, clusterId);
        await storage.save(batch);
        await storage.close();
      }
      // Truncating node 2's log must not touch node 1's.
      {
        const { storage } = await start(2, cluster);
        await storage.save({ truncateFrom: 1, entries: [] });
        await storage.close();
      }
      const expectations: Array<[number, string, Partial<RecoveredState>]> = [
        [1, cluster, { hardState: { term: 1, vote: 1, commit: 0 }, entries: [noop(1, 1)], baseConfiguration: THREE_NODES }],
        [2, cluster, { hardState: { term: 2, vote: 2, commit: 0 }, entries: [], baseConfiguration: THREE_NODES }],
        [1, other, { hardState: { term: 7, vote: 0, commit: 0 }, entries: commands(1, 3, 7) }],
        [3, cluster, { hardState: EMPTY_HARD_STATE, entries: [] }],
      ];
      for (const [node, clusterId, expected] of expectations) {
        const { storage, state } = await start(node, clusterId);
        expect(state, `node ${node} of ${clusterId}`).toEqual(expected);
        await storage.close();
      }
    });

    it('refuses a batch that would leave a gap, and keeps what was there', async () => {
      const cluster = uniqueName('c');
      const { storage } = await start(1, cluster);
      await storage.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 3, 1) });
      await expect(storage.save({ hardState: { term: 9, vote: 9, commit: 0 }, entries: [command(5, 1)] })).rejects.toBeInstanceOf(StorageCorruptionError);
      expect(await restart(storage, 1, cluster)).toEqual({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 3, 1) });
      const again = opened[opened.length - 1]!;
      await expect(again.save({ hardState: { term: 9, vote: 9, commit: 0 }, truncateFrom: 2, entries: [command(2, 1), command(2, 1)] })).rejects.toBeInstanceOf(
        StorageCorruptionError,
      );
      expect(await restart(again, 1, cluster)).toEqual({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 3, 1) });
    });

    it('recovers exactly after many batches and several restarts', async () => {
      const cluster = uniqueName('c');
      let { storage } = await start(3, cluster);
      const batches: StorageBatch[] = [{ baseConfiguration: THREE_NODES, hardState: { term: 0, vote: 0, commit: 0 }, entries: [] }];
      await storage.save(batches[0]!);
      let last = 0;
      let term = 1;
      // A deterministic mix of appends, term changes and truncations.
      for (let step = 0; step < 40; step++) {
        const batch: StorageBatch =
          step % 7 === 6 && last > 3
            ? { hardState: { term: ++term, vote: (step % 3) + 1, commit: 0 }, truncateFrom: last - 2, entries: [command(last - 2, term, bytes(step, 0))] }
            : { hardState: { term, vote: 1, commit: 0 }, entries: step % 5 === 0 ? [config(last + 1, term, JOINT_FOUR_NODES)] : commands(last + 1, (step % 4) + 1, term) };
        batches.push(batch);
        await storage.save(batch);
        last = (batch.truncateFrom ? batch.truncateFrom - 1 : last) + batch.entries.length;
        if (step % 13 === 12) {
          await storage.close();
          ({ storage } = await start(3, cluster));
        }
      }
      const expected = await model(batches);
      expect(await restart(storage, 3, cluster)).toEqual(expected);
    });
  });
}
