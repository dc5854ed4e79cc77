import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { LeadershipLostError, NodeStoppedError, StorageFailureError } from '../../lib/core/errors.js';
import { createRaftRpcController } from '../../lib/nest/raft-rpc.controller.js';
import { DEFAULT_RPC_LIMITS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, RAFT_SNAPSHOT_ASSEMBLER, type RaftRpcLimits } from '../../lib/nest/raft.constants.js';
import { SnapshotAssembler } from '../../lib/transport/snapshot-assembler.js';
import type { RaftRpcHandler } from '../../lib/transport/transport.js';
import { RecordingSnapshotHandler } from '../support/snapshot-handler.js';

/**
 * `POST {prefix}/installsnapshot` on the RPC controller (open mode; signatures are in test/security):
 * what it delivers to the node, and every malformed chunk refused with 400 before anything changes.
 */
const HOST = '127.0.0.6';
const SELF = 2;

/** Records first, then fails if told to; answers in a term one later than the request's. */
class SnapshotHandler extends RecordingSnapshotHandler {
  constructor() {
    super(SELF, { termDelta: 1, recordFailed: true });
  }
}

const apps: INestApplication[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function startApp(options: { limits?: Partial<RaftRpcLimits>; handler?: RaftRpcHandler } = {}) {
  const handler = (options.handler ?? new SnapshotHandler()) as SnapshotHandler;
  const limits = { ...DEFAULT_RPC_LIMITS, ...options.limits };
  const assembler = new SnapshotAssembler({ maxSnapshotBytes: limits.maxSnapshotBytes });
  const moduleRef = await Test.createTestingModule({
    controllers: [createRaftRpcController('/raft')],
    providers: [
      { provide: RAFT_RPC_HANDLER, useValue: handler },
      { provide: RAFT_RPC_LIMITS, useValue: limits },
      { provide: RAFT_SNAPSHOT_ASSEMBLER, useValue: assembler },
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  await app.listen(0, HOST);
  const port = (app.getHttpServer().address() as { port: number }).port;
  return { url: `http://${HOST}:${port}/raft/installsnapshot`, handler, assembler };
}

async function post(url: string, body: object | string, contentType = 'application/vnd.raft+json', headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: Record<string, any> = {};
  try {
    json = JSON.parse(text) as Record<string, any>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

const DATA = Buffer.from('the whole state machine, in 44 bytes exactly');
const digest = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A valid chunk of DATA: the first 20 bytes (`first`), or the rest (`last`, done, with the digest). */
function chunk(part: 'first' | 'last' | 'whole' = 'whole'): Record<string, any> {
  const [offset, end] = part === 'first' ? [0, 20] : part === 'last' ? [20, DATA.length] : [0, DATA.length];
  const done = end === DATA.length;
  return {
    term: 5,
    leader_id: 1,
    last_included_index: 40,
    last_included_term: 4,
    configuration: { voters: [3, 1, 2], addresses: { 1: 'http://127.0.0.1:3001' } },
    size: DATA.length,
    offset,
    data: DATA.subarray(offset, end).toString('base64'),
    done,
    ...(done ? { digest: digest(DATA) } : {}),
  };
}

function chunkWith(change: (body: Record<string, any>) => void, part: 'first' | 'last' | 'whole' = 'whole'): Record<string, any> {
  const body = chunk(part);
  change(body);
  return body;
}

const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** [name, body, what the message must say]. */
const MALFORMED: Array<[string, object | string, string]> = [
  ['not JSON', '{"term": 5,', 'not valid JSON'],
  ['an empty body', '', 'empty'],
  ['null', 'null', 'must be a JSON object'],
  ['an array', '[]', 'must be a JSON object'],
  ['a string term', chunkWith((b) => (b.term = '5')), 'term must be a non-negative integer'],
  ['a negative term', chunkWith((b) => (b.term = -5)), 'term must be a non-negative integer'],
  ['term 0', chunkWith((b) => Object.assign(b, { term: 0, last_included_term: 0 })), 'term must be at least 1'],
  ['2^53', JSON.stringify(chunk()).replace('"term":5', '"term":9007199254740992'), 'term must be a non-negative integer no greater than'],
  ['a missing term', chunkWith((b) => delete b.term), 'term is required'],
  ['leader_id 0', chunkWith((b) => (b.leader_id = 0)), 'leader_id must be a positive integer'],
  ['leader_id of the receiver', chunkWith((b) => (b.leader_id = SELF)), "leader_id must not be this node's own id (2)"],
  ['a missing leader_id', chunkWith((b) => delete b.leader_id), 'leader_id is required'],
  ['last_included_index 0', chunkWith((b) => (b.last_included_index = 0)), 'last_included_index must be at least 1'],
  ['a float index', chunkWith((b) => (b.last_included_index = 40.5)), 'last_included_index must be a non-negative integer'],
  ['last_included_term 0', chunkWith((b) => (b.last_included_term = 0)), 'last_included_term must be at least 1'],
  ['last_included_term above term', chunkWith((b) => (b.last_included_term = 6)), 'last_included_term must not exceed term (5)'],
  ['a missing configuration', chunkWith((b) => delete b.configuration), 'configuration is required (an object)'],
  ['a configuration that is not an object', chunkWith((b) => (b.configuration = [1, 2, 3])), 'configuration must be an object'],
  ['a configuration without voters', chunkWith((b) => (b.configuration = { voters: [] })), 'configuration.voters must name at least one node'],
  ['a configuration naming a voter twice', chunkWith((b) => (b.configuration = { voters: [1, 1] })), 'configuration.voters must not name a node twice'],
  ['a configuration with a bad outgoing id', chunkWith((b) => (b.configuration = { voters: [1], outgoing: [0] })), 'configuration.outgoing must hold positive integers'],
  ['a configuration with a bad address', chunkWith((b) => (b.configuration = { voters: [1], addresses: { 1: 'ftp://x' } })), 'configuration.addresses.1 must be an http or https URL'],
  ['a configuration with an unknown field', chunkWith((b) => (b.configuration = { voters: [1], witnesses: [4] })), 'property configuration.witnesses should not exist'],
  ['a configuration whose learner is a voter', chunkWith((b) => (b.configuration = { voters: [1, 4], learners: [4] })), 'configuration.learners must not name a voter (node 4 is one)'],
  ['a negative size', chunkWith((b) => (b.size = -1)), 'size must be a non-negative integer'],
  ['a missing size', chunkWith((b) => delete b.size), 'size is required'],
  ['a string offset', chunkWith((b) => (b.offset = '0')), 'offset must be a non-negative integer'],
  ['an offset beyond size', chunkWith((b) => Object.assign(b, { offset: 50, data: '', done: false, digest: undefined }), 'first'), 'offset must not exceed size (44)'],
  ['data beyond size', chunkWith((b) => (b.data = Buffer.alloc(30).toString('base64')), 'last'), 'data holds 30 bytes, more than the 24 left after offset 20 (size 44)'],
  ['data not base64', chunkWith((b) => (b.data = 'aGV$bG8=')), 'data must be standard base64'],
  ['data unpadded', chunkWith((b) => (b.data = 'aGVsbG8')), 'data must be standard base64'],
  ['data url-safe', chunkWith((b) => (b.data = '-_8=')), 'data must be standard base64'],
  ['data non-canonical', chunkWith((b) => (b.data = 'QR==')), 'data must be standard base64'],
  ['long data with a newline', chunkWith((b) => (b.data = `${b.data.slice(0, 20)}\n${b.data.slice(21)}`)), 'data must be standard base64'],
  ['long data with an invalid character', chunkWith((b) => Object.assign(b, { size: 1000, data: `-${Buffer.alloc(600, 7).toString('base64').slice(1)}` }), 'first'), 'data must be standard base64'],
  ['long data that is not canonical', chunkWith((b) => Object.assign(b, { size: 1000, data: `${Buffer.alloc(599, 7).toString('base64').slice(0, -3)}QR==` }), 'first'), 'data must be standard base64'],
  ['data not a string', chunkWith((b) => (b.data = [1, 2])), 'data must be base64 text'],
  ['missing data', chunkWith((b) => delete b.data), 'data is required'],
  ['done as a string', chunkWith((b) => (b.done = 'true')), 'done must be true or false'],
  ['missing done', chunkWith((b) => delete b.done), 'done must be true or false'],
  ['done before the end', chunkWith((b) => Object.assign(b, { done: true, digest: digest(DATA) }), 'first'), 'the last chunk (done) must end at size (44), but it ends at 20'],
  ['done without a digest', chunkWith((b) => delete b.digest), 'digest is required on the last chunk (done)'],
  ['a digest on a middle chunk', chunkWith((b) => (b.digest = digest(DATA)), 'first'), 'digest is only allowed on the last chunk (done)'],
  ['an upper-case digest', chunkWith((b) => (b.digest = digest(DATA).toUpperCase())), 'digest must be a SHA-256 digest (64 lowercase hex digits)'],
  ['a short digest', chunkWith((b) => (b.digest = 'abc')), 'digest must be a SHA-256 digest'],
  ['a null digest', chunkWith((b) => (b.digest = null)), 'digest must be a SHA-256 digest'],
  ['an unknown field', chunkWith((b) => (b.to = SELF)), 'property to should not exist'],
  ['a __proto__ key', JSON.stringify(chunk()).replace('{"term":5', '{"__proto__":{"x":1},"term":5'), 'property __proto__ is not allowed'],
  ['a constructor key', JSON.stringify(chunk()).replace('{"term":5', '{"constructor":1,"term":5'), 'property constructor is not allowed'],
  ['deep nesting', JSON.stringify(chunk()).replace('"size":44', `"size":${deep(5_000)}`), 'nested more than 8 levels'],
];

describe('POST /raft/installsnapshot', () => {
  it('buffers chunks and installs the snapshot with the last one: the node gets the request and the bytes, once', async () => {
    const { url, handler, assembler } = await startApp();
    expect((await post(url, chunk('first'))).json).toEqual({ term: 5, next_offset: 20 });
    expect(assembler.pending()).toMatchObject([{ from: 1, term: 5, index: 40, received: 20, size: 44 }]);
    // Out of turn: answered with the offset expected.
    expect((await post(url, chunkWith((b) => (b.offset = 10), 'first'))).json).toEqual({ term: 5, next_offset: 20 });
    const answer = await post(url, chunk('last'));
    expect(answer).toEqual({ status: 200, json: { term: 6, match_index: 40 } });
    expect(handler.installs).toHaveLength(1);
    expect(handler.installs[0]!.request).toEqual({
      type: 'InstallSnapshot',
      from: 1,
      to: SELF,
      term: 5,
      snapshot: { index: 40, term: 4, configuration: { voters: [1, 2, 3], addresses: { 1: 'http://127.0.0.1:3001' } } },
    });
    expect(Buffer.from(handler.installs[0]!.data).equals(DATA)).toBe(true);
    // The last chunk again (its answer was lost): the same answer, not a second installation.
    expect((await post(url, chunk('last'))).json).toEqual({ term: 6, match_index: 40 });
    expect(handler.installs).toHaveLength(1);
  });

  for (const contentType of ['application/vnd.raft+json', 'application/json']) {
    it(`answers 400 with a message for every malformed chunk, never calls the node, and keeps nothing (${contentType})`, async () => {
      const { url, handler, assembler } = await startApp();
      for (const [name, body, message] of MALFORMED) {
        const answer = await post(url, body, contentType);
        expect(answer.status, name).toBe(400);
        const parsedByNest = contentType === 'application/json' && ['not JSON', 'null', 'an array'].includes(name);
        if (!parsedByNest) {
          const expected = contentType === 'application/json' && name === 'an empty body' ? 'term is required' : message;
          expect(answer.json.error, name).toContain(expected);
          expect(answer.json.code, name).toMatch(/^invalid_(body|json)$/);
        }
        expect(assembler.pending(), name).toEqual([]);
      }
      expect(handler.installs).toEqual([]);
    });
  }

  it('a malformed chunk in the middle of a transfer changes nothing: the transfer continues where it was', async () => {
    const { url, handler, assembler } = await startApp();
    await post(url, chunk('first'));
    for (const [name, body] of MALFORMED) expect((await post(url, body)).status, name).toBe(400);
    expect(assembler.pending()).toMatchObject([{ received: 20 }]);
    expect((await post(url, chunk('last'))).json).toEqual({ term: 6, match_index: 40 });
    expect(Buffer.from(handler.installs[0]!.data).equals(DATA)).toBe(true);
  });

  it('refuses a snapshot above maxSnapshotBytes (413), a stale one (409), bytes that do not match the digest (409)', async () => {
    const { url, handler } = await startApp({ limits: { maxSnapshotBytes: 40 } });
    const tooLarge = await post(url, chunk('first'));
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json).toMatchObject({ code: 'snapshot_too_large', error: 'the snapshot is 44 bytes, more than the limit of 40 bytes (maxSnapshotBytes)' });

    const small = Buffer.from('0123456789');
    const newer = { ...chunk(), term: 7, leader_id: 3, size: 10, offset: 0, data: small.subarray(0, 4).toString('base64'), done: false, digest: undefined };
    expect((await post(url, newer)).json).toEqual({ term: 7, next_offset: 4 });
    const stale = await post(url, { ...newer, term: 6, leader_id: 1 });
    expect(stale.status).toBe(409);
    expect(stale.json).toMatchObject({ code: 'snapshot_stale' });

    const wrong = await post(url, { ...newer, offset: 4, data: small.subarray(4).toString('base64'), done: true, digest: digest(Buffer.from('something else')) });
    expect(wrong.status).toBe(409);
    expect(wrong.json).toMatchObject({ code: 'snapshot_digest_mismatch' });
    expect(handler.installs).toEqual([]);
  });

  it('answers 501 when the node takes no snapshots (after validating the body), and 409 wrong_node for another addressee', async () => {
    const plain: RaftRpcHandler = {
      id: SELF,
      appendEntries: async () => { throw new Error('not used'); },
      requestVote: async () => { throw new Error('not used'); },
      command: async () => null,
      setConfiguration: async () => undefined,
    };
    const { url } = await startApp({ handler: plain });
    expect((await post(url, chunkWith((b) => (b.term = 'x')))).status).toBe(400);
    const answer = await post(url, chunk());
    expect(answer.status).toBe(501);
    expect(answer.json).toMatchObject({ code: 'snapshot_unsupported', error: 'node 2 does not take snapshots (its RPC handler has no installSnapshot)' });

    const other = await startApp();
    const misdirected = await post(other.url, chunk(), 'application/vnd.raft+json', { 'x-raft-to': '3' });
    expect(misdirected.status).toBe(409);
    expect(misdirected.json).toMatchObject({ code: 'wrong_node' });
    expect(other.handler.installs).toEqual([]);
  });

  it('maps the node\'s errors like the other RPCs: stopped and storage failure 503, lost leadership 503, anything else 500', async () => {
    const { url, handler: node } = await startApp();
    const cases: Array<[Error, number, string]> = [
      [new NodeStoppedError(), 503, 'node_stopped'],
      [new StorageFailureError(new Error('disk full')), 503, 'storage_failure'],
      [new LeadershipLostError(), 503, 'leadership_lost'],
      [new Error('boom'), 500, 'internal'],
    ];
    for (const [error, status, code] of cases) {
      node.failWith = error;
      const answer = await post(url, chunk());
      expect(answer.status, code).toBe(status);
      expect(answer.json.code, code).toBe(code);
    }
    // A failed installation is forgotten: the next attempt installs.
    node.failWith = undefined;
    expect((await post(url, chunk())).json).toEqual({ term: 6, match_index: 40 });
  });
});
