/**
 * The HTTP wire format of nestjs-raft: the Go model's JSON bodies (peterbourgon/raft, see SEED.md),
 * extended with what this engine needs (conflict hints, entry types, configuration entries, pre-votes),
 * and the pure functions that translate between them and the engine's messages, both directions.
 *
 * Field names are snake_case, as the Go model sent them. Everything the Go model did not send is
 * optional on the way in, so a Go-era body is still understood.
 *
 * Request decoders (`decodeAppendEntries`, `decodeRequestVote`) trust that the body was validated
 * first (the Nest DTOs do this); response decoders validate, because an answer comes from another
 * process we do not control.
 */
import { ConfigurationChangeError, NotLeaderError, RaftError, SessionExpiredError, type ConfigurationChangeRefusal } from '../core/errors.js';
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  Configuration,
  Entry,
  EntryType,
  InstallSnapshotRequest,
  NodeId,
  RequestVoteRequest,
  RequestVoteResponse,
} from '../core/types.js';
import {
  CommandAbortedError,
  CommandForwardingError,
  CommandTimeoutError,
  ConfigurationChangeFailedError,
  LeadershipLostError,
  NodeRemovedError,
  NodeStoppedError,
  RaftOptionsError,
  StorageFailureError,
} from '../core/errors.js';
import { SNAPSHOT_TRANSFER_ERROR_STATUS, SnapshotTransferError, type SnapshotChunk, type SnapshotChunkResult, type SnapshotTransferErrorCode } from './snapshot-assembler.js';
import type { RaftMember } from './transport.js';

// ------------------------------------------------------------------------------------------ bodies

/** A configuration on the wire (entries of type `config`). */
export interface WireConfiguration {
  readonly voters: readonly NodeId[];
  readonly outgoing?: readonly NodeId[];
  /** Non-voting members (absent when none). */
  readonly learners?: readonly NodeId[];
  /** Member id (decimal string) → base URL. */
  readonly addresses?: Readonly<Record<string, string>>;
}

/** A log entry on the wire. The Go model sent only `index`, `term` and `command`. */
export interface WireEntry {
  readonly index: number;
  readonly term: number;
  /** The command's bytes in standard, padded base64 (Go's encoding of `[]byte`). */
  readonly command: string;
  /** Absent means `command`. */
  readonly type?: EntryType;
  /** Only on entries of type `config`. */
  readonly config?: WireConfiguration;
}

/** `POST {prefix}/appendentries` */
export interface AppendEntriesBody {
  readonly term: number;
  readonly leader_id: NodeId;
  readonly prev_log_index: number;
  readonly prev_log_term: number;
  readonly entries: readonly WireEntry[];
  readonly commit_index: number;
}

/** The answer to {@link AppendEntriesBody}. A Go server answers only `term` and `success`. */
export interface AppendEntriesResultBody {
  readonly term: number;
  readonly success: boolean;
  readonly match_index?: number;
  readonly rejected_index?: number;
  readonly conflict_term?: number;
  readonly conflict_index?: number;
}

/** `POST {prefix}/requestvote` */
export interface RequestVoteBody {
  readonly term: number;
  readonly candidate_id: NodeId;
  readonly last_log_index: number;
  readonly last_log_term: number;
  /** A pre-vote (thesis §9.6); absent means a real vote. */
  readonly pre_vote?: boolean;
  /** A leadership transfer's vote (thesis §3.10). */
  readonly transfer?: boolean;
}

/** The answer to {@link RequestVoteBody}. */
export interface RequestVoteResultBody {
  readonly term: number;
  readonly vote_granted: boolean;
  readonly pre_vote?: boolean;
}

/**
 * `POST {prefix}/installsnapshot`: one chunk of a snapshot (thesis §5.4.1, Figure 5.3), sent in order
 * from offset 0. Every chunk repeats the snapshot's metadata, so that the receiver can tell the
 * chunks of one snapshot from those of another. The receiving node is named by the `x-raft-to` header,
 * as for every RPC.
 */
export interface InstallSnapshotBody {
  /** The leader's term. */
  readonly term: number;
  readonly leader_id: NodeId;
  /** The snapshot replaces every entry up to this index… */
  readonly last_included_index: number;
  /** …whose term this is. */
  readonly last_included_term: number;
  /** The configuration in force at `last_included_index` (the shape of a `config` entry's). */
  readonly configuration: WireConfiguration;
  /** The snapshot's total size in bytes. */
  readonly size: number;
  /** Where this chunk's bytes start in the snapshot. */
  readonly offset: number;
  /** This chunk's bytes, standard padded base64 (may be empty: a probe asking where the receiver stands). */
  readonly data: string;
  /** The last chunk: `offset` + the chunk's length = `size`. */
  readonly done: boolean;
  /** On the last chunk only: SHA-256 of the whole snapshot, 64 lowercase hex digits. */
  readonly digest?: string;
}

/**
 * The answer to {@link InstallSnapshotBody}: `{ term, next_offset }` while the snapshot is incomplete
 * (`next_offset` is where the receiver wants the next chunk to start: after this chunk, or — when the
 * chunk's offset was not the one expected — what it has so far), `{ term, match_index }` once it is
 * installed (the node's answer).
 */
