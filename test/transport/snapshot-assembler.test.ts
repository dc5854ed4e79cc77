import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { InstallSnapshotRequest, InstallSnapshotResponse } from '../../lib/core/types.js';
import { NodeStoppedError } from '../../lib/core/errors.js';
import { SnapshotAssembler, SnapshotTransferError, snapshotDigest, type SnapshotChunk } from '../../lib/transport/snapshot-assembler.js';

const SELF = 2;

function request(overrides: { from?: number; term?: number; index?: number; snapshotTerm?: number; voters?: number[] } = {}): InstallSnapshotRequest {
  return {
    type: 'InstallSnapshot',
    from: overrides.from ?? 1,
    to: SELF,
    term: overrides.term ?? 5,
    snapshot: { index: overrides.index ?? 100, term: overrides.snapshotTerm ?? 4, configuration: { voters: overrides.voters ?? [1, 2, 3] } },
  };
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** The chunks of `data` of `chunkBytes` each, the last one `done` with the digest. */
function chunksOf(req: InstallSnapshotRequest, data: Uint8Array, chunkBytes: number): SnapshotChunk[] {
  const out: SnapshotChunk[] = [];
  for (let offset = 0; offset === 0 || offset < data.length; offset += chunkBytes) {
    const end = Math.min(data.length, offset + chunkBytes);
    const done = end === data.length;
    out.push({ request: req, size: data.length, offset, data: data.subarray(offset, end), done, ...(done ? { digest: sha256(data) } : {}) });
    if (done) break;
  }
  return out;
}

/** Records what would reach the node. */
function installer(matchIndex?: number) {
  const installs: Array<{ request: InstallSnapshotRequest; data: Uint8Array }> = [];
  const install = async (req: InstallSnapshotRequest, data: Uint8Array): Promise<InstallSnapshotResponse> => {
    installs.push({ request: req, data });
    return { type: 'InstallSnapshotResponse', from: req.to, to: req.from, term: req.term, matchIndex: matchIndex ?? req.snapshot.index };
  };
  return { installs, install };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SnapshotAssembler', () => {
  it('assembles chunks received in order and installs the snapshot once, byte-identical, with a copy of the bytes', async () => {
    const assembler = new SnapshotAssembler();
    const { installs, install } = installer();
    const data = new Uint8Array(randomBytes(10_000));
    const req = request();
    const chunks = chunksOf(req, data, 3_000);
    expect(chunks).toHaveLength(4);
    const answers = [];
    for (const chunk of chunks) answers.push(await assembler.receive(chunk, install));
    expect(answers.slice(0, 3)).toEqual([
      { done: false, term: 5, nextOffset: 3_000 },
      { done: false, term: 5, nextOffset: 6_000 },
      { done: false, term: 5, nextOffset: 9_000 },
    ]);
    expect(answers[3]).toEqual({ done: true, response: { type: 'InstallSnapshotResponse', from: SELF, to: 1, term: 5, matchIndex: 100 } });
    expect(installs).toHaveLength(1);
    expect(installs[0]!.request).toEqual(req);
    expect(Buffer.from(installs[0]!.data).equals(Buffer.from(data))).toBe(true);
    // Not the caller's buffer.
    expect(installs[0]!.data.buffer).not.toBe(data.buffer);
    // The answer is remembered: the same snapshot again (its answer was lost) is not installed twice.
    expect(await assembler.receive({ ...chunks[0]!, data: new Uint8Array(0), done: false }, install)).toEqual(answers[3]);
    expect(installs).toHaveLength(1);
    expect(assembler.pending()).toMatchObject([{ from: 1, state: 'installed', received: 10_000 }]);
  });

  it('installs an empty snapshot and a snapshot sent as one chunk', async () => {
    const assembler = new SnapshotAssembler();
    const { installs, install } = installer();
    const empty = new Uint8Array(0);
    expect(await assembler.receive({ request: request({ index: 7 }), size: 0, offset: 0, data: empty, done: true, digest: sha256(empty) }, install)).toMatchObject({ done: true });
    const data = new Uint8Array([1, 2, 3]);
    expect(await assembler.receive({ request: request({ index: 9 }), size: 3, offset: 0, data, done: true, digest: sha256(data) }, install)).toMatchObject({ done: true });
    expect(installs.map((i) => [...i.data])).toEqual([[], [1, 2, 3]]);
  });

  it('answers a chunk at an unexpected offset with the offset it expects, and takes nothing from it', async () => {
    const assembler = new SnapshotAssembler();
    const { installs, install } = installer();
    const data = new Uint8Array(randomBytes(4_000));
    const [first, second, third, last] = chunksOf(request(), data, 1_000);
    // Nothing yet: a chunk further on is answered with 0.
    expect(await assembler.receive(third!, install)).toEqual({ done: false, term: 5, nextOffset: 0 });
    expect(await assembler.receive(first!, install)).toEqual({ done: false, term: 5, nextOffset: 1_000 });
    // Ahead (a chunk was lost), and behind (a chunk sent twice): both answered with 1000.
    expect(await assembler.receive(third!, install)).toEqual({ done: false, term: 5, nextOffset: 1_000 });
    expect(await assembler.receive(first!, install)).toEqual({ done: false, term: 5, nextOffset: 1_000 });
    // The last chunk out of turn installs nothing.
    expect(await assembler.receive(last!, install)).toEqual({ done: false, term: 5, nextOffset: 1_000 });
    // An empty chunk at offset 0 (a resuming sender's probe) learns where to continue.
    expect(await assembler.receive({ ...first!, data: new Uint8Array(0) }, install)).toEqual({ done: false, term: 5, nextOffset: 1_000 });
    expect(installs).toHaveLength(0);
    for (const chunk of [second!, third!]) await assembler.receive(chunk, install);
    expect(await assembler.receive(last!, install)).toMatchObject({ done: true });
    expect(Buffer.from(installs[0]!.data).equals(Buffer.from(data))).toBe(true);
  });

  it('refuses a snapshot whose bytes do not match its digest, and drops what it had so that the next attempt starts afresh', async () => {
    const assembler = new SnapshotAssembler();
    const { installs, install } = installer();
    const data = new Uint8Array(randomBytes(2_000));
    const [first, last] = chunksOf(request(), data, 1_000);
    await assembler.receive(first!, install);
    const error = await assembler.receive({ ...last!, digest: sha256(new Uint8Array([1])) }, install).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SnapshotTransferError);
    expect(error).toMatchObject({ status: 409, code: 'snapshot_digest_mismatch' });
    expect((error as Error).message).toMatch(/send it again from offset 0/);
    expect(installs).toHaveLength(0);
    expect(assembler.pending()).toEqual([]);
    // A corrupted chunk is caught the same way.
    const corrupted = new Uint8Array(first!.data);
    corrupted[10]! ^= 0xff;
    await assembler.receive({ ...first!, data: corrupted }, install);
    await expect(assembler.receive(last!, install)).rejects.toMatchObject({ code: 'snapshot_digest_mismatch' });
    // Sent again, correctly: installed.
    await assembler.receive(first!, install);
    expect(await assembler.receive(last!, install)).toMatchObject({ done: true });
    expect(installs).toHaveLength(1);
  });

  it('refuses a snapshot larger than maxSnapshotBytes with 413, before buffering anything', async () => {
    const assembler = new SnapshotAssembler({ maxSnapshotBytes: 1_000 });
    const { installs, install } = installer();
    const error = await assembler.receive({ request: request(), size: 1_001, offset: 0, data: new Uint8Array(10), done: false }, install).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SnapshotTransferError);
    expect(error).toMatchObject({ status: 413, code: 'snapshot_too_large' });
    expect((error as Error).message).toBe('the snapshot is 1001 bytes, more than the limit of 1000 bytes (maxSnapshotBytes)');
    expect(assembler.pending()).toEqual([]);
    // At the limit: accepted.
    const data = new Uint8Array(1_000);
    expect(await assembler.receive({ request: request(), size: 1_000, offset: 0, data, done: true, digest: sha256(data) }, install)).toMatchObject({ done: true });
    expect(installs).toHaveLength(1);
  });

  it('replaces a partial assembly with a snapshot of a newer term or another snapshot, and refuses a stale term with 409', async () => {
    const assembler = new SnapshotAssembler();
    const { installs, install } = installer();
    const data = new Uint8Array(randomBytes(3_000));
    const old = chunksOf(request({ term: 5 }), data, 1_000);
    await assembler.receive(old[0]!, install);
    await assembler.receive(old[1]!, install);
    expect(assembler.pending()).toMatchObject([{ from: 1, term: 5, received: 2_000 }]);

    // Same sender, a newer snapshot (same term): starts afresh, expecting offset 0.
    const newer = chunksOf(request({ term: 5, index: 150 }), data, 1_000);
    expect(await assembler.receive(newer[1]!, install)).toEqual({ done: false, term: 5, nextOffset: 0 });
    expect(assembler.pending()).toMatchObject([{ from: 1, index: 150, received: 0 }]);
    await assembler.receive(newer[0]!, install);

    // Another leader in a newer term: the old leader's assembly is dropped, and its chunks are stale.
    const next = chunksOf(request({ from: 3, term: 6, index: 150 }), data, 1_000);
    expect(await assembler.receive(next[0]!, install)).toEqual({ done: false, term: 6, nextOffset: 1_000 });
    expect(assembler.pending().map((a) => a.from)).toEqual([3]);
    const stale = await assembler.receive(newer[1]!, install).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(SnapshotTransferError);
    expect(stale).toMatchObject({ status: 409, code: 'snapshot_stale' });
    expect((stale as Error).message).toBe('a snapshot from term 5 is stale: a snapshot from term 6 is being received');

    // The same leader in a newer term replaces its own assembly too.
    const later = chunksOf(request({ from: 3, term: 7, index: 150 }), data, 1_000);
    expect(await assembler.receive(later[2]!, install)).toEqual({ done: false, term: 7, nextOffset: 0 });
    for (const chunk of later) await assembler.receive(chunk, install);
    expect(installs).toHaveLength(1);
    expect(installs[0]!.request.term).toBe(7);
    // A different configuration or size is another snapshot as well.
    const a = chunksOf(request({ from: 4, term: 8, voters: [1, 2] }), data, 1_000);
    await assembler.receive(a[0]!, install);
    expect(await assembler.receive(chunksOf(request({ from: 4, term: 8, voters: [1, 2, 4] }), data, 1_000)[1]!, install)).toMatchObject({ nextOffset: 0 });
  });

  it('drops an assembly that stays idle for idleTimeoutMs; a chunk after that is answered with offset 0', async () => {
    vi.useFakeTimers();
    const assembler = new SnapshotAssembler({ idleTimeoutMs: 1_000 });
    const { install } = installer();
    const data = new Uint8Array(randomBytes(3_000));
    const chunks = chunksOf(request(), data, 1_000);
    await assembler.receive(chunks[0]!, install);
    vi.advanceTimersByTime(900);
    await assembler.receive(chunks[1]!, install); // touched: the timeout starts again
    vi.advanceTimersByTime(900);
    expect(assembler.pending()).toMatchObject([{ received: 2_000 }]);
    vi.advanceTimersByTime(200);
    expect(assembler.pending()).toEqual([]);
    expect(await assembler.receive(chunks[2]!, install)).toEqual({ done: false, term: 5, nextOffset: 0 });
    assembler.close();
  });

  it('keeps at most maxAssemblies, dropping the least recently used', async () => {
    const assembler = new SnapshotAssembler({ maxAssemblies: 2 });
    const { install } = installer();
    const data = new Uint8Array(100);
    for (const from of [1, 3, 4]) await assembler.receive(chunksOf(request({ from }), data, 10)[0]!, install);
    expect(assembler.pending().map((a) => a.from)).toEqual([3, 4]);
  });

  it('gives chunks that arrive while the snapshot is being installed the same answer, and a failed installation\'s error to all', async () => {
    const assembler = new SnapshotAssembler();
    const data = new Uint8Array(randomBytes(2_000));
    const chunks = chunksOf(request(), data, 1_000);
    let release!: (response: InstallSnapshotResponse) => void;
    let calls = 0;
    const slow = (req: InstallSnapshotRequest) => {
      calls++;
      return new Promise<InstallSnapshotResponse>((resolve) => {
        release = resolve;
      }).then((r) => ({ ...r, to: req.from }));
    };
    await assembler.receive(chunks[0]!, slow);
    const first = assembler.receive(chunks[1]!, slow);
    await Promise.resolve();
    const retried = assembler.receive(chunks[1]!, slow);
    const probe = assembler.receive({ ...chunks[0]!, data: new Uint8Array(0) }, slow);
    // Another snapshot of the same sender and term must wait for this one.
    await expect(assembler.receive(chunksOf(request({ index: 200 }), data, 1_000)[0]!, slow)).rejects.toMatchObject({ status: 409, code: 'snapshot_busy' });
    await vi.waitFor(() => expect(calls).toBe(1));
    release({ type: 'InstallSnapshotResponse', from: SELF, to: 1, term: 5, matchIndex: 100 });
    const answers = await Promise.all([first, retried, probe]);
    for (const answer of answers) expect(answer).toEqual({ done: true, response: { type: 'InstallSnapshotResponse', from: SELF, to: 1, term: 5, matchIndex: 100 } });
    expect(calls).toBe(1);

    // A failure: every waiting chunk gets it, and the next attempt starts from offset 0.
    const failing = new SnapshotAssembler();
    await failing.receive(chunks[0]!, slow);
    const broken = async () => {
      throw new NodeStoppedError();
    };
    await expect(failing.receive(chunks[1]!, broken)).rejects.toBeInstanceOf(NodeStoppedError);
    expect(failing.pending()).toEqual([]);
    expect(await failing.receive(chunks[1]!, broken)).toEqual({ done: false, term: 5, nextOffset: 0 });
  });

  it('refuses chunks after close (the node stopped)', async () => {
    const assembler = new SnapshotAssembler();
    assembler.close();
    const { install } = installer();
    await expect(assembler.receive(chunksOf(request(), new Uint8Array(1), 1)[0]!, install)).rejects.toBeInstanceOf(NodeStoppedError);
  });

  it('validates its options and a chunk beyond the snapshot', async () => {
    expect(() => new SnapshotAssembler({ maxSnapshotBytes: 0 })).toThrow(/maxSnapshotBytes must be a positive integer/);
    expect(() => new SnapshotAssembler({ idleTimeoutMs: 1.5 })).toThrow(/idleTimeoutMs/);
    const { install } = installer();
    await expect(new SnapshotAssembler().receive({ request: request(), size: 5, offset: 3, data: new Uint8Array(3), done: false }, install)).rejects.toThrow(RangeError);
  });

  it('snapshotDigest is SHA-256 in hex, in slices', async () => {
    const data = new Uint8Array(randomBytes(9 * 1024 * 1024 + 7));
    expect(await snapshotDigest(data)).toBe(sha256(data));
    expect(await snapshotDigest(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
