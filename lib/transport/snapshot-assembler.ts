/**
 * The receiving side of a chunked InstallSnapshot (thesis §5.4.1, Figure 5.3's `offset`/`data`/`done`),
 * independent of HTTP: chunks from each sender are appended in order, and once the last one arrives
 * and the whole matches its SHA-256 digest, the snapshot is handed to the node (`install`) exactly
 * once; its answer is remembered for a while, so that a sender whose answer was lost gets it again
 * instead of sending every byte a second time.
 *
 * Rules (each sender — the leader id — has at most one assembly at a time):
 * - A snapshot is identified by the request's term, its index, term and configuration, and its size.
 *   A chunk of another snapshot from the same sender replaces the assembly (the sender moved on: a
 *   newer term, a newer snapshot); a chunk whose term is below that of an assembly in progress (from
 *   any sender) is refused ({@link SnapshotTransferError} `snapshot_stale`, 409): its leader was
 *   deposed.
 * - A chunk is taken only at the offset the assembly has reached; any other offset is answered with
 *   the offset expected, and the sender continues from there. So a sender resumes after a failure by
 *   sending a chunk (even an empty one) at offset 0: the answer says where the receiver stands.
 * - A snapshot larger than `maxSnapshotBytes` is refused (`snapshot_too_large`, 413); the bytes are
 *   buffered as they come (nothing is allocated for the announced size up front).
 * - When the last chunk arrives (`done`), the digest is checked (`snapshot_digest_mismatch`, 409, and
 *   the assembly is dropped so that the next attempt starts afresh), then `install` is called. Chunks
 *   of the same snapshot that arrive meanwhile wait for the same installation and get its answer. A
 *   failed installation drops the assembly and its error goes to every waiting chunk.
 * - An assembly (or a remembered answer) untouched for `idleTimeoutMs` is dropped; at most
 *   `maxAssemblies` are kept (the least recently used one is dropped to make room).
 */
import { createHash, type Hash } from 'node:crypto';
import { NodeStoppedError, RaftError } from '../core/errors.js';
import type { Configuration, InstallSnapshotRequest, InstallSnapshotResponse, NodeId } from '../core/types.js';