export interface InstallSnapshotResultBody {
  readonly term: number;
  readonly next_offset?: number;
  readonly match_index?: number;
}

/** One member in `POST {prefix}/setconfiguration`: its id, its base URL, or both. */
export interface WirePeer {
  readonly id?: NodeId;
  readonly url?: string;
}

/** `POST {prefix}/setconfiguration` */
export interface SetConfigurationBody {
  /** The complete new set of voters. */
  readonly peers: readonly WirePeer[];
  /** The complete new set of learners (non-voting members); absent: they stay as they are. */
  readonly learners?: readonly WirePeer[];
}

/** The body of every error answer. `error` is a human-readable message; `code` is for programs. */
export interface ErrorBody {
  readonly error: string;
  /** The same text as `error`, under the name Nest's own error bodies use. */
  readonly message?: string;
  readonly code?: string;
  /** `not_leader`: the leader's id (0 when unknown) and base URL when known. */
  readonly leader_id?: NodeId;
  readonly leader_url?: string;
  /** `configuration_change` (a {@link ConfigurationChangeRefusal}) or `configuration_change_failed`: why. */
  readonly reason?: string;
  /** `timeout`: the timeout that expired. */
  readonly timeout_ms?: number;
  /** `session_expired`: the client session that was forgotten. */
  readonly client_id?: string;
  /** `invalid_request`: the option or field that was refused. */
  readonly field?: string;
  /** `invalid_body`: every constraint the body failed. */
  readonly issues?: readonly string[];
  /** Only on `/setconfiguration`, as the Go model answered `{success}` or `{error}`. */
  readonly success?: false;
}

/** The answer of `POST {prefix}/setconfiguration`. */
export type SetConfigurationResultBody = { readonly success: true } | (ErrorBody & { readonly success: false });

/** The answer of `POST {prefix}/command`: the state machine's answer, encoded by {@link encodeAnswer}. */
export interface CommandResultBody {
  readonly result?: JsonValue;
}

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Default path under which the RPC endpoints live (the Go model's). */
export const DEFAULT_PATH_PREFIX = '/raft';

/** Content type the HTTP peer sends JSON RPCs with by default (see {@link isJsonContentType}). */
export const RAFT_JSON_CONTENT_TYPE = 'application/vnd.raft+json';

/** Request header carrying the id the sender believes it is talking to; a mismatch is refused. */
export const TO_HEADER = 'x-raft-to';

/** Header naming the sending node (informational: proxies and logs use it; it proves nothing). */
export const FROM_HEADER = 'x-raft-from';

/** Request header carrying a forwarded command's timeout, so the leader gives up when the caller does. */
export const TIMEOUT_HEADER = 'x-raft-timeout-ms';

/** Paths below the prefix. */
export const RPC_PATHS = {
  id: 'id',
  appendEntries: 'appendentries',
  requestVote: 'requestvote',
  command: 'command',
  setConfiguration: 'setconfiguration',
  readIndex: 'readindex',
  timeoutNow: 'timeoutnow',
  installSnapshot: 'installsnapshot',
  commands: 'commands',
} as const;

// ------------------------------------------------------------------------------------------ command batches

/** Most commands in one forwarded batch. */
export const MAX_COMMANDS_PER_BATCH = 4096;

/**
 * A batch of forwarded commands as one binary body (`application/octet-stream`): the count (uint32,
 * big-endian), then each command as its length (uint32) and its bytes. No base64, no JSON.
 */
export function encodeCommandBatch(commands: readonly Uint8Array[]): Buffer {
  let size = 4;
  for (const c of commands) size += 4 + c.byteLength;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(commands.length, 0);
  let at = 4;
  for (const c of commands) {
    out.writeUInt32BE(c.byteLength, at);
    out.set(c, at + 4);
    at += 4 + c.byteLength;
  }
  return out;
}

/**
 * Reads a batch written by {@link encodeCommandBatch}; each command is a view of `bytes`.
 * @throws WireFormatError naming what is wrong (count, a length past the end, trailing bytes, a command too large).
 */
export function decodeCommandBatch(bytes: Uint8Array, maxCommandBytes: number): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) throw new WireFormatError('a command batch starts with its count (4 bytes)');
  const count = view.getUint32(0);
  if (count === 0 || count > MAX_COMMANDS_PER_BATCH) throw new WireFormatError(`a command batch holds 1 to ${MAX_COMMANDS_PER_BATCH} commands, not ${count}`);
  const commands: Uint8Array[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.byteLength) throw new WireFormatError(`command ${i} of ${count}: the batch ends before its length`);
    const length = view.getUint32(at);
    if (length > maxCommandBytes) throw new WireFormatError(`command ${i} of ${count} is ${length} bytes, more than ${maxCommandBytes}`);
    if (at + 4 + length > bytes.byteLength) throw new WireFormatError(`command ${i} of ${count}: ${length} bytes announced, the batch ends before`);
    commands.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (at !== bytes.byteLength) throw new WireFormatError(`a command batch of ${count} commands has ${bytes.byteLength - at} bytes too many`);
  return commands;
}

