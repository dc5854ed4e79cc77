/**
 * Validation and conversion of the RPC bodies: JSON in, the engine's messages out, or an
 * {@link InvalidRpcBodyError} listing every constraint the body broke. Nothing malformed reaches the
 * node: class-validator checks the types (DTOs in this folder), then Raft's own shape rules are
 * checked (consecutive indexes, terms that never decrease, config entries that carry a configuration).
 */
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { RaftError } from '../../core/errors.js';
import type { AppendEntriesRequest, NodeId, RequestVoteRequest } from '../../core/types.js';
import type { SnapshotChunk } from '../../transport/snapshot-assembler.js';
import {
  WireFormatError,
  base64DecodedLength,
  decodeAppendEntries,
  decodeAppendEntriesBinary,
  decodeInstallSnapshotChunk,
  decodeRequestVote,
  type AppendEntriesBody,
  type BinaryAppendEntriesBody,
  type WirePeer,
} from '../../transport/wire.js';
import type { RaftRpcLimits } from '../raft.constants.js';
import { AppendEntriesDto } from './append-entries.dto.js';
import { InstallSnapshotDto } from './install-snapshot.dto.js';
import { isWellTypedAppendEntries } from './append-entries.fast-check.js';
import { RequestVoteDto } from './request-vote.dto.js';
import { SetConfigurationDto } from './set-configuration.dto.js';
import { MAX_MEMBERS, isPlainObject } from './validators.js';

/** Deepest nesting a valid body has (body → entries → entry → config → addresses → url is 5). */
export const MAX_BODY_DEPTH = 8;

/** Names of Object.prototype's members (`constructor`, `toString`, `hasOwnProperty` …): never a field of a body. */
const OBJECT_PROTOTYPE_KEYS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** At most this many problems are listed in one message. */
const MAX_ISSUES = 20;

/** A request body that breaks the wire format; `issues` lists each broken constraint with its path. */
export class InvalidRpcBodyError extends RaftError {
  constructor(
    readonly rpc: string,
    readonly issues: readonly string[],
  ) {
    const listed = issues.slice(0, MAX_ISSUES);
    const more = issues.length > listed.length ? `; and ${issues.length - listed.length} more` : '';
    super(`invalid ${rpc} body: ${listed.join('; ')}${more}`);
  }
}

const VALIDATOR_OPTIONS = {
  whitelist: true,
  forbidNonWhitelisted: true,
  forbidUnknownValues: true,
  validationError: { target: false, value: false },
} as const;

/**
 * Validates an AppendEntries body received by node `to` and converts it.
 * @throws InvalidRpcBodyError
 */
export function parseAppendEntries(body: unknown, limits: Pick<RaftRpcLimits, 'maxEntriesPerAppend' | 'maxCommandBytes'>, to: NodeId): AppendEntriesRequest {
  const rpc = 'AppendEntries';
  const plain = checkStructure(rpc, body);
  // Go encodes an empty slice as null: a heartbeat's entries, an empty command.
  if (plain.entries === null) plain.entries = [];
  if (Array.isArray(plain.entries)) {
    if (plain.entries.length > limits.maxEntriesPerAppend) {
      throw new InvalidRpcBodyError(rpc, [`entries holds ${plain.entries.length} entries, more than maxEntriesPerAppend (${limits.maxEntriesPerAppend})`]);
    }
    plain.entries = plain.entries.map((e: unknown) => (isPlainObject(e) && e.command === null ? { ...e, command: '' } : e));
  }
  const dto = validAppendEntries(plain);
  checkAppendEntries(dto, limits, to, (i) => base64DecodedLength(dto.entries[i]!.command));
  return decodeAppendEntries(dto, to);
}

/**
 * Validates a binary AppendEntries body (`encodeAppendEntriesBinary`) received by node `to` and
 * converts it: the same rules as the JSON body (its configurations are checked by the same DTOs), and
 * the commands are views of `bytes`, never copied.
 * @throws InvalidRpcBodyError
 */
