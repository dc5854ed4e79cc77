import { createHash } from 'node:crypto';
import type { SnapshotMetadata } from '../../core/types.js';
import type { LogCompaction, StoredSnapshot } from '../storage.js';
import { decodeConfiguration } from './configuration-codec.js';
import { checkConfigurationToWrite } from './entry-codec.js';
import { toSafeInteger } from './safe-integer.js';

/** Default size of one row of snapshot bytes. */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** At most about this many snapshot bytes in one INSERT (always at least one chunk). */
const MAX_BYTES_PER_INSERT = 8 * 1024 * 1024;
/** PostgreSQL's parameter limit, less the shared cluster and node, over 2 parameters (chunk, data) a row. */
const MAX_CHUNKS_PER_INSERT = Math.floor((65_535 - 2) / 2);

/** A row of `raft_snapshots` as `pg` returns it. */
export interface SnapshotRow {
  readonly index: unknown;
  readonly term: unknown;
  readonly configuration: unknown;
  readonly size?: unknown;
  readonly chunks?: unknown;
  readonly sha256?: unknown;
}

/** Reads a stored snapshot's metadata back, or throws an Error saying what is wrong with it. */
export function decodeSnapshotMetadata(row: SnapshotRow): SnapshotMetadata {
  const field = (name: string, value: unknown): number => {
    try {
      return toSafeInteger(value);
    } catch (error) {
      throw new Error(`its ${name}: ${(error as Error).message}`);
    }
  };
  const index = field('index', row.index);
  const term = field('term', row.term);
  let configuration;
  try {
    configuration = decodeConfiguration(row.configuration);
  } catch (error) {
    throw new Error(`its configuration: ${(error as Error).message}`);
  }
  return { index, term, configuration };
}

/** Checks a snapshot about to be written, so a bad one fails its batch instead of the next `load()`. */
export function checkSnapshotToWrite(snapshot: StoredSnapshot): string | undefined {
  const problem = checkPosition('snapshot', snapshot.metadata) ?? checkConfigurationToWrite(snapshot.metadata.configuration);
  if (problem) return `snapshot: ${problem}`;
  if (!(snapshot.data instanceof Uint8Array)) return 'snapshot: its data is not a Uint8Array';
  return undefined;
}

/** Checks a compaction about to be written. */
export function checkCompactionToWrite(compact: LogCompaction): string | undefined {
  const problem = checkPosition('compaction', compact) ?? checkConfigurationToWrite(compact.configuration);
  return problem ? `compaction: ${problem}` : undefined;
}

function checkPosition(what: string, position: { index: number; term: number }): string | undefined {
  if (!Number.isSafeInteger(position.index) || position.index < 0) return `${what} index ${String(position.index)} is not a non-negative safe integer`;
  if (!Number.isSafeInteger(position.term) || position.term < 0) return `${what} term ${String(position.term)} is not a non-negative safe integer`;
  return undefined;
}

/** The bytes of a snapshot split into rows, with what its metadata row records about them. */
export interface EncodedSnapshot {
  readonly size: number;
  readonly sha256: Buffer;
  /** The chunk rows grouped into INSERTs: each group's chunk numbers and bytes. */
  readonly inserts: ReadonlyArray<ReadonlyArray<readonly [number, Buffer]>>;
  readonly chunks: number;
}

/** Splits `data` into chunks of `chunkBytes` (views, not copies), grouped into INSERTs of bounded size. */
export function encodeSnapshotData(data: Uint8Array, chunkBytes: number): EncodedSnapshot {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const sha256 = createHash('sha256').update(bytes).digest();
  const chunksPerInsert = Math.max(1, Math.min(MAX_CHUNKS_PER_INSERT, Math.floor(MAX_BYTES_PER_INSERT / chunkBytes)));
  const inserts: Array<Array<readonly [number, Buffer]>> = [];
  let chunk = 0;
  for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes, chunk++) {
    if (chunk % chunksPerInsert === 0) inserts.push([]);
    inserts[inserts.length - 1]!.push([chunk, bytes.subarray(offset, Math.min(offset + chunkBytes, bytes.byteLength))]);
  }
  return { size: bytes.byteLength, sha256, inserts, chunks: chunk };
}

/**
 * Puts the stored chunks back together, checking them against the metadata row: every chunk present
 * and in order, the length, and the SHA-256. The result has its own memory (not a view of a pooled Buffer).
 *
 * @throws Error saying what is wrong.
 */
export function decodeSnapshotData(row: SnapshotRow, chunkRows: ReadonlyArray<{ chunk: unknown; data: unknown }>): Uint8Array {
  const size = toSafeInteger(row.size);
  const chunks = toSafeInteger(row.chunks);
  if (!(row.sha256 instanceof Uint8Array)) throw new Error('its SHA-256 is not a byte string');
  if (chunkRows.length !== chunks) throw new Error(`it has ${chunkRows.length} chunk row(s) where its metadata says ${chunks}`);
  let total = 0;
  for (const [i, { chunk, data }] of chunkRows.entries()) {
    if (toSafeInteger(chunk) !== i) throw new Error(`chunk ${String(chunk)} is where chunk ${i} was expected: chunk ${i} is missing`);
    if (!(data instanceof Uint8Array)) throw new Error(`chunk ${i} is not a byte string`);
    total += data.byteLength;
  }
  if (total !== size) throw new Error(`its chunks hold ${total} bytes where its metadata says ${size}`);
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const { data } of chunkRows) {
    bytes.set(data as Uint8Array, offset);
    offset += (data as Uint8Array).byteLength;
  }
  const digest = createHash('sha256').update(bytes).digest();
  if (!digest.equals(row.sha256)) throw new Error(`its bytes have SHA-256 ${digest.toString('hex')} where its metadata says ${Buffer.from(row.sha256).toString('hex')}`);
  return bytes;
}
