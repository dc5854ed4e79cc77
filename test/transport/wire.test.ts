import { SessionExpiredError, StorageFailureError } from '../../lib/core/errors.js';
import { describe, expect, it } from 'vitest';
import { ConfigurationChangeError, NotLeaderError } from '../../lib/core/errors.js';
import type { AppendEntriesRequest, AppendEntriesResponse, Entry, InstallSnapshotRequest, RequestVoteRequest, RequestVoteResponse } from '../../lib/core/types.js';
import {
  CommandAbortedError,
  CommandTimeoutError,
  ConfigurationChangeFailedError,
  LeadershipLostError,
  NodeStoppedError,
  RaftOptionsError,
} from '../../lib/node/errors.js';
import { SnapshotTransferError } from '../../lib/transport/snapshot-assembler.js';
import {
  RPC_PATHS,
  RaftHttpError,
  WireFormatError,
  decodeAppendEntriesBinary,
  encodeAppendEntriesBinary,
  decodeAnswer,
  decodeAppendEntries,
  decodeAppendEntriesResult,
  decodeBase64,
  decodeInstallSnapshotChunk,
  decodeInstallSnapshotResult,
  decodeRequestVote,
  decodeRequestVoteResult,
  encodeAnswer,
  encodeAppendEntries,
  encodeAppendEntriesResult,
  encodeBase64,
  encodeInstallSnapshotChunk,
  encodeInstallSnapshotResult,
  encodeRequestVote,
  encodeRequestVoteResult,
  encodeSetConfiguration,
  errorFromWire,
  errorToWire,
  isJsonContentType,
  isStrictBase64,
  normalizePathPrefix,
  type AppendEntriesBody,
  type InstallSnapshotBody,
  type RequestVoteBody,
} from '../../lib/transport/wire.js';

const bytes = (...values: number[]) => new Uint8Array(values);
/** Through JSON text, as a wire would. */
const overWire = <T>(value: T): unknown => JSON.parse(JSON.stringify(value));

const allBytes = new Uint8Array(256).map((_, i) => i);
const entries: Entry[] = [
  { index: 5, term: 2, type: 'command', command: allBytes },
  { index: 6, term: 3, type: 'noop', command: new Uint8Array(0) },
  { index: 7, term: 3, type: 'config', command: new Uint8Array(0), config: { voters: [1, 2, 4], outgoing: [1, 2, 3], addresses: { 1: 'http://a:1', 4: 'http://d:4' } } },
  { index: 8, term: 3, type: 'config', command: new Uint8Array(0), config: { voters: [1, 2, 4], learners: [5, 6] } },
  { index: 9, term: 3, type: 'command', command: bytes(0xff, 0xfe, 0x00) },
];
const append: AppendEntriesRequest = { type: 'AppendEntries', from: 1, to: 2, term: 3, prevLogIndex: 4, prevLogTerm: 2, entries, leaderCommit: 4 };

