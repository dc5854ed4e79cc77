import { RaftInvariantError } from '../core/errors.js';
import type { SessionTableState } from './session-table.js';

/**
 * What the node stores as a snapshot's bytes: the replicated session table (thesis §6.3, it is part
 * of the replicated state) and the state machine's own snapshot, side by side.
 *
 * Layout: `RSNP` (4 bytes), version (1 byte), the session table's JSON length (uint32, big-endian),
 * the JSON, then the state machine's bytes.
 */
const MAGIC = [0x52, 0x53, 0x4e, 0x50];
const VERSION = 1;
const HEADER = MAGIC.length + 1 + 4;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface SnapshotContents {
  readonly sessions: SessionTableState;
  readonly state: Uint8Array;
}

export function encodeSnapshot(contents: SnapshotContents): Uint8Array {
  const json = encoder.encode(JSON.stringify(contents.sessions));
  const out = new Uint8Array(HEADER + json.byteLength + contents.state.byteLength);
  out.set(MAGIC, 0);
  out[MAGIC.length] = VERSION;
  new DataView(out.buffer).setUint32(MAGIC.length + 1, json.byteLength);
  out.set(json, HEADER);
  out.set(contents.state, HEADER + json.byteLength);
  return out;
}

/** @throws RaftInvariantError when the bytes are not a snapshot this version wrote. */
export function decodeSnapshot(bytes: Uint8Array): SnapshotContents {
  if (bytes.byteLength < HEADER || MAGIC.some((b, i) => bytes[i] !== b)) throw new RaftInvariantError('not a nestjs-raft snapshot (bad magic)');
  if (bytes[MAGIC.length] !== VERSION) throw new RaftInvariantError(`unknown snapshot version ${bytes[MAGIC.length]}`);
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(MAGIC.length + 1);
  if (HEADER + length > bytes.byteLength) throw new RaftInvariantError('snapshot is truncated');
  let sessions: SessionTableState;
  try {
    sessions = JSON.parse(decoder.decode(bytes.subarray(HEADER, HEADER + length))) as SessionTableState;
  } catch (error) {
    throw new RaftInvariantError(`snapshot's session table does not parse: ${(error as Error).message}`);
  }
  if (!sessions || !Array.isArray(sessions.sessions) || !Array.isArray(sessions.expired)) throw new RaftInvariantError('snapshot holds no session table');
  return { sessions, state: bytes.subarray(HEADER + length) };
}