/** Why a snapshot chunk was refused; `status` is the HTTP status a transport answers with. */
export class SnapshotTransferError extends RaftError {
  constructor(
    readonly status: 409 | 413 | 501,
    readonly code: SnapshotTransferErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `snapshot_stale` (409): a snapshot of a newer term is being received; `snapshot_busy` (409): the
 * sender's previous snapshot is still being installed; `snapshot_too_large` (413): above
 * `maxSnapshotBytes`; `snapshot_digest_mismatch` (409): the bytes do not match the digest (start
 * again from offset 0); `snapshot_unsupported` (501): the receiving node takes no snapshots.
 */
export type SnapshotTransferErrorCode = 'snapshot_stale' | 'snapshot_busy' | 'snapshot_too_large' | 'snapshot_digest_mismatch' | 'snapshot_unsupported';

export const SNAPSHOT_TRANSFER_ERROR_STATUS: Readonly<Record<SnapshotTransferErrorCode, 409 | 413 | 501>> = {
  snapshot_stale: 409,
  snapshot_busy: 409,
  snapshot_too_large: 413,
  snapshot_digest_mismatch: 409,
  snapshot_unsupported: 501,
};

/** One chunk of a snapshot, as a transport received it (validated: `offset + data.length <= size`). */
export interface SnapshotChunk {
  /** The snapshot's metadata, the sender (`from`), the receiver (`to`) and the sender's term. */
  readonly request: InstallSnapshotRequest;
  /** The snapshot's total size in bytes. */
  readonly size: number;
  /** Where `data` starts in the snapshot. */
  readonly offset: number;
  readonly data: Uint8Array;
  /** The last chunk: `offset + data.length === size`, and `digest` is given. */
  readonly done: boolean;
  /** SHA-256 of the whole snapshot, lowercase hex (on the last chunk). */
  readonly digest?: string;
}

/** What a chunk achieved. */
export type SnapshotChunkResult =
  /** The snapshot is not complete yet: send the bytes from `nextOffset` on. `term` echoes the chunk's. */
  | { readonly done: false; readonly term: number; readonly nextOffset: number }
  /** The snapshot was installed (now, or earlier by the same transfer): the node's answer. */
  | { readonly done: true; readonly response: InstallSnapshotResponse };

/** Hands a complete snapshot to the node; resolves once it is durable (`RaftRpcHandler.installSnapshot`). */
export type SnapshotInstaller = (request: InstallSnapshotRequest, data: Uint8Array) => Promise<InstallSnapshotResponse>;

export interface SnapshotAssemblerOptions {
  /** Largest snapshot accepted, in bytes. Default 256 MiB. */
  readonly maxSnapshotBytes?: number;
  /** An assembly nobody touched for this long is dropped, in ms. Default 60 000. */
  readonly idleTimeoutMs?: number;
  /** Assemblies (and remembered answers) kept at most; one per sender. Default 4. */
  readonly maxAssemblies?: number;
}

export const SNAPSHOT_ASSEMBLER_DEFAULTS = {
  maxSnapshotBytes: 256 * 1024 * 1024,
  idleTimeoutMs: 60_000,
  maxAssemblies: 4,
} as const satisfies Required<SnapshotAssemblerOptions>;

/** What {@link SnapshotAssembler.pending} reports of an assembly. */
export interface SnapshotAssemblyInfo {
  readonly from: NodeId;
  readonly term: number;
  readonly index: number;
  readonly snapshotTerm: number;
  readonly size: number;
  /** Bytes received so far. */
  readonly received: number;
  readonly state: 'receiving' | 'installing' | 'installed';
}

interface Assembly {
  readonly from: NodeId;
  readonly key: string;
  readonly request: InstallSnapshotRequest;
  readonly size: number;
  state: 'receiving' | 'installing' | 'installed';
  chunks: Buffer[];
  received: number;
  hash: Hash | undefined;
  installing?: Promise<InstallSnapshotResponse>;
  response?: InstallSnapshotResponse;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class SnapshotAssembler {
  readonly options: Required<SnapshotAssemblerOptions>;
  private readonly assemblies = new Map<NodeId, Assembly>();
  private closed = false;

  constructor(options: SnapshotAssemblerOptions = {}) {
    const merged = { ...SNAPSHOT_ASSEMBLER_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Required<SnapshotAssemblerOptions>;
    for (const [name, value] of Object.entries(merged)) {
      if (!(Number.isSafeInteger(value) && (value as number) > 0)) throw new RangeError(`SnapshotAssembler option ${name} must be a positive integer, got ${String(value)}`);
    }
    this.options = merged;
  }

  /**
   * Takes one chunk: buffers it, or answers where the sender should continue, or — for the last
   * chunk — checks the digest and installs the snapshot through `install`.
   * @throws SnapshotTransferError, or what `install` throws
   */
  async receive(chunk: SnapshotChunk, install: SnapshotInstaller): Promise<SnapshotChunkResult> {
    if (this.closed) throw new NodeStoppedError('the snapshot receiver is closed');
    const { request, size, offset, data } = chunk;
    if (!(Number.isSafeInteger(size) && size >= 0 && Number.isSafeInteger(offset) && offset >= 0 && offset + data.length <= size)) {
      throw new RangeError(`a snapshot chunk must lie within the snapshot (offset ${offset}, ${data.length} bytes, size ${size})`);
    }
    if (size > this.options.maxSnapshotBytes) {
      throw new SnapshotTransferError(413, 'snapshot_too_large', `the snapshot is ${size} bytes, more than the limit of ${this.options.maxSnapshotBytes} bytes (maxSnapshotBytes)`);
    }
    const stale = this.newestTerm();
    if (request.term < stale) {
      throw new SnapshotTransferError(409, 'snapshot_stale', `a snapshot from term ${request.term} is stale: a snapshot from term ${stale} is being received`);
    }
    const key = identity(chunk);
    let assembly = this.assemblies.get(request.from);
    if (assembly && assembly.key !== key) {
      if (assembly.state === 'installing' && request.term <= assembly.request.term) {
        // The same sender, while its previous snapshot is being made durable: let that finish first.
        throw new SnapshotTransferError(409, 'snapshot_busy', `node ${request.from}'s previous snapshot (index ${assembly.request.snapshot.index}) is still being installed`);
      }
      this.drop(assembly);
      assembly = undefined;
    }
    if (!assembly) assembly = this.start(chunk, key);

    if (assembly.state === 'installed') {
      this.touch(assembly);
      return { done: true, response: assembly.response! };
    }
    if (assembly.state === 'installing') return { done: true, response: await assembly.installing! };

    this.touch(assembly);
    if (offset !== assembly.received) return { done: false, term: request.term, nextOffset: assembly.received };
    if (data.length > 0) {
      const copy = Buffer.from(data); // the caller's buffer is not kept
      assembly.chunks.push(copy);
      assembly.hash!.update(copy);
      assembly.received += copy.length;
    }
    if (!chunk.done) return { done: false, term: request.term, nextOffset: assembly.received };
    if (assembly.received !== size) {
      // `done` before the end: a sender's bug (a validating transport refuses this before).
      return { done: false, term: request.term, nextOffset: assembly.received };
    }
    const digest = assembly.hash!.digest('hex');
    assembly.hash = undefined;
    if (chunk.digest === undefined || digest !== chunk.digest.toLowerCase()) {
      this.drop(assembly);
      throw new SnapshotTransferError(
        409,
        'snapshot_digest_mismatch',
        `the ${size} bytes received for the snapshot at index ${request.snapshot.index} have SHA-256 ${digest}, not ${chunk.digest ?? '(none given)'}; send it again from offset 0`,
      );
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const part of assembly.chunks) {
      bytes.set(part, at);
      at += part.length;
    }
    assembly.chunks = [];
    return { done: true, response: await this.install(assembly, bytes, install) };
  }

  /** The assemblies in progress and the answers remembered (for tests, metrics and logs). */
  pending(): SnapshotAssemblyInfo[] {
    return [...this.assemblies.values()].map((a) => ({
      from: a.from,
      term: a.request.term,
      index: a.request.snapshot.index,
      snapshotTerm: a.request.snapshot.term,
      size: a.size,
      received: a.received,
      state: a.state,
    }));
  }

  /** Drops every assembly and refuses further chunks (installations under way finish). */
  close(): void {
    this.closed = true;
    for (const assembly of [...this.assemblies.values()]) this.drop(assembly);
  }

  private async install(assembly: Assembly, bytes: Uint8Array, install: SnapshotInstaller): Promise<InstallSnapshotResponse> {
    assembly.state = 'installing';
    this.clearTimer(assembly);
    assembly.installing = Promise.resolve().then(() => install(assembly.request, bytes));
    try {
      const response = await assembly.installing;
      if (this.assemblies.get(assembly.from) === assembly) {
        assembly.state = 'installed';
        assembly.response = response;
        this.touch(assembly);
      }
      return response;
    } catch (error) {
      if (this.assemblies.get(assembly.from) === assembly) this.drop(assembly);
      throw error;
    } finally {
      assembly.installing = undefined;
    }
  }

  private start(chunk: SnapshotChunk, key: string): Assembly {
    // Senders of an older term lost their leadership: their assemblies only hold memory.
    for (const other of [...this.assemblies.values()]) if (other.request.term < chunk.request.term && other.state !== 'installing') this.drop(other);
    while (this.assemblies.size >= this.options.maxAssemblies) {
      const victim = [...this.assemblies.values()].find((a) => a.state !== 'installing');
      if (!victim) break;
      this.drop(victim);
    }
    const request = chunk.request;
    const assembly: Assembly = {
      from: request.from,
      key,
      request: {
        type: 'InstallSnapshot',
        from: request.from,
        to: request.to,
        term: request.term,
        snapshot: { index: request.snapshot.index, term: request.snapshot.term, configuration: copyConfiguration(request.snapshot.configuration) },
      },
      size: chunk.size,
      state: 'receiving',
      chunks: [],
      received: 0,
      hash: createHash('sha256'),
      timer: undefined,
    };
    this.assemblies.set(request.from, assembly);
    return assembly;
  }

  /** Highest term of a snapshot being received or installed (0 when none). */
  private newestTerm(): number {
    let term = 0;
    for (const a of this.assemblies.values()) if (a.state !== 'installed' && a.request.term > term) term = a.request.term;
    return term;
  }

  private touch(assembly: Assembly): void {
    // Most recently used last, so that eviction takes the first.
    this.assemblies.delete(assembly.from);
    this.assemblies.set(assembly.from, assembly);
    this.clearTimer(assembly);
    assembly.timer = setTimeout(() => {
      if (this.assemblies.get(assembly.from) === assembly && assembly.state !== 'installing') this.drop(assembly);
    }, this.options.idleTimeoutMs);
    assembly.timer.unref?.();
  }

  private clearTimer(assembly: Assembly): void {
    if (assembly.timer !== undefined) clearTimeout(assembly.timer);
    assembly.timer = undefined;
  }

  private drop(assembly: Assembly): void {
    this.clearTimer(assembly);
    assembly.chunks = [];
    assembly.hash = undefined;
    if (this.assemblies.get(assembly.from) === assembly) this.assemblies.delete(assembly.from);
  }
}

/** What makes two chunks parts of the same snapshot. */
function identity(chunk: SnapshotChunk): string {
  const { term, snapshot } = chunk.request;
  return JSON.stringify([term, snapshot.index, snapshot.term, chunk.size, canonicalConfiguration(snapshot.configuration)]);
}

function canonicalConfiguration(config: Configuration): unknown {
  const sorted = (ids: readonly NodeId[] | undefined) => (ids ? [...ids].sort((a, b) => a - b) : null);
  const addresses = config.addresses ? Object.entries(config.addresses).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : null;
  return [sorted(config.voters), sorted(config.outgoing), sorted(config.learners), addresses];
}

function copyConfiguration(config: Configuration): Configuration {
  return {
    voters: [...config.voters],
    ...(config.outgoing ? { outgoing: [...config.outgoing] } : {}),
    ...(config.learners?.length ? { learners: [...config.learners] } : {}),
    ...(config.addresses ? { addresses: { ...config.addresses } } : {}),
  };
}

/** Bytes hashed between two yields to the event loop by {@link snapshotDigest}. */
const DIGEST_SLICE_BYTES = 4 * 1024 * 1024;

/**
 * SHA-256 of a snapshot, lowercase hex (the `digest` of its last chunk). Hashes a few MiB at a time and
 * yields to the event loop in between, so that a large snapshot does not stall heartbeats.
 */
export async function snapshotDigest(data: Uint8Array, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for (let at = 0; at < data.length; at += DIGEST_SLICE_BYTES) {
    if (at > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
    }
    hash.update(data.subarray(at, at + DIGEST_SLICE_BYTES));
  }
  return hash.digest('hex');
}
