import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigurationChangeError, NotLeaderError } from '../../lib/core/errors.js';
import type { AppendEntriesRequest, AppendEntriesResponse, RequestVoteRequest, RequestVoteResponse } from '../../lib/core/types.js';
import { AppendEntriesDto } from '../../lib/nest/dto/append-entries.dto.js';
import { isWellTypedAppendEntries } from '../../lib/nest/dto/append-entries.fast-check.js';
import { createRaftRpcController } from '../../lib/nest/raft-rpc.controller.js';
import { DEFAULT_RPC_LIMITS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, type RaftRpcLimits } from '../../lib/nest/raft.constants.js';
import { CommandTimeoutError, LeadershipLostError, NodeStoppedError } from '../../lib/node/errors.js';
import { HttpTransport } from '../../lib/transport/http-transport.js';
import type { RaftMember, RaftRpcHandler, RpcOptions } from '../../lib/transport/transport.js';
import { RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE, encodeAppendEntries, encodeAppendEntriesBinary } from '../../lib/transport/wire.js';

const HOST = '127.0.0.3';
const SELF = 2;

type Method = 'appendEntries' | 'requestVote' | 'command' | 'setConfiguration';

/** Stands in for the node: records what reaches it; `behave` replaces an answer. */
class FakeHandler implements RaftRpcHandler {
  readonly id = SELF;
  readonly calls: Array<{ method: Method; args: unknown[] }> = [];
  behave: Partial<Record<Method, (...args: never[]) => Promise<unknown>>> = {};

  async appendEntries(request: AppendEntriesRequest): Promise<AppendEntriesResponse> {
    this.calls.push({ method: 'appendEntries', args: [request] });
    if (this.behave.appendEntries) return (await this.behave.appendEntries()) as AppendEntriesResponse;
    const matchIndex = request.prevLogIndex + request.entries.length;
    return { type: 'AppendEntriesResponse', from: SELF, to: request.from, term: request.term, success: true, matchIndex, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 };
  }

  async requestVote(request: RequestVoteRequest): Promise<RequestVoteResponse> {
    this.calls.push({ method: 'requestVote', args: [request] });
    return { type: 'RequestVoteResponse', from: SELF, to: request.from, term: request.term, voteGranted: true, preVote: request.preVote };
  }

  async command(command: Uint8Array, options?: RpcOptions): Promise<unknown> {
    this.calls.push({ method: 'command', args: [command, options] });
    if (this.behave.command) return this.behave.command(command as never, options as never);
    return new Uint8Array([...command].reverse());
  }

  async setConfiguration(members: readonly RaftMember[], options?: RpcOptions, learners?: readonly RaftMember[]): Promise<void> {
    this.calls.push({ method: 'setConfiguration', args: learners ? [members, options, learners] : [members, options] });
    if (this.behave.setConfiguration) await this.behave.setConfiguration();
  }
}

interface App {
  readonly app: INestApplication;
  readonly url: string;
  readonly handler: FakeHandler;
}

const apps: INestApplication[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function startApp(options: { prefix?: string; limits?: Partial<RaftRpcLimits>; jsonLimit?: string } = {}): Promise<App> {
  const handler = new FakeHandler();
  const moduleRef = await Test.createTestingModule({
    controllers: [createRaftRpcController(options.prefix ?? '/raft')],
    providers: [
      { provide: RAFT_RPC_HANDLER, useValue: handler },
      { provide: RAFT_RPC_LIMITS, useValue: { ...DEFAULT_RPC_LIMITS, ...options.limits } },
    ],
  }).compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
  if (options.jsonLimit) app.useBodyParser('json', { limit: options.jsonLimit });
  apps.push(app);
  await app.listen(0, HOST);
  return { app, url: (await app.getUrl()).replace('[::1]', HOST), handler };
}

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

async function post(url: string, body: string | Uint8Array | object, contentType = 'application/vnd.raft+json', headers: Record<string, string> = {}): Promise<Answer> {
  const data = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body: data });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, contentType: res.headers.get('content-type'), text, json };
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

function validAppend(): Record<string, unknown> {
  return {
    term: 3,
    leader_id: 1,
    prev_log_index: 4,
    prev_log_term: 2,
    entries: [
      { index: 5, term: 3, command: b64('hello') },
      { index: 6, term: 3, command: '', type: 'noop' },
    ],
    commit_index: 4,
  };
}

/** A copy of the valid body with `change` applied. */
function appendWith(change: (body: Record<string, any>) => void): Record<string, unknown> {
  const body = validAppend();
  change(body);
  return body;
}