/** One outcome of a batch on the wire: `{ result }` (absent for undefined), or `{ status, error }` as an error answer. */
export type WireCommandOutcome = { readonly result?: JsonValue } | { readonly status: number; readonly error: ErrorBody };

export function encodeCommandOutcome(outcome: { ok: true; value: unknown } | { ok: false; error: unknown }): WireCommandOutcome {
  if (outcome.ok) {
    const result = encodeAnswer(outcome.value);
    return result === undefined ? {} : { result };
  }
  const { status, body } = errorToWire(outcome.error);
  return { status, error: body };
}

/** @throws WireFormatError when `json` is not one outcome per command. */
export function decodeCommandOutcomes(json: unknown, count: number): ({ ok: true; value: unknown } | { ok: false; error: RaftError })[] {
  const outcomes = isPlainObject(json) ? (json as { outcomes?: unknown }).outcomes : undefined;
  if (!Array.isArray(outcomes) || outcomes.length !== count) throw new WireFormatError(`commands: expected ${count} outcomes`);
  return outcomes.map((o: unknown) => {
    if (!isPlainObject(o)) throw new WireFormatError('commands: an outcome is not an object');
    const item = o as Record<string, unknown>;
    if (item.status !== undefined) {
      if (!isIndex(item.status)) throw new WireFormatError('commands: an outcome has a bad status');
      return { ok: false as const, error: errorFromWire(item.status, item.error) };
    }
    return { ok: true as const, value: decodeAnswer(item.result) };
  });
}

// ------------------------------------------------------------------------------------------ errors

/** A body (usually an answer from a peer) does not have the shape the wire format requires. */
export class WireFormatError extends RaftError {}