describe('AppendEntries', () => {
  it('round-trips through JSON with binary commands, noop and config entries', () => {
    const body = overWire(encodeAppendEntries(append)) as AppendEntriesBody;
    expect(decodeAppendEntries(body, 2)).toEqual(append);
  });

  it('uses the Go model field names and omits the default type', () => {
    const body = encodeAppendEntries({ ...append, entries: [entries[0]!, entries[1]!] });
    expect(Object.keys(body)).toEqual(['term', 'leader_id', 'prev_log_index', 'prev_log_term', 'entries', 'commit_index']);
    expect(body.entries[0]).toEqual({ index: 5, term: 2, command: Buffer.from(allBytes).toString('base64') });
    expect(body.entries[1]).toEqual({ index: 6, term: 3, command: '', type: 'noop' });
  });

  it('understands a Go-style body: entries without type are commands; the receiver is the caller', () => {
    const go = { term: 1, leader_id: 7, prev_log_index: 0, prev_log_term: 0, entries: [{ index: 1, term: 1, command: 'aGk=' }], commit_index: 0 };
    expect(decodeAppendEntries(go, 3)).toEqual({
      type: 'AppendEntries', from: 7, to: 3, term: 1, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0,
      entries: [{ index: 1, term: 1, type: 'command', command: new TextEncoder().encode('hi') }],
    });
  });

  it('sorts a configuration\'s ids, as Configuration requires', () => {
    const body: AppendEntriesBody = { term: 3, leader_id: 1, prev_log_index: 0, prev_log_term: 0, commit_index: 0, entries: [{ index: 1, term: 3, command: '', type: 'config', config: { voters: [3, 1, 2], outgoing: [2, 1] } }] };
    expect(decodeAppendEntries(body, 2).entries[0]!.config).toEqual({ voters: [1, 2, 3], outgoing: [1, 2] });
  });

  it('round-trips a response; from is the peer called and to is the sender', () => {
    const response: AppendEntriesResponse = { type: 'AppendEntriesResponse', from: 2, to: 1, term: 3, success: false, matchIndex: 0, rejectedIndex: 4, conflictTerm: 2, conflictIndex: 3 };
    expect(decodeAppendEntriesResult(overWire(encodeAppendEntriesResult(response)), append, 2)).toEqual(response);
  });

  it('derives what a Go-era {term, success} answer leaves out from the request', () => {
    expect(decodeAppendEntriesResult({ term: 3, success: true }, append, 2)).toEqual({
      type: 'AppendEntriesResponse', from: 2, to: 1, term: 3, success: true, matchIndex: 9, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0,
    });
    // A rejection without hints steps back one entry (§5.3): the leader's next becomes prevLogIndex.
    expect(decodeAppendEntriesResult({ term: 3, success: false }, append, 2)).toEqual({
      type: 'AppendEntriesResponse', from: 2, to: 1, term: 3, success: false, matchIndex: 0, rejectedIndex: 4, conflictTerm: 0, conflictIndex: 4,
    });
  });

  it('refuses malformed answers', () => {
    for (const bad of [null, [], 'ok', {}, { term: -1, success: true }, { term: 3, success: 'yes' }, { term: 3.5, success: true }, { term: 3, success: true, match_index: '9' }]) {
      expect(() => decodeAppendEntriesResult(bad, append, 2), JSON.stringify(bad)).toThrow(WireFormatError);
    }
  });
});

describe('RequestVote', () => {
  const vote: RequestVoteRequest = { type: 'RequestVote', from: 3, to: 1, term: 8, lastLogIndex: 40, lastLogTerm: 7, preVote: true, transfer: true };

  it('round-trips, pre-vote and transfer included', () => {
    expect(decodeRequestVote(overWire(encodeRequestVote(vote)) as RequestVoteBody, 1)).toEqual(vote);
    const plain: RequestVoteRequest = { ...vote, preVote: false, transfer: undefined };
    delete (plain as { transfer?: boolean }).transfer;
    expect(encodeRequestVote(plain)).toEqual({ term: 8, candidate_id: 3, last_log_index: 40, last_log_term: 7 });
    expect(decodeRequestVote(overWire(encodeRequestVote(plain)) as RequestVoteBody, 1)).toEqual(plain);
  });

  it('round-trips a response and understands the Go-era {term, vote_granted}', () => {
    const response: RequestVoteResponse = { type: 'RequestVoteResponse', from: 1, to: 3, term: 8, voteGranted: true, preVote: true };
    expect(decodeRequestVoteResult(overWire(encodeRequestVoteResult(response)), vote, 1)).toEqual(response);
    expect(decodeRequestVoteResult({ term: 8, vote_granted: false }, { ...vote, preVote: false }, 1)).toEqual({ ...response, voteGranted: false, preVote: false });
  });

  it('refuses an answer for the other kind of vote, or malformed', () => {
    expect(() => decodeRequestVoteResult({ term: 8, vote_granted: true, pre_vote: false }, vote, 1)).toThrow(WireFormatError);
    expect(() => decodeRequestVoteResult({ term: 8, vote_granted: 1 }, vote, 1)).toThrow(WireFormatError);
  });
});