const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** [name, body (an object, or raw text), what the message must say]. Raw text is sent as is. */
const MALFORMED_APPEND: Array<[string, object | string, string]> = [
  ['not JSON', '{"term": 3,', 'not valid JSON'],
  ['an empty body', '', 'empty'],
  ['null', 'null', 'must be a JSON object'],
  ['an array', '[]', 'must be a JSON object'],
  ['a string term', appendWith((b) => (b.term = '3')), 'term must be a non-negative integer'],
  ['a boolean term', appendWith((b) => (b.term = true)), 'term must be a non-negative integer'],
  ['a negative index', appendWith((b) => (b.prev_log_index = -1)), 'prev_log_index must be a non-negative integer'],
  ['a float', appendWith((b) => (b.commit_index = 4.5)), 'commit_index must be a non-negative integer'],
  ['a float in an entry', appendWith((b) => (b.entries[0].term = 3.5)), 'entries.0.term must be a non-negative integer'],
  ['NaN', JSON.stringify(validAppend()).replace('"term":3', '"term":NaN'), 'not valid JSON'],
  ['Infinity (1e400)', JSON.stringify(validAppend()).replace('"commit_index":4', '"commit_index":1e400'), 'commit_index must be a non-negative integer'],
  ['2^53', JSON.stringify(validAppend()).replace('"term":3,', '"term":9007199254740992,'), `term must be a non-negative integer no greater than ${Number.MAX_SAFE_INTEGER}`],
  ['a huge index', JSON.stringify(validAppend()).replace('"prev_log_index":4', '"prev_log_index":1e300'), 'prev_log_index must be a non-negative integer no greater than'],
  ['a missing field', appendWith((b) => delete b.commit_index), 'commit_index is required'],
  ['missing entries', appendWith((b) => delete b.entries), 'entries is required'],
  ['a missing entry field', appendWith((b) => delete b.entries[0].command), 'entries.0.command is required'],
  ['an unknown field', appendWith((b) => (b.extra = 1)), 'property extra should not exist'],
  ['an unknown entry field', appendWith((b) => (b.entries[0].foo = 'bar')), 'property entries.0.foo should not exist'],
  ['a __proto__ key', JSON.stringify(validAppend()).replace('"term":3,', '"__proto__":{"x":1},"term":3,'), 'property __proto__ is not allowed'],
  ['invalid base64 characters', appendWith((b) => (b.entries[0].command = 'aGV$bG8=')), 'entries.0.command must be standard base64'],
  ['unpadded base64', appendWith((b) => (b.entries[0].command = 'aGVsbG8')), 'entries.0.command must be standard base64'],
  ['url-safe base64', appendWith((b) => (b.entries[0].command = '-_8=')), 'entries.0.command must be standard base64'],
  ['non-canonical base64', appendWith((b) => (b.entries[0].command = 'QR==')), 'entries.0.command must be standard base64'],
  ['a non-string command', appendWith((b) => (b.entries[0].command = [1, 2])), 'entries.0.command must be base64 text'],
  ['an oversized command', appendWith((b) => (b.entries[0].command = Buffer.alloc(65).toString('base64'))), 'entries.0.command decodes to 65 bytes, more than maxCommandBytes (64)'],
  [
    'too many entries',
    appendWith((b) => (b.entries = Array.from({ length: 9 }, (_, i) => ({ index: 5 + i, term: 3, command: '' })))),
    'entries holds 9 entries, more than maxEntriesPerAppend (8)',
  ],
  ['non-consecutive entries', appendWith((b) => (b.entries[1].index = 7)), 'entries.1.index must be 6 (entries are consecutive, starting at prev_log_index + 1)'],
  ['entries not after prev_log_index', appendWith((b) => ((b.entries[0].index = 6), (b.entries[1].index = 7))), 'entries.0.index must be 5'],
  ['entries not an array', appendWith((b) => (b.entries = { 0: {} })), 'entries must be an array of entries'],
  ['an entry that is not an object', appendWith((b) => (b.entries = [5])), 'entries.0 must be an object'],
  ['deep nesting', JSON.stringify(validAppend()).replace('"commit_index":4', `"commit_index":${deep(20_000)}`), 'nested more than 8 levels'],
  ['shallower deep nesting', appendWith((b) => (b.entries[0].config = { voters: [[[[[[[[1]]]]]]]] })), 'nested more than 8 levels'],
  ['an unknown entry type', appendWith((b) => (b.entries[0].type = 'snapshot')), 'entries.0.type must be one of "command", "noop", "config"'],
  ['a null entry type', appendWith((b) => (b.entries[0].type = null)), 'entries.0.type must be one of'],
  ['a config entry without a config', appendWith((b) => (b.entries[1].type = 'config')), 'entries.1.config is required on an entry of type "config"'],
  ['a config on a command entry', appendWith((b) => (b.entries[0].config = { voters: [1] })), 'entries.0.config is only allowed on an entry of type "config"'],
  ['a config that is not an object', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: 'all' })), 'entries.1.config must be an object'],
  ['a config without voters', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [] } })), 'entries.1.config.voters must name at least one node'],
  ['a config naming a voter twice', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1, 1] } })), 'entries.1.config.voters must not name a node twice'],
  ['a config with a bad id', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1], outgoing: [0] } })), 'entries.1.config.outgoing must hold positive integers'],
  ['a config with an unknown field', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1], witnesses: [4] } })), 'property entries.1.config.witnesses should not exist'],
  ['a learner that is also a voter', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1, 4], learners: [4] } })), 'entries.1.config.learners must not name a voter (node 4 is one)'],
  ['an empty learner set', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1], learners: [] } })), 'entries.1.config.learners must name at least one node'],
  ['an address keyed by a non-id', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1], addresses: { x: 'http://a' } } })), 'entries.1.config.addresses has key "x"'],
  ['an address that is not a URL', appendWith((b) => Object.assign(b.entries[1], { type: 'config', config: { voters: [1], addresses: { 1: 'a:b' } } })), 'entries.1.config.addresses.1 must be an http or https URL'],
  ['a noop that carries a command', appendWith((b) => (b.entries[1].command = b64('x'))), 'entries.1.command must be empty on an entry of type "noop"'],
  ['term 0', appendWith((b) => Object.assign(b, { term: 0, prev_log_term: 0, prev_log_index: 0, entries: [] })), 'term must be at least 1'],
  ['leader_id 0', appendWith((b) => (b.leader_id = 0)), 'leader_id must be a positive integer'],
  ['leader_id of the receiver', appendWith((b) => (b.leader_id = SELF)), "leader_id must not be this node's own id (2)"],
  ['an entry from a later term', appendWith((b) => (b.entries[1].term = 4)), 'entries.1.term must not exceed term (3)'],
  ['decreasing terms', appendWith((b) => (b.entries[1].term = 1)), 'entries.1.term must not be below entries.0.term'],
  ['an entry below prev_log_term', appendWith((b) => ((b.entries[0].term = 1), (b.entries[1].term = 1))), 'entries.0.term must not be below prev_log_term (2)'],
  ['prev_log_term above term', appendWith((b) => ((b.prev_log_term = 4), (b.entries = []))), 'prev_log_term must not exceed term (3)'],
  ['a term for index 0', appendWith((b) => Object.assign(b, { prev_log_index: 0, prev_log_term: 1, entries: [] })), 'prev_log_term must be 0 when prev_log_index is 0'],
];