/** A peer answered with an HTTP status this client does not map to a more specific error. */
export class RaftHttpError extends RaftError {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------------------------------ base64

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard, padded base64 (what Go's encoding/json writes for `[]byte`). */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Whether `text` is canonical standard base64: alphabet `A–Z a–z 0–9 + /`, padded to a multiple of
 * four, and the unused bits of the last group zero (so exactly one text encodes each byte string:
 * `QQ==` is accepted, `QR==` is not). Node's own decoder accepts all of these and silently drops
 * what it does not understand, which is why it is never given unchecked text.
 */
export function isStrictBase64(text: string): boolean {
  if (text.length % 4 !== 0) return false;
  if (text.length > LONG_BASE64) return strictlyDecoded(text) !== undefined;
  if (!BASE64.test(text)) return false;
  if (text.endsWith('==')) return (BASE64_ALPHABET.indexOf(text[text.length - 3]!) & 0x0f) === 0;
  if (text.endsWith('=')) return (BASE64_ALPHABET.indexOf(text[text.length - 2]!) & 0x03) === 0;
  return true;
}

/**
 * Above this length, base64 is checked by decoding and encoding it again (the same text comes back
 * exactly when it is canonical standard base64): the regular expression costs ~65 ms per MiB of text,
 * the round trip ~1 ms — it matters for snapshot chunks.
 */
const LONG_BASE64 = 256;

/** The bytes of canonical standard base64 text, or undefined (by the round trip: see {@link LONG_BASE64}). */
function strictlyDecoded(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** The number of bytes that base64 text of this length (assumed valid) decodes to. */
export function base64DecodedLength(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length / 4) * 3 - padding;
}

/** Decodes strict base64 (see {@link isStrictBase64}) into a fresh Uint8Array; throws {@link WireFormatError} otherwise. */
export function decodeBase64(text: string): Uint8Array {
  if (text.length > LONG_BASE64 && text.length % 4 === 0) {
    const bytes = strictlyDecoded(text);
    if (!bytes) throw new WireFormatError('not valid base64');
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice(); // a copy, never pooled memory
  }
  if (!isStrictBase64(text)) throw new WireFormatError('not valid base64');
  // A copy: Buffer.from may hand out a slice of a shared pool, which must not escape as a command.
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/**
 * Decodes base64 that was already checked (a validated body): straight into a fresh array of its own,
 * without checking again and without the copy out of Buffer's shared pool.
 */
function decodeCheckedBase64(text: string): Uint8Array {
  const out = new Uint8Array(base64DecodedLength(text));
  if (out.byteLength > 0) Buffer.from(out.buffer, out.byteOffset, out.byteLength).write(text, 'base64');
  return out;
}

// ------------------------------------------------------------------------------------------ entries

export function encodeEntry(entry: Entry): WireEntry {
  const wire: { -readonly [K in keyof WireEntry]: WireEntry[K] } = { index: entry.index, term: entry.term, command: encodeBase64(entry.command) };
  if (entry.type !== 'command') wire.type = entry.type;
  if (entry.config) wire.config = encodeConfiguration(entry.config);
  return wire;
}

/** Converts a validated wire entry (its base64 already checked: it is not checked again). */
export function decodeEntry(wire: WireEntry): Entry {
  const type = wire.type ?? 'command';
  const entry: { -readonly [K in keyof Entry]: Entry[K] } = { index: wire.index, term: wire.term, type, command: decodeCheckedBase64(wire.command) };
  if (wire.config) entry.config = decodeConfiguration(wire.config);
  return entry;
}

export function encodeConfiguration(config: Configuration): WireConfiguration {
  const wire: { -readonly [K in keyof WireConfiguration]: WireConfiguration[K] } = { voters: [...config.voters] };
  if (config.outgoing) wire.outgoing = [...config.outgoing];
  if (config.learners?.length) wire.learners = [...config.learners];
  if (config.addresses) wire.addresses = { ...config.addresses };
  return wire;
}

/** Converts a validated wire configuration; ids are sorted, as {@link Configuration} requires. */
export function decodeConfiguration(wire: WireConfiguration): Configuration {
  const config: { -readonly [K in keyof Configuration]: Configuration[K] } = { voters: sortedIds(wire.voters) };
  if (wire.outgoing) config.outgoing = sortedIds(wire.outgoing);
  if (wire.learners?.length) config.learners = sortedIds(wire.learners);
  if (wire.addresses) config.addresses = { ...wire.addresses };
  return config;
}

function sortedIds(ids: readonly NodeId[]): NodeId[] {
  return [...ids].sort((a, b) => a - b);
}

// ------------------------------------------------------------------------------------------ AppendEntries

export function encodeAppendEntries(request: AppendEntriesRequest): AppendEntriesBody {
  return {
    term: request.term,
    leader_id: request.from,
    prev_log_index: request.prevLogIndex,
    prev_log_term: request.prevLogTerm,
    entries: request.entries.map(encodeEntry),
    commit_index: request.leaderCommit,
  };
}

/** Converts a validated body received by node `to`; the sender is the body's `leader_id`. */
export function decodeAppendEntries(body: AppendEntriesBody, to: NodeId): AppendEntriesRequest {
  return {
    type: 'AppendEntries',
    from: body.leader_id,
    to,
    term: body.term,
    prevLogIndex: body.prev_log_index,
    prevLogTerm: body.prev_log_term,
    entries: body.entries.map(decodeEntry),
    leaderCommit: body.commit_index,
  };
}

// ------------------------------------------------------------------------------------------ binary AppendEntries

/**
 * Content type of a binary AppendEntries body ({@link encodeAppendEntriesBinary}). A receiver that
 * does not know it answers 415, and the sender falls back to JSON.
 */
export const RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE = 'application/vnd.raft.appendentries';

/** The binary AppendEntries format this library writes and reads (the body's first byte). */
export const BINARY_APPEND_ENTRIES_VERSION = 1;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const ENTRY_TYPE_CODES: Readonly<Record<EntryType, number>> = { command: 0, noop: 1, config: 2 };
const ENTRY_TYPES: readonly EntryType[] = ['command', 'noop', 'config'];
const BINARY_AE_HEADER = 1 + 5 * 8 + 4;
const BINARY_ENTRY_HEADER = 8 + 1 + 4 + 4;

/**
 * AppendEntries as one binary body: no base64 (a third larger) and no JSON to build or parse.
 * Layout, big-endian: version (u8 = 1); term, leader id, prev log index, prev log term, commit index
 * (u64 each); entry count (u32); then per entry: term (u64), type (u8: 0 command, 1 noop, 2 config),
 * command length (u32) and bytes, configuration length (u32) and its JSON ({@link WireConfiguration}),
 * empty except on config entries. Indexes are not sent: entries are consecutive from prev log index + 1.
 */
export function encodeAppendEntriesBinary(request: AppendEntriesRequest): Buffer {
  request.entries.forEach((e, i) => {
    // The body leaves indexes out: they must be what the receiver will infer.
    if (e.index !== request.prevLogIndex + 1 + i) throw new WireFormatError(`entry ${i} has index ${e.index}, not ${request.prevLogIndex + 1 + i}: entries must be consecutive after prevLogIndex`);
  });
  const configs = request.entries.map((e) => (e.config ? Buffer.from(JSON.stringify(encodeConfiguration(e.config))) : undefined));
  let size = BINARY_AE_HEADER;
  request.entries.forEach((e, i) => (size += BINARY_ENTRY_HEADER + e.command.byteLength + (configs[i]?.byteLength ?? 0)));
  const out = Buffer.allocUnsafe(size);
  out.writeUInt8(BINARY_APPEND_ENTRIES_VERSION, 0);
  let at = 1;
  for (const n of [request.term, request.from, request.prevLogIndex, request.prevLogTerm, request.leaderCommit]) at = writeU64(out, n, at);
  out.writeUInt32BE(request.entries.length, at);
  at += 4;
  request.entries.forEach((e, i) => {
    at = writeU64(out, e.term, at);
    out.writeUInt8(ENTRY_TYPE_CODES[e.type], at);
    out.writeUInt32BE(e.command.byteLength, at + 1);
    out.set(e.command, at + 5);
    at += 5 + e.command.byteLength;
    const config = configs[i];
    out.writeUInt32BE(config?.byteLength ?? 0, at);
    if (config) out.set(config, at + 4);
    at += 4 + (config?.byteLength ?? 0);
  });
  return out;
}

/** One entry of a binary AppendEntries, as read (not yet checked against Raft's rules). */
export interface BinaryWireEntry {
  readonly term: number;
  readonly type: EntryType;
  /** A view of the body's bytes. */
  readonly command: Uint8Array;
  /** The configuration's JSON, parsed (not yet validated); absent when its length was 0. */
  readonly config?: unknown;
}

/** A binary AppendEntries as read, in the JSON body's field names (not yet checked against Raft's rules). */
export interface BinaryAppendEntriesBody {
  readonly term: number;
  readonly leader_id: number;
  readonly prev_log_index: number;
  readonly prev_log_term: number;
  readonly commit_index: number;
  readonly entries: readonly BinaryWireEntry[];
}

/**
 * Reads the structure of a body written by {@link encodeAppendEntriesBinary}: every length within the
 * body, every number a safe integer, a known version and entry types, at most `maxEntries` entries.
 * @throws WireFormatError naming what is wrong
 */
export function decodeAppendEntriesBinary(bytes: Uint8Array, maxEntries: number): BinaryAppendEntriesBody {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < BINARY_AE_HEADER) throw new WireFormatError(`a binary AppendEntries has a ${BINARY_AE_HEADER}-byte header, this body is ${bytes.byteLength} bytes`);
  const version = view.getUint8(0);
  if (version !== BINARY_APPEND_ENTRIES_VERSION) throw new WireFormatError(`binary AppendEntries version ${version} is not supported (expected ${BINARY_APPEND_ENTRIES_VERSION})`);
  const names = ['term', 'leader_id', 'prev_log_index', 'prev_log_term', 'commit_index'] as const;
  const header = names.map((name, i) => readU64(view, 1 + 8 * i, name));
  const count = view.getUint32(41);
  if (count > maxEntries) throw new WireFormatError(`entries holds ${count} entries, more than maxEntriesPerAppend (${maxEntries})`);
  const entries: BinaryWireEntry[] = [];
  let at = BINARY_AE_HEADER;
  for (let i = 0; i < count; i++) {
    const what = `entries.${i}`;
    if (at + BINARY_ENTRY_HEADER > bytes.byteLength) throw new WireFormatError(`${what}: the body ends inside the entry`);
    const term = readU64(view, at, `${what}.term`);
    const code = view.getUint8(at + 8);
    const type = ENTRY_TYPES[code];
    if (type === undefined) throw new WireFormatError(`${what}.type ${code} is not a known entry type (0 command, 1 noop, 2 config)`);
    const commandLength = view.getUint32(at + 9);
    at += 13;
    if (at + commandLength + 4 > bytes.byteLength) throw new WireFormatError(`${what}.command: ${commandLength} bytes announced, the body ends before`);
    const command = new Uint8Array(bytes.buffer, bytes.byteOffset + at, commandLength); // a plain view, even of a Buffer
    at += commandLength;
    const configLength = view.getUint32(at);
    at += 4;
    if (at + configLength > bytes.byteLength) throw new WireFormatError(`${what}.config: ${configLength} bytes announced, the body ends before`);
    let config: unknown;
    if (configLength > 0) {
      try {
        config = JSON.parse(STRICT_UTF8.decode(bytes.subarray(at, at + configLength)));
      } catch {
        throw new WireFormatError(`${what}.config is not JSON in UTF-8`);
      }
    }
    at += configLength;
    entries.push(config === undefined ? { term, type, command } : { term, type, command, config });
  }
  if (at !== bytes.byteLength) throw new WireFormatError(`a binary AppendEntries of ${count} entries has ${bytes.byteLength - at} bytes too many`);
  const [term, leader_id, prev_log_index, prev_log_term, commit_index] = header as [number, number, number, number, number];
  return { term, leader_id, prev_log_index, prev_log_term, commit_index, entries };
}

function writeU64(out: Buffer, value: number, at: number): number {
  out.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  out.writeUInt32BE(value % 0x1_0000_0000, at + 4);
  return at + 8;
}

function readU64(view: DataView, at: number, what: string): number {
  const high = view.getUint32(at);
  if (high > 0x1f_ffff) throw new WireFormatError(`${what} is larger than Number.MAX_SAFE_INTEGER`);
  return high * 0x1_0000_0000 + view.getUint32(at + 4);
}

export function encodeAppendEntriesResult(response: AppendEntriesResponse): AppendEntriesResultBody {
  return {
    term: response.term,
    success: response.success,
    match_index: response.matchIndex,
    rejected_index: response.rejectedIndex,
    conflict_term: response.conflictTerm,
    conflict_index: response.conflictIndex,
  };
}

/**
 * Decodes (and checks) the answer of node `from` to `request`. A Go-era answer has only `term` and
 * `success`; the missing fields are derived from the request: a success matches everything sent, and
 * a rejection without hints makes the leader step back one entry (the paper's plain rule, §5.3).
 */
export function decodeAppendEntriesResult(body: unknown, request: AppendEntriesRequest, from: NodeId): AppendEntriesResponse {
  const o = expectObject(body, 'AppendEntries answer');
  const term = field(o, 'term', isIndex, 'a non-negative integer', 'AppendEntries answer');
  const success = field(o, 'success', isBoolean, 'a boolean', 'AppendEntries answer');
  const optional = (name: string, fallback: number) => optionalField(o, name, isIndex, 'a non-negative integer', 'AppendEntries answer') ?? fallback;
  return {
    type: 'AppendEntriesResponse',
    from,
    to: request.from,
    term,
    success,
    matchIndex: optional('match_index', success ? request.prevLogIndex + request.entries.length : 0),
    rejectedIndex: optional('rejected_index', success ? 0 : request.prevLogIndex),
    conflictTerm: optional('conflict_term', 0),
    conflictIndex: optional('conflict_index', success ? 0 : request.prevLogIndex),
  };
}

// ------------------------------------------------------------------------------------------ RequestVote

export function encodeRequestVote(request: RequestVoteRequest): RequestVoteBody {
  return {
    term: request.term,
    candidate_id: request.from,
    last_log_index: request.lastLogIndex,
    last_log_term: request.lastLogTerm,
    ...(request.preVote ? { pre_vote: true } : {}),
    ...(request.transfer ? { transfer: true } : {}),
  };
}

/** Converts a validated body received by node `to`; the sender is the body's `candidate_id`. */
export function decodeRequestVote(body: RequestVoteBody, to: NodeId): RequestVoteRequest {
  return {
    type: 'RequestVote',
    from: body.candidate_id,
    to,
    term: body.term,
    lastLogIndex: body.last_log_index,
    lastLogTerm: body.last_log_term,
    preVote: body.pre_vote ?? false,
    ...(body.transfer ? { transfer: true } : {}),
  };
}

export function encodeRequestVoteResult(response: RequestVoteResponse): RequestVoteResultBody {
  return { term: response.term, vote_granted: response.voteGranted, ...(response.preVote ? { pre_vote: true } : {}) };
}

/** Decodes (and checks) the answer of node `from` to `request`. */
export function decodeRequestVoteResult(body: unknown, request: RequestVoteRequest, from: NodeId): RequestVoteResponse {
  const o = expectObject(body, 'RequestVote answer');
  const term = field(o, 'term', isIndex, 'a non-negative integer', 'RequestVote answer');
  const voteGranted = field(o, 'vote_granted', isBoolean, 'a boolean', 'RequestVote answer');
  const preVote = optionalField(o, 'pre_vote', isBoolean, 'a boolean', 'RequestVote answer') ?? request.preVote;
  if (preVote !== request.preVote) throw new WireFormatError(`RequestVote answer: pre_vote is ${preVote}, but the request's was ${request.preVote}`);
  return { type: 'RequestVoteResponse', from, to: request.from, term, voteGranted, preVote };
}

// ------------------------------------------------------------------------------------------ InstallSnapshot

/** What one chunk of {@link encodeInstallSnapshotChunk} carries. */
export interface SnapshotChunkSpec {
  /** The snapshot's total size in bytes. */
  readonly size: number;
  readonly offset: number;
  /** The chunk's bytes (`data.subarray(offset, offset + length)`). */
  readonly data: Uint8Array;
  readonly done: boolean;
  /** SHA-256 of the whole snapshot, lowercase hex; on the last chunk. */
  readonly digest?: string;
}

export function encodeInstallSnapshotChunk(request: InstallSnapshotRequest, chunk: SnapshotChunkSpec): InstallSnapshotBody {
  return {
    term: request.term,
    leader_id: request.from,
    last_included_index: request.snapshot.index,
    last_included_term: request.snapshot.term,
    configuration: encodeConfiguration(request.snapshot.configuration),
    size: chunk.size,
    offset: chunk.offset,
    data: encodeBase64(chunk.data),
    done: chunk.done,
    ...(chunk.digest !== undefined ? { digest: chunk.digest } : {}),
  };
}

/** Converts a validated chunk received by node `to`; the sender is the body's `leader_id`. */
export function decodeInstallSnapshotChunk(body: InstallSnapshotBody, to: NodeId): SnapshotChunk {
  return {
    request: {
      type: 'InstallSnapshot',
      from: body.leader_id,
      to,
      term: body.term,
      snapshot: { index: body.last_included_index, term: body.last_included_term, configuration: decodeConfiguration(body.configuration) },
    },
    size: body.size,
    offset: body.offset,
    data: decodeBase64(body.data),
    done: body.done,
    ...(body.digest !== undefined ? { digest: body.digest } : {}),
  };
}

export function encodeInstallSnapshotResult(result: SnapshotChunkResult): InstallSnapshotResultBody {
  return result.done ? { term: result.response.term, match_index: result.response.matchIndex } : { term: result.term, next_offset: result.nextOffset };
}

/**
 * Decodes (and checks) the answer of node `from` to a chunk of `request`, a snapshot of `size` bytes:
 * installed (`match_index`) or where to continue (`next_offset`, at most `size`).
 */
export function decodeInstallSnapshotResult(body: unknown, request: InstallSnapshotRequest, from: NodeId, size: number): SnapshotChunkResult {
  const what = 'InstallSnapshot answer';
  const o = expectObject(body, what);
  const term = field(o, 'term', isIndex, 'a non-negative integer', what);
  const matchIndex = optionalField(o, 'match_index', isIndex, 'a non-negative integer', what);
  if (matchIndex !== undefined) return { done: true, response: { type: 'InstallSnapshotResponse', from, to: request.from, term, matchIndex } };
  const nextOffset = field(o, 'next_offset', isIndex, 'a non-negative integer (or match_index must be given)', what);
  if (nextOffset > size) throw new WireFormatError(`${what}: next_offset ${nextOffset} is beyond the snapshot's ${size} bytes`);
  return { done: false, term, nextOffset };
}

// ------------------------------------------------------------------------------------------ SetConfiguration

/** The body announcing voters `members` and, when given, `learners` (their `url`s when known). */
export function encodeSetConfiguration(members: readonly RaftMember[], learners?: readonly RaftMember[]): SetConfigurationBody {
  const peer = (m: RaftMember): WirePeer => (m.url !== undefined ? { id: m.id, url: m.url } : { id: m.id });
  return { peers: members.map(peer), ...(learners ? { learners: learners.map(peer) } : {}) };
}

// ------------------------------------------------------------------------------------------ command answers

/**
 * Encodes a state machine's answer as JSON: a Uint8Array becomes `{ "$bytes": base64 }` (anywhere in
 * the value), everything else follows JSON's rules (`undefined` → absent, non-finite numbers → null,
 * `toJSON` honoured). An object whose only key is `$bytes` or `$escape` is wrapped in
 * `{ "$escape": … }` so that it cannot be mistaken for bytes. Throws TypeError on a bigint or a cycle,
 * as `JSON.stringify` does.
 */
export function encodeAnswer(value: unknown): JsonValue | undefined {
  return encodeValue(value, new Set());
}

function encodeValue(value: unknown, seen: Set<object>): JsonValue | undefined {
  if (value === null) return null;
  switch (typeof value) {
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      throw new TypeError('a bigint cannot be encoded as JSON');
  }
  if (value instanceof Uint8Array) return { $bytes: encodeBase64(value) };
  const object = value as object & { toJSON?: () => unknown };
  if (typeof object.toJSON === 'function') return encodeValue(object.toJSON(), seen);
  if (seen.has(object)) throw new TypeError('a cyclic value cannot be encoded as JSON');
  seen.add(object);
  try {
    if (Array.isArray(object)) return object.map((item) => encodeValue(item, seen) ?? null);
    const out: { [key: string]: JsonValue } = {};
    for (const [key, item] of Object.entries(object)) {
      const encoded = encodeValue(item, seen);
      if (encoded !== undefined) defineEntry(out, key, encoded);
    }
    return isMarker(out) ? { $escape: out } : out;
  } finally {
    seen.delete(object);
  }
}

/** The inverse of {@link encodeAnswer}. */
export function decodeAnswer(json: unknown): unknown {
  if (json === null || typeof json !== 'object') return json;
  if (Array.isArray(json)) return json.map(decodeAnswer);
  const o = json as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === '$bytes') {
    if (typeof o.$bytes !== 'string' || !isStrictBase64(o.$bytes)) throw new WireFormatError('"$bytes" must hold base64 text');
    return decodeBase64(o.$bytes);
  }
  const source = keys.length === 1 && keys[0] === '$escape' && isPlainObject(o.$escape) ? (o.$escape as Record<string, unknown>) : o;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(source)) defineEntry(out, key, decodeAnswer(item));
  return out;
}