export function parseAppendEntriesBinary(bytes: Uint8Array, limits: Pick<RaftRpcLimits, 'maxEntriesPerAppend' | 'maxCommandBytes'>, to: NodeId): AppendEntriesRequest {
  const rpc = 'AppendEntries';
  let binary: BinaryAppendEntriesBody;
  try {
    binary = decodeAppendEntriesBinary(bytes, limits.maxEntriesPerAppend);
  } catch (error) {
    if (error instanceof WireFormatError) throw new InvalidRpcBodyError(rpc, [error.message]);
    throw error;
  }
  // The JSON body's shape, commands left out (their bytes are checked and kept aside), so that one set
  // of rules (and of DTOs, for the configurations) covers both encodings.
  const plain = checkStructure(rpc, {
    term: binary.term,
    leader_id: binary.leader_id,
    prev_log_index: binary.prev_log_index,
    prev_log_term: binary.prev_log_term,
    commit_index: binary.commit_index,
    entries: binary.entries.map((e, i) => ({
      index: binary.prev_log_index + 1 + i,
      term: e.term,
      command: '',
      ...(e.type !== 'command' ? { type: e.type } : {}),
      ...(e.config !== undefined ? { config: e.config } : {}),
    })),
  });
  const dto = validAppendEntries(plain);
  checkAppendEntries(dto, limits, to, (i) => binary.entries[i]!.command.byteLength);
  const request = decodeAppendEntries(dto, to);
  return { ...request, entries: request.entries.map((e, i) => ({ ...e, command: binary.entries[i]!.command })) };
}

/** The common case, a valid body, skips class-transformer/class-validator (see append-entries.fast-check.ts). */
function validAppendEntries(plain: Record<string, unknown>): AppendEntriesBody {
  return isWellTypedAppendEntries(plain) ? plain : toValidDto('AppendEntries', AppendEntriesDto, plain);
}

/** Raft's own rules on a well-typed AppendEntries body; `commandBytes(i)`: the size of entry i's command. */
function checkAppendEntries(dto: AppendEntriesBody, limits: Pick<RaftRpcLimits, 'maxCommandBytes'>, to: NodeId, commandBytes: (i: number) => number): void {
  const issues: string[] = [];
  if (dto.term < 1) issues.push('term must be at least 1 (the term of a leader)');
  if (dto.leader_id === to) issues.push(`leader_id must not be this node's own id (${to})`);
  if (dto.prev_log_term > dto.term) issues.push(`prev_log_term must not exceed term (${dto.term})`);
  if (dto.prev_log_index === 0 && dto.prev_log_term !== 0) issues.push('prev_log_term must be 0 when prev_log_index is 0');
  if (dto.prev_log_index > 0 && dto.prev_log_term === 0) issues.push('prev_log_term must be at least 1 when prev_log_index is above 0');
  dto.entries.forEach((entry, i) => {
    const at = `entries.${i}`;
    const expected = dto.prev_log_index + 1 + i;
    if (entry.index !== expected) issues.push(`${at}.index must be ${expected} (entries are consecutive, starting at prev_log_index + 1)`);
    if (entry.term < 1) issues.push(`${at}.term must be at least 1`);
    if (entry.term > dto.term) issues.push(`${at}.term must not exceed term (${dto.term})`);
    if (i === 0 && entry.term < dto.prev_log_term) issues.push(`${at}.term must not be below prev_log_term (${dto.prev_log_term}): terms never decrease along a log`);
    if (i > 0 && entry.term < dto.entries[i - 1]!.term) issues.push(`${at}.term must not be below entries.${i - 1}.term: terms never decrease along a log`);
    const type = entry.type ?? 'command';
    if (type === 'config' && entry.config === undefined) issues.push(`${at}.config is required on an entry of type "config"`);
    if (type !== 'config' && entry.config !== undefined) issues.push(`${at}.config is only allowed on an entry of type "config"`);
    const size = commandBytes(i);
    if (type !== 'command' && size !== 0) issues.push(`${at}.command must be empty on an entry of type "${type}"`);
    if (size > limits.maxCommandBytes) issues.push(`${at}.command decodes to ${size} bytes, more than maxCommandBytes (${limits.maxCommandBytes})`);
  });
  if (issues.length > 0) throw new InvalidRpcBodyError('AppendEntries', issues);
}