describe('InstallSnapshot', () => {
  const snapshot: InstallSnapshotRequest = {
    type: 'InstallSnapshot',
    from: 1,
    to: 2,
    term: 7,
    snapshot: { index: 120, term: 6, configuration: { voters: [1, 2, 3], outgoing: [1, 2], addresses: { '1': 'http://127.0.0.1:1', '3': 'http://127.0.0.1:3' } } },
  };
  const data = bytes(0, 1, 2, 250, 251, 252, 253);

  it('is served at {prefix}/installsnapshot', () => {
    expect(RPC_PATHS.installSnapshot).toBe('installsnapshot');
  });

  it('encodes a chunk with the snapshot\'s metadata, in snake_case, and decodes it back for the receiver', () => {
    const body = encodeInstallSnapshotChunk(snapshot, { size: 7, offset: 3, data: data.subarray(3, 7), done: true, digest: 'ab'.repeat(32) });
    expect(overWire(body)).toEqual({
      term: 7,
      leader_id: 1,
      last_included_index: 120,
      last_included_term: 6,
      configuration: { voters: [1, 2, 3], outgoing: [1, 2], addresses: { '1': 'http://127.0.0.1:1', '3': 'http://127.0.0.1:3' } },
      size: 7,
      offset: 3,
      data: '+vv8/Q==',
      done: true,
      digest: 'ab'.repeat(32),
    });
    const chunk = decodeInstallSnapshotChunk(overWire(body) as InstallSnapshotBody, 2);
    expect(chunk).toEqual({ request: snapshot, size: 7, offset: 3, data: bytes(250, 251, 252, 253), done: true, digest: 'ab'.repeat(32) });
    // A middle chunk carries no digest; an empty one (a probe) has empty data.
    const probe = encodeInstallSnapshotChunk(snapshot, { size: 7, offset: 0, data: new Uint8Array(0), done: false });
    expect(probe).toMatchObject({ data: '', done: false, offset: 0 });
    expect('digest' in probe).toBe(false);
    // The receiver is the caller's id; ids of a configuration are sorted.
    const unsorted = decodeInstallSnapshotChunk({ ...(overWire(probe) as InstallSnapshotBody), configuration: { voters: [3, 1, 2] } }, 9);
    expect(unsorted.request).toMatchObject({ to: 9, snapshot: { configuration: { voters: [1, 2, 3] } } });
  });

  it('answers {term, next_offset} while incomplete and {term, match_index} once installed, and decodes both', () => {
    const progress = encodeInstallSnapshotResult({ done: false, term: 7, nextOffset: 3 });
    expect(progress).toEqual({ term: 7, next_offset: 3 });
    expect(decodeInstallSnapshotResult(overWire(progress), snapshot, 2, 7)).toEqual({ done: false, term: 7, nextOffset: 3 });
    const installed = encodeInstallSnapshotResult({ done: true, response: { type: 'InstallSnapshotResponse', from: 2, to: 1, term: 8, matchIndex: 120 } });
    expect(installed).toEqual({ term: 8, match_index: 120 });
    expect(decodeInstallSnapshotResult(overWire(installed), snapshot, 2, 7)).toEqual({
      done: true,
      response: { type: 'InstallSnapshotResponse', from: 2, to: 1, term: 8, matchIndex: 120 },
    });
  });

  it('refuses malformed answers', () => {
    for (const body of [null, [], {}, { term: -1, next_offset: 0 }, { term: 1 }, { term: 1, next_offset: 1.5 }, { term: 1, next_offset: 8 }, { term: 1, match_index: '3' }]) {
      expect(() => decodeInstallSnapshotResult(body, snapshot, 2, 7), JSON.stringify(body)).toThrow(WireFormatError);
    }
  });
});

describe('base64', () => {
  it('encodes the standard padded alphabet and decodes it back', () => {
    for (const value of [bytes(), bytes(0), bytes(0, 1), bytes(0, 1, 2), allBytes]) {
      const text = encodeBase64(value);
      expect(isStrictBase64(text)).toBe(true);
      expect(decodeBase64(text)).toEqual(value);
    }
    expect(encodeBase64(bytes(0xfb, 0xff))).toBe('+/8=');
  });

  it('rejects what Node would silently accept: bad characters, missing or extra padding, url-safe, whitespace, non-canonical bits', () => {
    for (const text of ['aGk', 'aGk==', 'a===', '=', 'aG=k', '-_8=', 'aGk=\n', ' aGk=', 'aGk=aGk=', 'QR==', 'QUJ=', 'ab$d', 'ÿÿÿÿ']) {
      expect(isStrictBase64(text), text).toBe(false);
      expect(() => decodeBase64(text)).toThrow(WireFormatError);
    }
  });

  it('decodes into a fresh buffer, not a slice of Node\'s pool', () => {
    const decoded = decodeBase64('aGk=');
    expect(decoded.byteOffset).toBe(0);
    expect(decoded.buffer.byteLength).toBe(2);
  });
});