describe('POST /raft/appendentries', () => {
  it('delivers a valid body to the handler, converted, and answers in the wire format', async () => {
    const { url, handler } = await startApp();
    const body = appendWith((b) =>
      b.entries.push({ index: 7, term: 3, command: '', type: 'config', config: { voters: [3, 1, 2], outgoing: [1, 2], addresses: { 3: 'http://127.0.0.1:3003' } } }),
    );
    for (const contentType of ['application/vnd.raft+json', 'application/json', 'application/json; charset=utf-8']) {
      handler.calls.length = 0;
      const answer = await post(`${url}/raft/appendentries`, body, contentType);
      expect(answer.status).toBe(200);
      expect(answer.contentType).toMatch(/^application\/json/);
      expect(answer.json).toEqual({ term: 3, success: true, match_index: 7, rejected_index: 0, conflict_term: 0, conflict_index: 0 });
      expect(handler.calls).toEqual([
        {
          method: 'appendEntries',
          args: [
            {
              type: 'AppendEntries', from: 1, to: SELF, term: 3, prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 4,
              entries: [
                { index: 5, term: 3, type: 'command', command: new TextEncoder().encode('hello') },
                { index: 6, term: 3, type: 'noop', command: new Uint8Array(0) },
                { index: 7, term: 3, type: 'config', command: new Uint8Array(0), config: { voters: [1, 2, 3], outgoing: [1, 2], addresses: { 3: 'http://127.0.0.1:3003' } } },
              ],
            },
          ],
        },
      ]);
    }
  });

  it('accepts a Go-style heartbeat (entries null) and a null command, and a body without content type', async () => {
    const { url, handler } = await startApp();
    const heartbeat = { term: 3, leader_id: 1, prev_log_index: 4, prev_log_term: 2, entries: null, commit_index: 4 };
    expect((await post(`${url}/raft/appendentries`, heartbeat)).status).toBe(200);
    // A Uint8Array body makes fetch send no content type at all.
    const res = await fetch(`${url}/raft/appendentries`, { method: 'POST', body: Buffer.from(JSON.stringify(appendWith((b) => (b.entries[0].command = null)))) });
    expect(res.status).toBe(200);
    const requests = handler.calls.map((c) => c.args[0] as AppendEntriesRequest);
    expect(requests[0]!.entries).toEqual([]);
    expect(requests[1]!.entries[0]!.command).toEqual(new Uint8Array(0));
  });

  for (const contentType of ['application/vnd.raft+json', 'application/json']) {
    it(`answers 400 with a message, and never calls the handler, for every malformed body (${contentType})`, async () => {
      const { url, handler } = await startApp({ limits: { maxEntriesPerAppend: 8, maxCommandBytes: 64 } });
      for (const [name, body, message] of MALFORMED_APPEND) {
        const answer = await post(`${url}/raft/appendentries`, body, contentType);
        expect(answer.status, name).toBe(400);
        expect(answer.contentType, name).toMatch(/^application\/json/);
        expect(typeof answer.json.message, name).toBe('string');
        // With application/json, text that is not a JSON object never gets past the application's own parser (Nest's 400).
        const parsedByNest = contentType === 'application/json' && ['not JSON', 'null', 'an array', 'NaN'].includes(name);
        if (!parsedByNest) {
          // Nest's parser turns an empty application/json body into {}.
          const expected = contentType === 'application/json' && name === 'an empty body' ? 'term is required' : message;
          expect(answer.json.error, name).toContain(expected);
          expect(answer.json.code, name).toMatch(/^invalid_(body|json)$/);
        }
      }
      expect(handler.calls).toEqual([]);
    });
  }

  it('accepts the binary AppendEntries body: the same request as its JSON twin', async () => {
    const { url, handler } = await startApp();
    const request: AppendEntriesRequest = {
      type: 'AppendEntries', from: 1, to: SELF, term: 3, prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 4,
      entries: [
        { index: 5, term: 3, type: 'command', command: new Uint8Array(Buffer.from('hello')) },
        { index: 6, term: 3, type: 'noop', command: new Uint8Array(0) },
        { index: 7, term: 3, type: 'config', command: new Uint8Array(0), config: { voters: [1, 2, 3], learners: [4] } },
      ],
    };
    const binary = await post(`${url}/raft/appendentries`, encodeAppendEntriesBinary(request), RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE);
    expect(binary.status, binary.text).toBe(200);
    const json = await post(`${url}/raft/appendentries`, { ...encodeAppendEntries(request) });
    expect(json.status, json.text).toBe(200);
    expect(handler.calls).toHaveLength(2);
    expect(handler.calls[0]!.args[0]).toEqual(request);
    expect(handler.calls[0]!.args[0]).toEqual(handler.calls[1]!.args[0]);
  });

  it('answers 400 with a message, and never calls the handler, for every malformed binary AppendEntries body', async () => {
    const { url, handler } = await startApp({ limits: { maxEntriesPerAppend: 8, maxCommandBytes: 64 } });
    const base: AppendEntriesRequest = {
      type: 'AppendEntries', from: 1, to: SELF, term: 3, prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 4,
      entries: [{ index: 5, term: 3, type: 'command', command: new Uint8Array([1, 2, 3]) }],
    };
    const valid = encodeAppendEntriesBinary(base);
    const patched = (at: number, bytes: number[]) => {
      const out = Buffer.from(valid);
      out.set(bytes, at);
      return out;
    };
    const withEntries = (entries: AppendEntriesRequest['entries'], change: Partial<AppendEntriesRequest> = {}) => encodeAppendEntriesBinary({ ...base, ...change, entries });
    // A config entry whose configuration JSON is `text` (the encoder would never write it: spliced in).
    const withConfigJson = (text: string | Buffer) => {
      const head = encodeAppendEntriesBinary({ ...base, entries: [{ index: 5, term: 3, type: 'config', command: new Uint8Array(0), config: { voters: [1] } }] });
      const json = typeof text === 'string' ? Buffer.from(text) : text;
      const start = head.length - Buffer.from(JSON.stringify({ voters: [1] })).length - 4;
      const out = Buffer.concat([head.subarray(0, start), Buffer.alloc(4), json]);
      out.writeUInt32BE(json.length, start);
      return out;
    };
    const cases: Array<[string, Uint8Array, string]> = [
      ['an empty body', new Uint8Array(0), 'header'],
      ['a truncated header', valid.subarray(0, 20), 'header'],
      ['a term above 2^53', patched(1, [0xff, 0xff, 0xff, 0xff]), 'term is larger than Number.MAX_SAFE_INTEGER'],
      ['more entries than maxEntriesPerAppend', patched(41, [0, 0, 0, 9]), 'more than maxEntriesPerAppend (8)'],
      ['an entry count past the end', patched(41, [0, 0, 0, 2]), 'entries.1: the body ends inside the entry'],
      ['an unknown entry type', patched(45 + 8, [7]), 'entries.0.type 7 is not a known entry type'],
      ['a command length past the end', patched(45 + 9, [0, 0, 1, 0]), 'entries.0.command: 256 bytes announced'],
      ['trailing bytes', Buffer.concat([valid, Buffer.from([0])]), '1 bytes too many'],
      ['a command above maxCommandBytes', withEntries([{ index: 5, term: 3, type: 'command', command: new Uint8Array(65) }]), 'more than maxCommandBytes (64)'],
      ['a noop with command bytes', withEntries([{ index: 5, term: 3, type: 'noop', command: new Uint8Array([1]) }]), 'entries.0.command must be empty on an entry of type "noop"'],
      ['a config entry without a configuration', withEntries([{ index: 5, term: 3, type: 'config', command: new Uint8Array(0) }]), 'entries.0.config is required'],
      ['a configuration that is not JSON', withConfigJson('{"voters": ['), 'entries.0.config is not JSON'],
      ['a configuration that is not UTF-8', withConfigJson(Buffer.from('{"voters": [1], "addresses": {"1": "http://\xff"}}', 'latin1')), 'entries.0.config is not JSON in UTF-8'],
      ['a configuration without voters', withConfigJson('{"outgoing": [1]}'), 'entries.0.config.voters'],
      ['a configuration with a __proto__ key', withConfigJson('{"voters": [1], "__proto__": {"x": 1}}'), 'property entries.0.config.__proto__ is not allowed'],
      ['an entry term above the term', withEntries([{ index: 5, term: 4, type: 'command', command: new Uint8Array(1) }]), 'entries.0.term must not exceed term (3)'],
      ['a term of 0', withEntries([], { term: 0, prevLogTerm: 0, prevLogIndex: 0 }), 'term must be at least 1'],
      ['this node as the leader', withEntries([], { from: SELF }), "leader_id must not be this node's own id"],
      ['a decreasing entry term', withEntries([{ index: 5, term: 1, type: 'command', command: new Uint8Array(1) }]), 'must not be below prev_log_term'],
    ];
    for (const [name, body, message] of cases) {
      const answer = await post(`${url}/raft/appendentries`, body, RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE);
      expect(answer.status, name).toBe(400);
      expect(answer.json.code, name).toBe('invalid_body');
      expect(answer.json.error, name).toContain(message);
    }
    // Another version of the format is another media type: 415, so that its sender falls back to JSON.
    const newer = await post(`${url}/raft/appendentries`, patched(0, [2]), RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE);
    expect(newer.status).toBe(415);
    expect(newer.json.error).toContain('binary AppendEntries version 2 is not supported');
    expect(handler.calls).toEqual([]);
  });

  it('lists every failed constraint', async () => {
    const { url } = await startApp();
    const answer = await post(`${url}/raft/appendentries`, appendWith((b) => Object.assign(b, { term: 'x', leader_id: -1, bogus: true })));
    expect(answer.status).toBe(400);
    expect(answer.json.issues).toEqual(
      expect.arrayContaining(['term must be a non-negative integer', `leader_id must be a positive integer no greater than ${Number.MAX_SAFE_INTEGER}`, 'property bogus should not exist']),
    );
    expect(answer.json.error).toMatch(/^invalid AppendEntries body: /);
  });

  it('refuses a body above bodyLimitBytes with 413 (vnd.raft+json), another content type with 415', async () => {
    const { url, handler } = await startApp({ limits: { bodyLimitBytes: 1_000 } });
    const big = appendWith((b) => (b.entries[0].command = Buffer.alloc(2_000).toString('base64')));
    const tooLarge = await post(`${url}/raft/appendentries`, big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json).toMatchObject({ code: 'body_too_large' });
    expect(tooLarge.json.error).toContain('more than the limit of 1000 bytes');
    const wrongType = await post(`${url}/raft/appendentries`, JSON.stringify(validAppend()), 'text/plain');
    expect(wrongType.status).toBe(415);
    expect(wrongType.json.error).toContain('expected a JSON body');
    expect(handler.calls).toEqual([]);
  });

  it('why the peer sends application/vnd.raft+json: Nest\'s JSON parser stops application/json at 100 kB unless the app raises it', async () => {
    const body = appendWith((b) => (b.entries[0].command = Buffer.alloc(150_000).toString('base64')));
    const { url } = await startApp({ limits: { maxCommandBytes: 1 << 20 } });
    expect((await post(`${url}/raft/appendentries`, body, 'application/json')).status).toBe(413);
    expect((await post(`${url}/raft/appendentries`, body, 'application/vnd.raft+json')).status).toBe(200);
    const raised = await startApp({ limits: { maxCommandBytes: 1 << 20 }, jsonLimit: '8mb' });
    expect((await post(`${raised.url}/raft/appendentries`, body, 'application/json')).status).toBe(200);
  });

  it('refuses a request meant for another node (x-raft-to) with 409', async () => {
    const { url, handler } = await startApp();
    const wrong = await post(`${url}/raft/appendentries`, validAppend(), undefined, { 'x-raft-to': '3' });
    expect(wrong.status).toBe(409);
    expect(wrong.json).toMatchObject({ code: 'wrong_node', error: 'this is node 2, not node 3' });
    expect((await post(`${url}/raft/appendentries`, validAppend(), undefined, { 'x-raft-to': 'two' })).status).toBe(400);
    expect(handler.calls).toEqual([]);
    expect((await post(`${url}/raft/appendentries`, validAppend(), undefined, { 'x-raft-to': '2' })).status).toBe(200);
  });

  it('answers 503 when the node is stopped, 500 (no internals but the message) when the handler fails', async () => {
    const { url, handler } = await startApp();
    handler.behave.appendEntries = () => Promise.reject(new NodeStoppedError());
    const stopped = await post(`${url}/raft/appendentries`, validAppend());
    expect(stopped.status).toBe(503);
    expect(stopped.json).toMatchObject({ code: 'node_stopped' });
    handler.behave.appendEntries = () => Promise.reject(new Error('disk on fire'));
    const failed = await post(`${url}/raft/appendentries`, validAppend());
    expect(failed.status).toBe(500);
    expect(failed.json).toMatchObject({ code: 'internal', error: 'disk on fire' });
  });
});