/**
 * Validates a RequestVote body received by node `to` and converts it.
 * @throws InvalidRpcBodyError
 */
export function parseRequestVote(body: unknown, to: NodeId): RequestVoteRequest {
  const rpc = 'RequestVote';
  const dto = toValidDto(rpc, RequestVoteDto, checkStructure(rpc, body));
  const issues: string[] = [];
  if (dto.term < 1) issues.push('term must be at least 1 (the term of a candidate)');
  if (dto.candidate_id === to) issues.push(`candidate_id must not be this node's own id (${to})`);
  if (dto.last_log_term > dto.term) issues.push(`last_log_term must not exceed term (${dto.term})`);
  if (dto.last_log_index === 0 && dto.last_log_term !== 0) issues.push('last_log_term must be 0 when last_log_index is 0');
  if (dto.last_log_index > 0 && dto.last_log_term === 0) issues.push('last_log_term must be at least 1 when last_log_index is above 0');
  if (issues.length > 0) throw new InvalidRpcBodyError(rpc, issues);
  return decodeRequestVote(dto, to);
}

/**
 * Validates one chunk of an InstallSnapshot received by node `to` and converts it (the snapshot's size
 * against `maxSnapshotBytes` is the assembler's to check: 413, not 400).
 * @throws InvalidRpcBodyError
 */
export function parseInstallSnapshot(body: unknown, to: NodeId): SnapshotChunk {
  const rpc = 'InstallSnapshot';
  const dto = toValidDto(rpc, InstallSnapshotDto, checkStructure(rpc, body));
  const issues: string[] = [];
  if (dto.term < 1) issues.push('term must be at least 1 (the term of a leader)');
  if (dto.leader_id === to) issues.push(`leader_id must not be this node's own id (${to})`);
  if (dto.last_included_index < 1) issues.push('last_included_index must be at least 1 (a snapshot covers at least one entry)');
  if (dto.last_included_term < 1) issues.push('last_included_term must be at least 1');
  if (dto.last_included_term > dto.term) issues.push(`last_included_term must not exceed term (${dto.term})`);
  const length = base64DecodedLength(dto.data);
  if (dto.offset > dto.size) issues.push(`offset must not exceed size (${dto.size})`);
  else if (dto.offset + length > dto.size) issues.push(`data holds ${length} bytes, more than the ${dto.size - dto.offset} left after offset ${dto.offset} (size ${dto.size})`);
  if (dto.done && dto.offset + length !== dto.size) issues.push(`the last chunk (done) must end at size (${dto.size}), but it ends at ${dto.offset + length}`);
  if (dto.done && dto.digest === undefined) issues.push('digest is required on the last chunk (done)');
  if (!dto.done && dto.digest !== undefined) issues.push('digest is only allowed on the last chunk (done)');
  if (issues.length > 0) throw new InvalidRpcBodyError(rpc, issues);
  return decodeInstallSnapshotChunk(dto, to);
}

/**
 * Validates a SetConfiguration body: 1 to {@link MAX_MEMBERS} members, each with an id, a URL or both,
 * no id twice. Members without an id are returned as they are (the caller asks their URL for it).
 * The voters only; {@link parseSetConfigurationBody} gives the learners too.
 * @throws InvalidRpcBodyError
 */
export function parseSetConfiguration(body: unknown): WirePeer[] {
  return parseSetConfigurationBody(body).peers;
}

/**
 * Validates a SetConfiguration body: `peers` (the voters) as {@link parseSetConfiguration} says, and
 * `learners` when present (0 to {@link MAX_MEMBERS}, the same rules, and no node both a voter and a learner).
 * @throws InvalidRpcBodyError
 */