describe('command answers', () => {
  it('carries bytes as {$bytes}, anywhere in the value', () => {
    expect(encodeAnswer(bytes(1, 2, 3))).toEqual({ $bytes: 'AQID' });
    expect(encodeAnswer(Buffer.from('hi'))).toEqual({ $bytes: 'aGk=' });
    const value = { ok: true, n: 3, list: [bytes(255), 'x', null], nested: { data: bytes() } };
    expect(decodeAnswer(overWire(encodeAnswer(value)))).toEqual(value);
  });

  it('follows JSON for the rest: undefined dropped, NaN → null, toJSON honoured', () => {
    expect(encodeAnswer(undefined)).toBeUndefined();
    expect(encodeAnswer({ a: undefined, b: NaN, c: [undefined], d: new Date(0) })).toEqual({ b: null, c: [null], d: '1970-01-01T00:00:00.000Z' });
    expect(() => encodeAnswer(10n)).toThrow(TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeAnswer(cyclic)).toThrow(TypeError);
  });

  it('escapes objects that look like its markers', () => {
    for (const value of [{ $bytes: 'AQID' }, { $escape: 1 }, { $escape: { $bytes: 'x' } }, [{ $bytes: 'QQ==' }]]) {
      expect(decodeAnswer(overWire(encodeAnswer(value)))).toEqual(value);
    }
  });

  it('keeps a "__proto__" key an ordinary key', () => {
    const decoded = decodeAnswer(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a malformed $bytes', () => {
    expect(() => decodeAnswer({ $bytes: 'a' })).toThrow(WireFormatError);
    expect(() => decodeAnswer({ $bytes: 5 })).toThrow(WireFormatError);
  });
});

describe('errors', () => {
  const roundTrip = (error: Error) => {
    const { status, body } = errorToWire(error);
    return { status, error: errorFromWire(status, overWire(body)) };
  };

  it('maps each typed error to a status and back', () => {
    const notLeader = roundTrip(new NotLeaderError(3, 'http://127.0.0.1:3003'));
    expect(notLeader.status).toBe(421);
    expect(notLeader.error).toBeInstanceOf(NotLeaderError);
    expect(notLeader.error).toMatchObject({ leaderId: 3, leaderUrl: 'http://127.0.0.1:3003' });
    expect(roundTrip(new NotLeaderError(0)).error).toMatchObject({ leaderId: 0, leaderUrl: undefined });

    const timeout = roundTrip(new CommandTimeoutError(1500));
    expect(timeout.status).toBe(504);
    expect(timeout.error).toBeInstanceOf(CommandTimeoutError);
    expect(timeout.error).toMatchObject({ timeoutMs: 1500 });

    const lost = roundTrip(new LeadershipLostError());
    expect(lost.status).toBe(503);
    expect(lost.error).toBeInstanceOf(LeadershipLostError);

    expect(roundTrip(new NodeStoppedError()).error).toBeInstanceOf(NodeStoppedError);
    expect(roundTrip(new CommandAbortedError()).error).toBeInstanceOf(CommandAbortedError);

    const refused = roundTrip(new ConfigurationChangeError('in-progress', 'another change is under way'));
    expect(refused.status).toBe(409);
    expect(refused.error).toBeInstanceOf(ConfigurationChangeError);
    expect(refused.error).toMatchObject({ reason: 'in-progress', message: 'configuration change refused (in-progress): another change is under way' });

    const failed = roundTrip(new ConfigurationChangeFailedError('node 4 did not catch up'));
    expect(failed.status).toBe(409);
    expect(failed.error).toMatchObject({ reason: 'node 4 did not catch up' });

    const invalid = roundTrip(new RaftOptionsError('command', 'is 2000000 bytes, above maxCommandBytes (1048576)'));
    expect(invalid.status).toBe(400);
    expect(invalid.error).toBeInstanceOf(RaftOptionsError);
    expect(invalid.error.message).toBe('invalid Raft option "command": is 2000000 bytes, above maxCommandBytes (1048576)');

    for (const [code, status] of [['snapshot_stale', 409], ['snapshot_busy', 409], ['snapshot_too_large', 413], ['snapshot_digest_mismatch', 409], ['snapshot_unsupported', 501]] as const) {
      const snapshot = roundTrip(new SnapshotTransferError(status, code, `refused: ${code}`));
      expect(snapshot.status, code).toBe(status);
      expect(snapshot.error, code).toBeInstanceOf(SnapshotTransferError);
      expect(snapshot.error, code).toMatchObject({ status, code, message: `refused: ${code}` });
    }

    const expired = roundTrip(new SessionExpiredError('0123456789abcdef0123456789abcdef'));
    expect(expired.status).toBe(409);
    expect(expired.error).toBeInstanceOf(SessionExpiredError);
    expect(expired.error).toMatchObject({ clientId: '0123456789abcdef0123456789abcdef' });

    const storage = roundTrip(new StorageFailureError(new Error('disk full')));
    expect(storage.status).toBe(503);
    expect(storage.error).toBeInstanceOf(StorageFailureError);
    expect(storage.error.message).toBe('storage failed, the node stopped: disk full');

    const internal = roundTrip(new Error('boom'));
    expect(internal.status).toBe(500);
    expect(internal.error).toBeInstanceOf(RaftHttpError);
    expect(internal.error).toMatchObject({ status: 500, code: 'internal' });
  });

  it('understands a bare 421 or 504 (no code), and anything else as RaftHttpError', () => {
    expect(errorFromWire(421, { leader_id: 2 })).toMatchObject({ leaderId: 2 });
    expect(errorFromWire(504, 'gateway timeout')).toBeInstanceOf(CommandTimeoutError);
    expect(errorFromWire(404, { message: 'Cannot POST /raft/x' })).toMatchObject({ status: 404, message: 'HTTP 404: Cannot POST /raft/x' });
  });
});

describe('helpers', () => {
  it('encodes a membership change with the urls it knows', () => {
    expect(encodeSetConfiguration([{ id: 1, url: 'http://a' }, { id: 2 }])).toEqual({ peers: [{ id: 1, url: 'http://a' }, { id: 2 }] });
  });

  it('normalizes path prefixes', () => {
    expect(normalizePathPrefix('/raft')).toBe('/raft');
    expect(normalizePathPrefix('raft/')).toBe('/raft');
    expect(normalizePathPrefix('//a/b//')).toBe('/a/b');
    expect(normalizePathPrefix('/')).toBe('');
  });

  it('recognises JSON content types', () => {
    expect(isJsonContentType('application/json')).toBe(true);
    expect(isJsonContentType('Application/JSON; charset=utf-8')).toBe(true);
    expect(isJsonContentType('application/vnd.raft+json')).toBe(true);
    expect(isJsonContentType('text/plain')).toBe(false);
    expect(isJsonContentType('application/octet-stream')).toBe(false);
    expect(isJsonContentType(undefined)).toBe(false);
  });
});

describe('binary AppendEntries', () => {
  const request: AppendEntriesRequest = {
    type: 'AppendEntries', from: 7, to: 2, term: 2 ** 40 + 3, prevLogIndex: 2 ** 45, prevLogTerm: 2 ** 40, leaderCommit: 2 ** 45 - 1,
    entries: [
      { index: 2 ** 45 + 1, term: 2 ** 40 + 3, type: 'command', command: new Uint8Array([0, 255, 9]) },
      { index: 2 ** 45 + 2, term: 2 ** 40 + 3, type: 'config', command: new Uint8Array(0), config: { voters: [1, 7], learners: [9], addresses: { 9: 'http://127.0.0.9:4009' } } },
    ],
  };

  it('round-trips terms and indexes above 2^32, commands as bytes and configurations as their JSON', () => {
    const decoded = decodeAppendEntriesBinary(encodeAppendEntriesBinary(request), 10);
    expect(decoded).toEqual({
      term: request.term, leader_id: 7, prev_log_index: request.prevLogIndex, prev_log_term: request.prevLogTerm, commit_index: request.leaderCommit,
      entries: [
        { term: request.term, type: 'command', command: new Uint8Array([0, 255, 9]) },
        { term: request.term, type: 'config', command: new Uint8Array(0), config: { voters: [1, 7], learners: [9], addresses: { 9: 'http://127.0.0.9:4009' } } },
      ],
    });
  });

  it('refuses to encode entries that are not consecutive after prevLogIndex (the body leaves indexes out)', () => {
    const gap = { ...request, entries: [request.entries[0]!, { ...request.entries[1]!, index: 2 ** 45 + 5 }] };
    expect(() => encodeAppendEntriesBinary(gap)).toThrow(WireFormatError);
  });
});