describe('the fast check of AppendEntries bodies', () => {
  /** A small seeded PRNG (mulberry32), so a failure can be replayed. */
  function prng(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const values: unknown[] = [
    -1, 0, 1, 7, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, '1', '', 'aGk=', 'QR==', 'aGk', null, true, false, [], [1, 2], [1, 1], [0], {}, { 1: 'http://a' },
    { x: 'http://a' }, { 1: 'ftp://a' }, 'command', 'noop', 'config', 'other', { voters: [1] }, { voters: [1], outgoing: [2] }, { voters: [] }, { voters: [1], x: 1 }, { voters: [1], learners: [2] }, { voters: [1], learners: [1] },
    [{ index: 1, term: 1, command: '' }], [5],
  ];

  it('accepts exactly what the DTOs accept, on thousands of mutated bodies', () => {
    const random = prng(20240607);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const base = () =>
      appendWith((b) => b.entries.push({ index: 7, term: 3, command: '', type: 'config', config: { voters: [1, 2], outgoing: [1], learners: [5], addresses: { 1: 'http://a:1' } } }));
    let accepted = 0;
    for (let round = 0; round < 3_000; round++) {
      const body = base();
      for (let m = 1 + Math.floor(random() * 2); m > 0; m--) {
        // Walk to a random object inside the body, then replace, delete or add one of its keys.
        let target: Record<string, unknown> = body;
        while (random() < 0.6) {
          const children = Object.values(target).filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null);
          if (children.length === 0) break;
          target = pick(children);
        }
        const keys = Object.keys(target);
        const action = random();
        if (action < 0.15 && keys.length > 0) delete target[pick(keys)];
        else if (action < 0.25) target[pick(['extra', 'type', 'config', 'voters', 'outgoing', 'addresses', 'index'])] = structuredClone(pick(values));
        else if (keys.length > 0) target[pick(keys)] = structuredClone(pick(values));
      }
      const text = JSON.stringify(body); // what a wire delivers (a deleted array item becomes null)
      const dto = plainToInstance(AppendEntriesDto, JSON.parse(text));
      const dtoAccepts = validateSync(dto, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true }).length === 0;
      expect(isWellTypedAppendEntries(JSON.parse(text)), text).toBe(dtoAccepts);
      if (dtoAccepts) accepted++;
    }
    // Both outcomes were exercised.
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(2_900);
  });
});