export function parseSetConfigurationBody(body: unknown): { peers: WirePeer[]; learners?: WirePeer[] } {
  const rpc = 'SetConfiguration';
  const plain = checkStructure(rpc, body);
  for (const key of ['peers', 'learners'] as const) {
    const list = plain[key];
    if (Array.isArray(list) && list.length > MAX_MEMBERS) throw new InvalidRpcBodyError(rpc, [`${key} holds ${list.length} members, more than ${MAX_MEMBERS}`]);
  }
  const dto = toValidDto(rpc, SetConfigurationDto, plain);
  const issues: string[] = [];
  if (dto.peers.length === 0) issues.push('peers must name at least one member');
  const seen = new Map<NodeId, string>();
  const check = (key: 'peers' | 'learners', list: readonly WirePeer[]) =>
    list.forEach((peer, i) => {
      if (peer.id === undefined && peer.url === undefined) issues.push(`${key}.${i} needs an id, a url, or both`);
      if (peer.id !== undefined) {
        const first = seen.get(peer.id);
        if (first !== undefined) issues.push(`${key}.${i}.id names node ${peer.id} again (as ${first}.id does)`);
        else seen.set(peer.id, `${key}.${i}`);
      }
    });
  check('peers', dto.peers);
  if (dto.learners) check('learners', dto.learners);
  if (issues.length > 0) throw new InvalidRpcBodyError(rpc, issues);
  const plainPeer = (p: WirePeer): WirePeer => ({ ...(p.id !== undefined ? { id: p.id } : {}), ...(p.url !== undefined ? { url: p.url } : {}) });
  return { peers: dto.peers.map(plainPeer), ...(dto.learners ? { learners: dto.learners.map(plainPeer) } : {}) };
}

/**
 * The body must be a JSON object, nested at most {@link MAX_BODY_DEPTH} deep, without a `__proto__`
 * key (class-transformer would assign it, changing the DTO's prototype instead of adding a field that
 * the whitelist refuses) or another key named like a member of Object.prototype (the whitelist misses
 * those). Checked iteratively before any recursive code sees the value.
 * Returns a shallow copy that the caller may adjust.
 */
function checkStructure(rpc: string, body: unknown): Record<string, unknown> {
  if (!isPlainObject(body)) throw new InvalidRpcBodyError(rpc, [`the body must be a JSON object, not ${describe(body)}`]);
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value: body, depth: 1, path: '' }];
  while (stack.length > 0) {
    const { value, depth, path } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_BODY_DEPTH) throw new InvalidRpcBodyError(rpc, [`the body is nested more than ${MAX_BODY_DEPTH} levels deep (at ${path})`]);
    for (const key in value) {
      // class-validator's whitelist does not see keys named like Object.prototype's members (it looks
      // them up in a plain object), so `constructor` or `toString` would slip through as unknown fields.
      if (key === '__proto__' || (!Array.isArray(value) && OBJECT_PROTOTYPE_KEYS.has(key))) {
        throw new InvalidRpcBodyError(rpc, [`property ${path ? `${path}.` : ''}${key} is not allowed`]);
      }
      const child = (value as Record<string, unknown>)[key];
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: depth + 1, path: path ? `${path}.${key}` : key });
    }
  }
  return { ...body };
}

function toValidDto<T extends object>(rpc: string, cls: new () => T, plain: Record<string, unknown>): T {
  const dto = plainToInstance(cls, plain);
  const errors = validateSync(dto, VALIDATOR_OPTIONS);
  if (errors.length > 0) {
    const issues: string[] = [];
    collectIssues(errors, '', issues);
    throw new InvalidRpcBodyError(rpc, issues);
  }
  return dto;
}

function collectIssues(errors: readonly ValidationError[], prefix: string, out: string[]): void {
  for (const error of errors) {
    const path = prefix ? `${prefix}.${error.property}` : error.property;
    const constraints = Object.entries(error.constraints ?? {});
    // "nested property … must be either object or array" repeats what isObject / eachIsObject say.
    const own = constraints.length > 1 ? constraints.filter(([name]) => name !== 'nestedValidation') : constraints;
    for (const [, message] of own) out.push(withPath(message, error.property, path));
    if (error.children?.length) collectIssues(error.children, path, out);
  }
}

/** Replaces the property name that starts a message by its full path. */
function withPath(message: string, property: string, path: string): string {
  if (message.startsWith(`${property} `) || message.startsWith(`${property}.`)) return path + message.slice(property.length);
  if (message.startsWith(`property ${property} `)) return `property ${path}${message.slice(`property ${property}`.length)}`;
  return `${path}: ${message}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