function isMarker(o: Record<string, unknown>): boolean {
  const keys = Object.keys(o);
  return keys.length === 1 && (keys[0] === '$bytes' || keys[0] === '$escape');
}

/** Assigns without invoking the `__proto__` setter, so a key of that name stays an ordinary key. */
function defineEntry(target: { [key: string]: unknown }, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

// ------------------------------------------------------------------------------------------ error answers

/** The HTTP status and body that describe `error` to a peer. */
export function errorToWire(error: unknown): { status: number; body: ErrorBody } {
  const message = error instanceof Error ? error.message : String(error);
  const body = (code: string, extra: Partial<ErrorBody> = {}): ErrorBody => ({ error: message, message, code, ...extra });
  if (error instanceof NotLeaderError) {
    return { status: 421, body: body('not_leader', { leader_id: error.leaderId, ...(error.leaderUrl ? { leader_url: error.leaderUrl } : {}) }) };
  }
  if (error instanceof CommandTimeoutError) return { status: 504, body: body('timeout', { timeout_ms: error.timeoutMs }) };
  if (error instanceof LeadershipLostError) return { status: 503, body: body('leadership_lost') };
  if (error instanceof NodeStoppedError) return { status: 503, body: body('node_stopped') };
  if (error instanceof NodeRemovedError) return { status: 410, body: body('removed') };
  if (error instanceof CommandAbortedError) return { status: 503, body: body('aborted') };
  if (error instanceof ConfigurationChangeError) return { status: 409, body: body('configuration_change', { reason: error.reason }) };
  if (error instanceof ConfigurationChangeFailedError) return { status: 409, body: body('configuration_change_failed', { reason: error.reason }) };
  if (error instanceof RaftOptionsError) return { status: 400, body: body('invalid_request', { field: error.field }) };
  if (error instanceof CommandForwardingError) return { status: 502, body: body('forwarding_failed', { leader_id: error.leaderId }) };
  if (error instanceof StorageFailureError) return { status: 503, body: body('storage_failure') };
  if (error instanceof SessionExpiredError) return { status: 409, body: body('session_expired', { client_id: error.clientId }) };
  if (error instanceof SnapshotTransferError) return { status: error.status, body: body(error.code) };
  return { status: 500, body: body('internal') };
}

const REFUSALS: readonly ConfigurationChangeRefusal[] = ['invalid', 'in-progress', 'leader-not-ready'];

/** The typed error an error answer stands for (the inverse of {@link errorToWire}). */
export function errorFromWire(status: number, body: unknown): RaftError {
  const o = isPlainObject(body) ? (body as Record<string, unknown>) : {};
  const text = typeof o.error === 'string' ? o.error : typeof o.message === 'string' ? o.message : `HTTP ${status}`;
  const code = typeof o.code === 'string' ? o.code : undefined;
  if (status === 421 || code === 'not_leader') {
    const leaderId = isIndex(o.leader_id) ? o.leader_id : 0;
    return new NotLeaderError(leaderId, typeof o.leader_url === 'string' && o.leader_url !== '' ? o.leader_url : undefined);
  }
  if (code === 'timeout' || (status === 504 && code === undefined)) return new CommandTimeoutError(isIndex(o.timeout_ms) ? o.timeout_ms : 0);
  if (code === 'leadership_lost') return new LeadershipLostError(text);
  if (code === 'session_expired') return new SessionExpiredError(typeof o.client_id === 'string' ? o.client_id : '');
  if (code === 'storage_failure') return new StorageFailureError(new Error(text.replace(/^storage failed, the node stopped: /, '')));
  if (code === 'node_stopped') return new NodeStoppedError(text);
  if (status === 410 && code === 'removed') return new NodeRemovedError(text);
  if (code === 'aborted') return new CommandAbortedError();
  if (code === 'invalid_request') {
    return new RaftOptionsError(typeof o.field === 'string' ? o.field : 'request', text.replace(/^invalid Raft option "[^"]*": /, ''));
  }
  if (code !== undefined && Object.hasOwn(SNAPSHOT_TRANSFER_ERROR_STATUS, code)) {
    const known = code as SnapshotTransferErrorCode;
    return new SnapshotTransferError(SNAPSHOT_TRANSFER_ERROR_STATUS[known], known, text);
  }
  if (code === 'configuration_change_failed') return new ConfigurationChangeFailedError(typeof o.reason === 'string' ? o.reason : text);
  if (code === 'configuration_change' || (status === 409 && REFUSALS.includes(o.reason as ConfigurationChangeRefusal))) {
    const reason = REFUSALS.includes(o.reason as ConfigurationChangeRefusal) ? (o.reason as ConfigurationChangeRefusal) : 'invalid';
    return new ConfigurationChangeError(reason, text.replace(/^configuration change refused \([^)]*\): /, ''));
  }
  return new RaftHttpError(status, code, `HTTP ${status}${code ? ` (${code})` : ''}: ${text}`);
}

// ------------------------------------------------------------------------------------------ helpers

/** `/raft`, `raft/`, `//raft//` → `/raft`; `''` and `/` → `''` (the endpoints at the root). */
export function normalizePathPrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `/${trimmed}`;
}