describe('POST /raft/requestvote', () => {
  it('delivers a valid body, converted, and answers { term, vote_granted, pre_vote }', async () => {
    const { url, handler } = await startApp();
    const answer = await post(`${url}/raft/requestvote`, { term: 5, candidate_id: 3, last_log_index: 9, last_log_term: 4, pre_vote: true });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ term: 5, vote_granted: true, pre_vote: true });
    expect(handler.calls[0]!.args[0]).toEqual({ type: 'RequestVote', from: 3, to: SELF, term: 5, lastLogIndex: 9, lastLogTerm: 4, preVote: true });
    const go = await post(`${url}/raft/requestvote`, { term: 5, candidate_id: 3, last_log_index: 0, last_log_term: 0 }, 'application/json');
    expect(go.json).toEqual({ term: 5, vote_granted: true });
    expect(handler.calls[1]!.args[0]).toEqual({ type: 'RequestVote', from: 3, to: SELF, term: 5, lastLogIndex: 0, lastLogTerm: 0, preVote: false });
  });

  it('answers 400 with a message for malformed bodies, and never calls the handler', async () => {
    const { url, handler } = await startApp();
    const valid = { term: 5, candidate_id: 3, last_log_index: 9, last_log_term: 4 };
    const cases: Array<[object | string, string]> = [
      ['{', 'not valid JSON'],
      [{ ...valid, term: '5' }, 'term must be a non-negative integer'],
      [{ ...valid, candidate_id: 0 }, 'candidate_id must be a positive integer'],
      [{ ...valid, candidate_id: 1.5 }, 'candidate_id must be a positive integer'],
      [{ ...valid, candidate_id: SELF }, "candidate_id must not be this node's own id"],
      [{ ...valid, last_log_index: -3 }, 'last_log_index must be a non-negative integer'],
      [{ ...valid, pre_vote: 'yes' }, 'pre_vote must be true or false'],
      [{ ...valid, transfer: null }, 'transfer must be true or false'],
      [{ term: 5, candidate_id: 3, last_log_index: 9 }, 'last_log_term is required'],
      [{ ...valid, vote: 1 }, 'property vote should not exist'],
      [{ ...valid, last_log_term: 6 }, 'last_log_term must not exceed term (5)'],
      [{ ...valid, last_log_index: 0 }, 'last_log_term must be 0 when last_log_index is 0'],
      [{ ...valid, term: 0, last_log_index: 0, last_log_term: 0 }, 'term must be at least 1'],
      [{ ...valid, term: { $gt: 1 } }, 'term must be a non-negative integer'],
    ];
    for (const [body, message] of cases) {
      const answer = await post(`${url}/raft/requestvote`, body);
      expect(answer.status, message).toBe(400);
      expect(answer.json.error, message).toContain(message);
    }
    expect(handler.calls).toEqual([]);
  });
});

