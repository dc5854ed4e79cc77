import { afterEach, describe, expect, it } from 'vitest';
import type { Configuration, Entry, RecoveredState, SnapshotMetadata } from '../../lib/core/types.js';
import { StorageCorruptionError } from '../../lib/storage/errors.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import { EMPTY_HARD_STATE, type RaftStorage, type StorageBatch, type StoredSnapshot } from '../../lib/storage/storage.js';
import { bytes, command, commands, config, JOINT_FOUR_NODES, noop, THREE_NODES, uniqueName } from './fixtures.js';

const FOUR_NODES: Configuration = { voters: [1, 2, 3, 4], addresses: JOINT_FOUR_NODES.addresses! };

/** A snapshot at `index` whose bytes say where it is. */
function snapshotAt(index: number, term: number, configuration: Configuration = THREE_NODES, data: Uint8Array = bytes(index & 0xff, term & 0xff, 0, 255)): StoredSnapshot {
  return { metadata: { index, term, configuration }, data };
}

/** `length` bytes of a pattern that does not repeat every 256 bytes (so a misplaced chunk shows). */
function patternBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + Math.floor(i / 251)) & 0xff;
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

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
        config(8, 3, { voters: [2], learners: [4, 5], addresses: { '4': 'http://127.0.0.4:4000' } }),
        command(9, 3, new TextEncoder().encode('{"op":"put","key":"k\u0000","value":"ünïcødé"}')),
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

    /** Closes `storage` and starts the same node again, returning the new storage too. */
    async function reopen(storage: RaftStorage, nodeId: number, clusterId: string): Promise<{ storage: RaftStorage; state: RecoveredState }> {
      await storage.close();
      return start(nodeId, clusterId);
    }

    /** Expects the latest snapshot to be `expected`, bytes and all. */
    async function expectSnapshot(storage: RaftStorage, expected: StoredSnapshot): Promise<void> {
      const loaded = await storage.loadSnapshot();
      expect(loaded?.metadata).toEqual(expected.metadata);
      expect(loaded!.data).toBeInstanceOf(Uint8Array);
      expect(loaded!.data.byteLength).toBe(expected.data.byteLength);
      expect(sameBytes(loaded!.data, expected.data)).toBe(true);
    }

    describe('snapshots and log compaction', () => {
      /** A log of 10 entries over terms 1..3 with two configuration changes, and a bootstrap configuration. */
      const LOG: Entry[] = [noop(1, 1), config(2, 1, JOINT_FOUR_NODES), command(3, 1), config(4, 2, FOUR_NODES), ...commands(5, 2, 2), ...commands(7, 4, 3)];
      const BOOT: StorageBatch = { baseConfiguration: THREE_NODES, hardState: { term: 3, vote: 1, commit: 10 }, entries: LOG };

      it('has no snapshot and no log start until they are saved', async () => {
        const cluster = uniqueName('c');
        const { storage } = await start(1, cluster);
        expect(await storage.loadSnapshot()).toBeUndefined();
        await storage.save(BOOT);
        expect(await storage.loadSnapshot()).toBeUndefined();
        const { storage: again, state } = await reopen(storage, 1, cluster);
        expect('snapshot' in state).toBe(false);
        expect('logStart' in state).toBe(false);
        expect(await again.loadSnapshot()).toBeUndefined();
      });

      it('saves a snapshot and reads it back exactly, bytes over several chunks and metadata, keeping only the latest', async () => {
        const cluster = uniqueName('c');
        const { storage } = await start(1, cluster);
        await storage.save(BOOT);
        const big = snapshotAt(4, 2, JOINT_FOUR_NODES, patternBytes(2.5 * 1024 * 1024 + 3));
        await storage.save({ snapshot: big, entries: [] });
        await expectSnapshot(storage, big);
        let { storage: current, state } = await reopen(storage, 1, cluster);
        expect(state).toEqual({ hardState: BOOT.hardState, baseConfiguration: THREE_NODES, entries: LOG, snapshot: big.metadata });
        await expectSnapshot(current, big);
        const loaded = (await current.loadSnapshot())!;
        expect(loaded.data.buffer.byteLength).toBe(loaded.data.byteLength); // its own bytes, not a view of shared memory

        // A new one replaces it; what the caller does with its buffers afterwards changes nothing stored.
        const data = bytes(7, 8, 9);
        await current.save({ snapshot: snapshotAt(6, 2, FOUR_NODES, data), entries: [] });
        data[0] = 0;
        (await current.loadSnapshot())!.data[1] = 0;
        ({ storage: current, state } = await reopen(current, 1, cluster));
        expect(state.snapshot).toEqual({ index: 6, term: 2, configuration: FOUR_NODES });
        await expectSnapshot(current, snapshotAt(6, 2, FOUR_NODES, bytes(7, 8, 9)));

        // An empty one is a snapshot too.
        await current.save({ snapshot: snapshotAt(10, 3, FOUR_NODES, new Uint8Array(0)), entries: [] });
        ({ storage: current, state } = await reopen(current, 1, cluster));
        expect(state.snapshot?.index).toBe(10);
        await expectSnapshot(current, snapshotAt(10, 3, FOUR_NODES, new Uint8Array(0)));
      });

      it('compacts the log: drops the entries up to the index, and where the log starts survives restarts', async () => {
        const cluster = uniqueName('c');
        const { storage } = await start(1, cluster);
        const snapshot = snapshotAt(8, 3, FOUR_NODES);
        const batches: StorageBatch[] = [BOOT, { snapshot, compact: { index: 5, term: 2, configuration: FOUR_NODES }, entries: [] }];
        for (const batch of batches) await storage.save(batch);
        let { storage: current, state } = await reopen(storage, 1, cluster);
        expect(state).toEqual({
          hardState: BOOT.hardState,
          logStart: { index: 5, term: 2 },
          entries: LOG.slice(5),
          baseConfiguration: FOUR_NODES,
          snapshot: snapshot.metadata,
        });
        expect(state).toEqual(await model(batches));
        expect(await current.entries(1, 10)).toEqual(LOG.slice(5));
        expect(await current.entries(1, 5)).toEqual([]);
        expect(await current.entries(4, 7)).toEqual(LOG.slice(5, 7));
        await expectSnapshot(current, snapshot);

        // Up to the snapshot itself, then the same compaction again (nothing to drop).
        batches.push({ compact: { index: 8, term: 3, configuration: FOUR_NODES }, entries: [] }, { compact: { index: 8, term: 3, configuration: FOUR_NODES }, entries: [] });
        for (const batch of batches.slice(2)) await current.save(batch);
        ({ storage: current, state } = await reopen(current, 1, cluster));
        expect(state.logStart).toEqual({ index: 8, term: 3 });
        expect(state.entries).toEqual(LOG.slice(8));
        expect(state).toEqual(await model(batches));
        await expectSnapshot(current, snapshot);
      });

      it('continues the log after a compaction, and truncates after it', async () => {
        const cluster = uniqueName('c');
        const { storage } = await start(1, cluster);
        const batches: StorageBatch[] = [
          BOOT,
          { snapshot: snapshotAt(7, 3), compact: { index: 6, term: 2, configuration: FOUR_NODES }, entries: [] },
          { hardState: { term: 4, vote: 2, commit: 10 }, entries: commands(11, 3, 4) },
          { hardState: { term: 5, vote: 3, commit: 10 }, truncateFrom: 12, entries: [command(12, 5, bytes(1)), config(13, 5, THREE_NODES)] },
          { entries: [command(14, 5)] },
        ];
        for (const batch of batches) await storage.save(batch);
        const state = await restart(storage, 1, cluster);
        expect(state).toEqual(await model(batches));
        expect(state.logStart).toEqual({ index: 6, term: 2 });
        expect(state.entries.map((e) => [e.index, e.term])).toEqual([
          [7, 3],
          [8, 3],
          [9, 3],
          [10, 3],
          [11, 4],
          [12, 5],
          [13, 5],
          [14, 5],
        ]);
      });

      it('installs a snapshot beyond the end of its log (truncate, snapshot, compact), then appends right after it', async () => {
        const cluster = uniqueName('c');
        const { storage } = await start(2, cluster);
        await storage.save({ hardState: { term: 1, vote: 1, commit: 2 }, entries: commands(1, 4, 1) });
        const snapshot = snapshotAt(500, 2, FOUR_NODES, patternBytes(5000));
        const install: StorageBatch = { hardState: { term: 3, vote: 0, commit: 500 }, truncateFrom: 3, snapshot, compact: { index: 500, term: 2, configuration: FOUR_NODES }, entries: [] };
        await storage.save(install);
        let { storage: current, state } = await reopen(storage, 2, cluster);
        expect(state).toEqual({ hardState: install.hardState, logStart: { index: 500, term: 2 }, entries: [], baseConfiguration: FOUR_NODES, snapshot: snapshot.metadata });
        expect(await current.entries(0, 1000)).toEqual([]);
        await expectSnapshot(current, snapshot);

        await current.save({ hardState: { term: 3, vote: 0, commit: 501 }, entries: [command(501, 3), command(502, 3)] });
        ({ storage: current, state } = await reopen(current, 2, cluster));
        expect(state.entries).toEqual([command(501, 3), command(502, 3)]);
        expect(state.hardState.commit).toBe(501);

        // All of it in one batch, entries included, on another node.
        await current.close();
        const { storage: other } = await start(3, cluster);
        await other.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: commands(1, 2, 1) });
        await other.save({ ...install, entries: [command(501, 3)] });
        const otherState = await restart(other, 3, cluster);
        expect(otherState).toEqual({ hardState: install.hardState, logStart: { index: 500, term: 2 }, entries: [command(501, 3)], baseConfiguration: FOUR_NODES, snapshot: snapshot.metadata });
      });

      it('refuses a batch that would leave a gap after a compaction, and changes nothing', async () => {
        const cluster = uniqueName('c');
        let { storage } = await start(1, cluster);
        const snapshot = snapshotAt(4, 2);
        const batches: StorageBatch[] = [BOOT, { snapshot, compact: { index: 3, term: 1, configuration: JOINT_FOUR_NODES }, entries: [] }];
        for (const batch of batches) await storage.save(batch);
        const expected = await model(batches);
        const refused: StorageBatch[] = [
          // The next entry after a compaction within the log is 11, not 8.
          { hardState: { term: 9, vote: 9, commit: 10 }, snapshot: snapshotAt(8, 3), compact: { index: 6, term: 2, configuration: FOUR_NODES }, entries: [command(8, 3)] },
          // After an install at 20, it is 21.
          { hardState: { term: 9, vote: 9, commit: 10 }, truncateFrom: 5, snapshot: snapshotAt(20, 4), compact: { index: 20, term: 4, configuration: FOUR_NODES }, entries: [command(20, 9)] },
          { hardState: { term: 9, vote: 9, commit: 10 }, truncateFrom: 5, snapshot: snapshotAt(20, 4), compact: { index: 20, term: 4, configuration: FOUR_NODES }, entries: [command(22, 9)] },
          // Before an entry that was compacted away.
          { hardState: { term: 9, vote: 9, commit: 10 }, truncateFrom: 2, entries: [command(2, 9)] },
        ];
        for (const batch of refused) {
          await expect(storage.save(batch)).rejects.toBeInstanceOf(StorageCorruptionError);
          let state: RecoveredState;
          ({ storage, state } = await reopen(storage, 1, cluster));
          expect(state).toEqual(expected);
          await expectSnapshot(storage, snapshot);
        }
      });

      it('refuses to move the log start back, and changes nothing', async () => {
        const cluster = uniqueName('c');
        let { storage } = await start(1, cluster);
        const batches: StorageBatch[] = [BOOT, { snapshot: snapshotAt(6, 2), compact: { index: 5, term: 2, configuration: FOUR_NODES }, entries: [] }];
        for (const batch of batches) await storage.save(batch);
        const save = storage.save({ hardState: { term: 9, vote: 9, commit: 10 }, snapshot: snapshotAt(7, 3), compact: { index: 3, term: 1, configuration: THREE_NODES }, entries: [] });
        await expect(save).rejects.toThrow(/log start back from index 5 to 3/);
        let state: RecoveredState;
        ({ storage, state } = await reopen(storage, 1, cluster));
        expect(state).toEqual(await model(batches));
        await expectSnapshot(storage, snapshotAt(6, 2));
      });

      it('refuses a snapshot outside the log, and changes nothing', async () => {
        const cluster = uniqueName('c');
        let { storage } = await start(1, cluster);
        await storage.save(BOOT);
        const expectRefused = async (batch: StorageBatch, expected: RecoveredState, snapshot: StoredSnapshot | undefined) => {
          await expect(storage.save(batch)).rejects.toThrow(/snapshot at index \d+ outside the log, which spans \d+\.\.\d+/);
          let state: RecoveredState;
          ({ storage, state } = await reopen(storage, 1, cluster));
          expect(state).toEqual(expected);
          if (snapshot) await expectSnapshot(storage, snapshot);
          else expect(await storage.loadSnapshot()).toBeUndefined();
        };
        // Past the last entry.
        await expectRefused({ hardState: { term: 9, vote: 9, commit: 10 }, snapshot: snapshotAt(11, 3), entries: [] }, await model([BOOT]), undefined);
        const batches = [BOOT, { snapshot: snapshotAt(7, 3), compact: { index: 5, term: 2, configuration: FOUR_NODES }, entries: [] }];
        await storage.save(batches[1]!);
        const expected = await model(batches);
        // Before the log start.
        await expectRefused({ snapshot: snapshotAt(4, 2), entries: [] }, expected, snapshotAt(7, 3));
        // A compaction past the stored snapshot.
        await expectRefused({ compact: { index: 8, term: 3, configuration: FOUR_NODES }, entries: [] }, expected, snapshotAt(7, 3));
        // A truncation below it.
        await expectRefused({ truncateFrom: 7, entries: [] }, expected, snapshotAt(7, 3));
      });

      it('recovers exactly after many batches with snapshots, compactions, installs and restarts', async () => {
        const cluster = uniqueName('c');
        let { storage } = await start(3, cluster);
        const batches: StorageBatch[] = [{ baseConfiguration: THREE_NODES, hardState: { term: 1, vote: 1, commit: 0 }, entries: [] }];
        await storage.save(batches[0]!);
        const terms: number[] = [0]; // terms[i]: the term of entry i (0: the sentinel)
        let start_ = 0;
        let snapshotIndex = 0;
        let term = 1;
        for (let step = 0; step < 60; step++) {
          const last = terms.length - 1;
          let batch: StorageBatch;
          if (step % 17 === 16) {
            // An install beyond the end of the log, and the leader's next entry.
            term++;
            const index = last + 5;
            batch = {
              hardState: { term, vote: 0, commit: index },
              truncateFrom: start_ + 1,
              snapshot: snapshotAt(index, term - 1, FOUR_NODES, patternBytes(step * 100)),
              compact: { index, term: term - 1, configuration: FOUR_NODES },
              entries: [command(index + 1, term)],
            };
            terms.length = start_ + 1;
            while (terms.length <= index) terms.push(term - 1);
            terms.push(term);
            start_ = snapshotIndex = index;
          } else if (step % 6 === 5 && last - 2 > start_) {
            // A snapshot a little behind the end, keeping two entries before it.
            snapshotIndex = last - 1;
            const index = Math.max(start_, snapshotIndex - 2);
            batch = { snapshot: snapshotAt(snapshotIndex, terms[snapshotIndex]!, THREE_NODES, bytes(step)), compact: { index, term: terms[index]!, configuration: THREE_NODES }, entries: [] };
            start_ = index;
          } else if (step % 7 === 6 && last - 2 > Math.max(start_, snapshotIndex)) {
            term++;
            batch = { hardState: { term, vote: (step % 3) + 1, commit: 0 }, truncateFrom: last - 1, entries: [command(last - 1, term, bytes(step, 0))] };
            terms.length = last - 1;
            terms.push(term);
          } else {
            const count = (step % 4) + 1;
            batch = { hardState: { term, vote: 1, commit: 0 }, entries: step % 5 === 0 ? [config(last + 1, term, JOINT_FOUR_NODES)] : commands(last + 1, count, term) };
            for (const _ of batch.entries) terms.push(term);
          }
          batches.push(batch);
          await storage.save(batch);
          if (step % 13 === 12) ({ storage } = await reopen(storage, 3, cluster));
        }
        const expected = await model(batches);
        expect(expected.logStart?.index).toBeGreaterThan(0);
        const { storage: last, state } = await reopen(storage, 3, cluster);
        expect(state).toEqual(expected);
        const reference = new MemoryStorage();
        for (const batch of batches) await reference.save(batch);
        await expectSnapshot(last, (await reference.loadSnapshot())!);
      });
    });
  });
}