/** `application/json`, `application/vnd.raft+json` and any other `…/…+json`, with or without parameters. */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || /^[a-z0-9.!#$%&'*^_`|~-]+\/[a-z0-9.!#$%&'*^_`|~+-]+\+json$/.test(type);
}

/** Whether `contentType` names the binary AppendEntries body ({@link RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE}). */
export function isBinaryAppendEntries(contentType: string | undefined): boolean {
  return !!contentType && contentType.split(';')[0]!.trim().toLowerCase() === RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE;
}

/** A non-negative safe integer: a term or an index. */
export function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A positive safe integer: a node id. */
export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isBoolean(value: unknown): value is boolean {
  return typeof value === 'boolean';
}

function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function expectObject(body: unknown, what: string): Record<string, unknown> {
  if (!isPlainObject(body)) throw new WireFormatError(`${what}: expected a JSON object`);
  return body as Record<string, unknown>;
}

function field<T>(o: Record<string, unknown>, name: string, check: (v: unknown) => v is T, expected: string, what: string): T {
  const value = o[name];
  if (!check(value)) throw new WireFormatError(`${what}: ${name} must be ${expected}`);
  return value;
}

function optionalField<T>(o: Record<string, unknown>, name: string, check: (v: unknown) => v is T, expected: string, what: string): T | undefined {
  return o[name] === undefined ? undefined : field(o, name, check, expected, what);
}