describe('POST /raft/command', () => {
  it('delivers the raw bytes and answers { result } with bytes as $bytes; passes the timeout and a signal', async () => {
    const { url, handler } = await startApp();
    const command = new Uint8Array([0, 1, 2, 0xff, 0x7b]);
    const answer = await post(`${url}/raft/command`, command, 'application/octet-stream', { 'x-raft-timeout-ms': '2500' });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ result: { $bytes: Buffer.from([0x7b, 0xff, 2, 1, 0]).toString('base64') } });
    const [received, options] = handler.calls[0]!.args as [Uint8Array, RpcOptions];
    expect(received).toEqual(command);
    expect(options.timeoutMs).toBe(2500);
    expect(options.signal).toBeInstanceOf(AbortSignal);

    handler.behave.command = async () => ({ ok: true, value: 'v1' });
    expect((await post(`${url}/raft/command`, new Uint8Array([1]), 'application/octet-stream')).json).toEqual({ result: { ok: true, value: 'v1' } });
    handler.behave.command = async () => undefined;
    expect((await post(`${url}/raft/command`, new Uint8Array(0), 'application/octet-stream')).json).toEqual({});
  });

  it('refuses an oversized command (413), a parsed JSON body (415) and a bad timeout header (400), without calling the handler', async () => {
    const { url, handler } = await startApp({ limits: { maxCommandBytes: 16 } });
    const big = await post(`${url}/raft/command`, new Uint8Array(17), 'application/octet-stream');
    expect(big.status).toBe(413);
    expect(big.json.error).toContain('more than the limit of 16 bytes');
    const json = await post(`${url}/raft/command`, { a: 1 }, 'application/json');
    expect(json.status).toBe(415);
    expect(json.json.error).toContain('application/octet-stream');
    for (const timeout of ['0', '-5', 'soon', '1.5', '99999999999']) {
      const bad = await post(`${url}/raft/command`, new Uint8Array(1), 'application/octet-stream', { 'x-raft-timeout-ms': timeout });
      expect(bad.status, timeout).toBe(400);
      expect(bad.json.error).toContain('x-raft-timeout-ms');
    }
    expect(handler.calls).toEqual([]);
  });

  it('maps the handler\'s errors: 421 not leader, 504 timeout, 503 leadership lost', async () => {
    const { url, handler } = await startApp();
    const send = () => post(`${url}/raft/command`, new Uint8Array([1]), 'application/octet-stream');
    handler.behave.command = () => Promise.reject(new NotLeaderError(3, 'http://127.0.0.1:3003'));
    const notLeader = await send();
    expect(notLeader.status).toBe(421);
    expect(notLeader.json).toMatchObject({ code: 'not_leader', leader_id: 3, leader_url: 'http://127.0.0.1:3003' });
    handler.behave.command = () => Promise.reject(new NotLeaderError(0));
    expect((await send()).json).toMatchObject({ code: 'not_leader', leader_id: 0 });
    handler.behave.command = () => Promise.reject(new CommandTimeoutError(100));
    expect(await send()).toMatchObject({ status: 504, json: { code: 'timeout', timeout_ms: 100 } });
    handler.behave.command = () => Promise.reject(new LeadershipLostError());
    expect(await send()).toMatchObject({ status: 503, json: { code: 'leadership_lost' } });
  });

  it('aborts the handler\'s signal when the caller goes away', async () => {
    const { url, handler } = await startApp();
    let seen: AbortSignal | undefined;
    const aborted = new Promise<void>((resolve) => {
      handler.behave.command = (_command: never, options: never) => {
        seen = (options as RpcOptions).signal;
        seen!.addEventListener('abort', () => resolve());
        return new Promise(() => {});
      };
    });
    const abort = new AbortController();
    const call = fetch(`${url}/raft/command`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array([1]), signal: abort.signal }).catch(() => undefined);
    while (!seen) await new Promise((resolve) => setTimeout(resolve, 5));
    abort.abort();
    await aborted;
    await call;
    expect(seen.aborted).toBe(true);
  });
});

describe('POST /raft/setconfiguration', () => {
  it('delivers the members, learning the id of a member given by url only, and answers { success: true }', async () => {
    const { url, handler } = await startApp();
    const answer = await post(`${url}/raft/setconfiguration`, { peers: [{ id: 1, url: 'http://127.0.0.1:3001' }, { id: 3 }, { url }] }, 'application/json', { 'x-raft-timeout-ms': '3000' });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ success: true });
    const [members, options] = handler.calls[0]!.args as [RaftMember[], RpcOptions];
    expect(members).toEqual([{ id: 1, url: 'http://127.0.0.1:3001' }, { id: 3 }, { id: SELF, url }]);
    expect(options.timeoutMs).toBe(3000);
  });

  it('answers 400 { success: false } for malformed bodies, and never calls the handler', async () => {
    const { url, handler } = await startApp();
    const cases: Array<[object | string, string]> = [
      ['[', 'not valid JSON'],
      [{}, 'peers is required'],
      [{ peers: [] }, 'peers must name at least one member'],
      [{ peers: [{}] }, 'peers.0 needs an id, a url, or both'],
      [{ peers: [{ id: -1 }] }, 'peers.0.id must be a positive integer'],
      [{ peers: [{ id: 1, url: 'ftp://x' }] }, 'peers.0.url must be an http or https URL'],
      [{ peers: [{ id: 1 }, { id: 1 }] }, 'peers.1.id names node 1 again'],
      [{ peers: [{ id: 1, role: 'voter' }] }, 'property peers.0.role should not exist'],
      [{ peers: [{ id: 1 }], force: true }, 'property force should not exist'],
      [{ peers: 'all' }, 'peers must be an array'],
      [{ peers: [{ id: 1 }, { url: 'http://127.0.0.3:1' }] }, "peers.1.url: could not learn the node's id"],
      [{ peers: [{ id: SELF }, { url }] }, `peers.1 is node ${SELF}, which another member already is`],
    ];
    for (const [body, message] of cases) {
      const answer = await post(`${url}/raft/setconfiguration`, body);
      expect(answer.status, message).toBe(400);
      expect(answer.json.success, message).toBe(false);
      expect(answer.json.error, message).toContain(message);
    }
    expect(handler.calls).toEqual([]);
  });

  it('delivers learners when the body names them (and only then), and refuses malformed ones with 400', async () => {
    const { url, handler } = await startApp();
    // A learner given by url only is asked for its id, as a voter is.
    const answer = await post(`${url}/raft/setconfiguration`, { peers: [{ id: 1 }, { id: 3 }], learners: [{ id: 4, url: 'http://127.0.0.1:3004' }, { url }] });
    expect(answer).toMatchObject({ status: 200, json: { success: true } });
    expect(handler.calls[0]!.args[0]).toEqual([{ id: 1 }, { id: 3 }]);
    expect(handler.calls[0]!.args[2]).toEqual([{ id: 4, url: 'http://127.0.0.1:3004' }, { id: SELF, url }]);
    handler.calls.length = 0;
    expect((await post(`${url}/raft/setconfiguration`, { peers: [{ id: 1 }], learners: [] })).status).toBe(200);
    expect(handler.calls[0]!.args[2]).toEqual([]);
    expect((await post(`${url}/raft/setconfiguration`, { peers: [{ id: 1 }] })).status).toBe(200);
    expect(handler.calls[1]!.args).toHaveLength(2);
    handler.calls.length = 0;
    const cases: Array<[object, string]> = [
      [{ peers: [{ id: 1 }], learners: 'all' }, 'learners must be an array'],
      [{ peers: [{ id: 1 }], learners: [5] }, 'learners.0 must be an object'],
      [{ peers: [{ id: 1 }], learners: [{}] }, 'learners.0 needs an id, a url, or both'],
      [{ peers: [{ id: 1 }], learners: [{ id: 0 }] }, 'learners.0.id must be a positive integer'],
      [{ peers: [{ id: 1 }], learners: [{ id: 4 }, { id: 4 }] }, 'learners.1.id names node 4 again (as learners.0.id does)'],
      [{ peers: [{ id: 1 }], learners: [{ id: 1 }] }, 'learners.0.id names node 1 again (as peers.0.id does)'],
      [{ peers: [{ id: 1 }], learners: [{ url }] }, ''],
      [{ peers: [{ id: 1 }], learners: [{ id: 4, voter: false }] }, 'property learners.0.voter should not exist'],
      [{ peers: [{ id: 1 }], learners: null }, 'learners must be an array'],
    ];
    for (const [body, message] of cases) {
      const reply = await post(`${url}/raft/setconfiguration`, body);
      if (message === '') {
        // A learner given by url that turns out to be this node (2), while 2 is not a voter here: accepted.
        expect(reply.status).toBe(200);
        continue;
      }
      expect(reply.status, message).toBe(400);
      expect(reply.json.error, message).toContain(message);
    }
    expect(handler.calls.map((c) => c.args[2])).toEqual([[{ id: SELF, url }]]);
    // Given by url, a learner that is also a voter is refused once its id is known.
    const both = await post(`${url}/raft/setconfiguration`, { peers: [{ id: SELF }], learners: [{ url }] });
    expect(both.status).toBe(400);
    expect(both.json.error).toContain(`learners.0 is node ${SELF}, which is also a voter`);
  });

  it('answers 409 with the reason for a refused change, 421 on a follower', async () => {
    const { url, handler } = await startApp();
    handler.behave.setConfiguration = () => Promise.reject(new ConfigurationChangeError('in-progress', 'another change is under way'));
    const refused = await post(`${url}/raft/setconfiguration`, { peers: [{ id: 1 }] });
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ success: false, code: 'configuration_change', reason: 'in-progress' });
    handler.behave.setConfiguration = () => Promise.reject(new NotLeaderError(1, 'http://127.0.0.1:3001'));
    expect(await post(`${url}/raft/setconfiguration`, { peers: [{ id: 1 }] })).toMatchObject({ status: 421, json: { success: false, leader_id: 1 } });
  });
});

describe('GET /raft/id and path prefixes', () => {
  it('answers the node id as text/plain', async () => {
    const { url } = await startApp();
    const res = await fetch(`${url}/raft/id`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('2');
  });

  it('serves every route under a custom prefix, and nothing under /raft', async () => {
    const { url, handler } = await startApp({ prefix: 'cluster/rpc/' });
    expect(await (await fetch(`${url}/cluster/rpc/id`)).text()).toBe('2');
    expect((await post(`${url}/cluster/rpc/appendentries`, validAppend())).status).toBe(200);
    expect((await post(`${url}/cluster/rpc/requestvote`, { term: 5, candidate_id: 3, last_log_index: 0, last_log_term: 0 })).status).toBe(200);
    expect((await post(`${url}/cluster/rpc/command`, new Uint8Array([1]), 'application/octet-stream')).status).toBe(200);
    expect((await post(`${url}/cluster/rpc/setconfiguration`, { peers: [{ id: 1 }] })).status).toBe(200);
    expect((await fetch(`${url}/raft/id`)).status).toBe(404);
    expect(handler.calls.map((c) => c.method)).toEqual(['appendEntries', 'requestVote', 'command', 'setConfiguration']);
  });
});

describe('HttpPeer against the controller', () => {
  for (const [contentType, appendEntriesEncoding] of [
    ['application/vnd.raft+json', 'binary'],
    ['application/vnd.raft+json', 'json'],
    ['application/json', 'json'],
  ] as const) {
    it(`carries every RPC end to end (${contentType}, AppendEntries ${appendEntriesEncoding})`, async () => {
      const { url, handler } = await startApp({ prefix: '/rpc' });
      const transport = new HttpTransport({ pathPrefix: '/rpc', contentType, appendEntriesEncoding });
      try {
        await expect(transport.discoverId(url)).resolves.toBe(SELF);
        const peer = await transport.peerAt(url);
        const request: AppendEntriesRequest = {
          type: 'AppendEntries', from: 1, to: SELF, term: 3, prevLogIndex: 4, prevLogTerm: 2, leaderCommit: 4,
          entries: [
            { index: 5, term: 3, type: 'command', command: new Uint8Array([0, 128, 255]) },
            { index: 6, term: 3, type: 'config', command: new Uint8Array(0), config: { voters: [1, 2, 4], outgoing: [1, 2, 3], addresses: { 4: 'http://127.0.0.1:3004' } } },
          ],
        };
        await expect(peer.appendEntries(request)).resolves.toEqual({
          type: 'AppendEntriesResponse', from: SELF, to: 1, term: 3, success: true, matchIndex: 6, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0,
        });
        expect(handler.calls[0]!.args[0]).toEqual(request);
        const vote: RequestVoteRequest = { type: 'RequestVote', from: 3, to: SELF, term: 7, lastLogIndex: 6, lastLogTerm: 3, preVote: true };
        await expect(peer.requestVote(vote)).resolves.toEqual({ type: 'RequestVoteResponse', from: SELF, to: 3, term: 7, voteGranted: true, preVote: true });
        await expect(peer.command(new Uint8Array([1, 2, 3]), { timeoutMs: 900 })).resolves.toEqual(new Uint8Array([3, 2, 1]));
        expect((handler.calls.at(-1)!.args[1] as RpcOptions).timeoutMs).toBe(900);
        handler.behave.command = () => Promise.reject(new NotLeaderError(3, 'http://127.0.0.1:3003'));
        await expect(peer.command(new Uint8Array([1]))).rejects.toMatchObject({ name: 'NotLeaderError', leaderId: 3, leaderUrl: 'http://127.0.0.1:3003' });
        await expect(peer.setConfiguration([{ id: 1, url: 'http://127.0.0.1:3001' }, { id: SELF }])).resolves.toBeUndefined();
        expect(handler.calls.at(-1)!.args[0]).toEqual([{ id: 1, url: 'http://127.0.0.1:3001' }, { id: SELF }]);
        expect(handler.calls.at(-1)!.args).toHaveLength(2);
        await expect(peer.setConfiguration([{ id: 1 }], undefined, [{ id: 4, url: 'http://127.0.0.1:3004' }])).resolves.toBeUndefined();
        expect(handler.calls.at(-1)!.args[2]).toEqual([{ id: 4, url: 'http://127.0.0.1:3004' }]);
        // A peer whose table maps this address to another id is refused, not misattributed.
        await expect(transport.peer(5, url).appendEntries({ ...request, to: 5 })).rejects.toMatchObject({ status: 409, code: 'wrong_node' });
      } finally {
        await transport.close();
      }
    });
  }
});

describe('forwarded command batches (POST commands)', () => {
  it('carries several commands in one request, with one outcome each: answers, and typed errors that fail only their command', async () => {
    const { url, handler } = await startApp({ prefix: '/rpc' });
    const transport = new HttpTransport({ pathPrefix: '/rpc' });
    try {
      const peer = await transport.peerAt(url);
      handler.behave.command = (command: Uint8Array) => {
        if (command[0] === 9) return Promise.reject(new NotLeaderError(3, 'http://127.0.0.1:3003'));
        if (command[0] === 8) return Promise.reject(new Error('the state machine refused it'));
        return Promise.resolve(new Uint8Array([...command].reverse()));
      };
      const outcomes = await peer.commands!([new Uint8Array([1, 2]), new Uint8Array([9]), new Uint8Array(0), new Uint8Array([8])], { timeoutMs: 800 });
      expect(handler.calls.filter((c) => c.method === 'command')).toHaveLength(4);
      expect(outcomes[0]).toEqual({ ok: true, value: new Uint8Array([2, 1]) });
      expect(outcomes[1]!.ok).toBe(false);
      expect((outcomes[1] as { error: unknown }).error).toBeInstanceOf(NotLeaderError);
      expect((outcomes[1] as { error: NotLeaderError }).error.leaderId).toBe(3);
      expect(outcomes[2]).toEqual({ ok: true, value: new Uint8Array(0) });
      expect((outcomes[3] as { error: Error }).error.message).toMatch(/the state machine refused it/);
      expect((handler.calls[0]!.args[1] as RpcOptions).timeoutMs).toBe(800);
    } finally {
      await transport.close();
    }
  });

  it('refuses a malformed batch with 400 and a message, without calling the node', async () => {
    const { url, handler } = await startApp({ limits: { maxCommandBytes: 64 } });
    const frame = (...parts: number[][]) => new Uint8Array(parts.flat());
    const u32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
    const cases: [string, Uint8Array, RegExp][] = [
      ['an empty body', new Uint8Array(0), /starts with its count/],
      ['a count of zero', frame(u32(0)), /holds 1 to 4096 commands, not 0/],
      ['a count too large', frame(u32(5000)), /not 5000/],
      ['a length past the end', frame(u32(1), u32(10), [1, 2]), /10 bytes announced, the batch ends before/],
      ['a missing command', frame(u32(2), u32(1), [7]), /command 1 of 2: the batch ends before its length/],
      ['trailing bytes', frame(u32(1), u32(1), [7], [0]), /1 bytes too many/],
      ['an oversized command', frame(u32(1), u32(65), new Array<number>(65).fill(1)), /65 bytes, more than 64/],
    ];
    for (const [what, body, message] of cases) {
      const answer = await post(`${url}/raft/commands`, body, 'application/octet-stream');
      expect(answer.status, what).toBe(400);
      expect(answer.json.error, what).toMatch(message);
    }
    expect(handler.calls).toEqual([]);
  });
});
