import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, RequestVoteRequest, RequestVoteResponse } from '../../lib/core/types.js';
import { createRaftRpcController } from '../../lib/nest/raft-rpc.controller.js';
import { DEFAULT_RPC_LIMITS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, type RaftRpcLimits } from '../../lib/nest/raft.constants.js';
import type { RaftMembershipView } from '../../lib/nest/security/membership-view.js';
import { RaftRpcSecurity, type RaftRpcSecurityOptions } from '../../lib/nest/security/raft-rpc-security.js';
import type { RaftRateLimitOptions } from '../../lib/nest/security/rate-limiter.js';
import { RAFT_RPC_SECURITY } from '../../lib/nest/security/security.constants.js';
import { AUTH_HEADERS } from '../../lib/transport/auth.js';
import type { RaftMember, RaftRpcHandler, RpcOptions } from '../../lib/transport/transport.js';
import { send, sendSigned, signedHeaders, type Signing } from './helpers.js';

/**
 * Every refusal of the RPC endpoints' peer authentication, against a real Nest application on a
 * loopback address, with the node replaced by a recorder: a refused request never reaches it.
 */
const HOST = '127.0.0.20';
const SELF = 2;
const CLUSTER = 'security-test';
const SECRET = 'security test secret, 32 bytes!!';
const OTHER_SECRET = 'some other cluster secret, 32 b!';

type Method = 'appendEntries' | 'requestVote' | 'command' | 'setConfiguration' | 'installSnapshot';

class RecordingHandler implements RaftRpcHandler {
  readonly id = SELF;
  readonly calls: Method[] = [];
  async appendEntries(request: AppendEntriesRequest): Promise<AppendEntriesResponse> {
    this.calls.push('appendEntries');
    const matchIndex = request.prevLogIndex + request.entries.length;
    return { type: 'AppendEntriesResponse', from: SELF, to: request.from, term: request.term, success: true, matchIndex, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 };
  }
  async requestVote(request: RequestVoteRequest): Promise<RequestVoteResponse> {
    this.calls.push('requestVote');
    return { type: 'RequestVoteResponse', from: SELF, to: request.from, term: request.term, voteGranted: false, preVote: request.preVote };
  }
  async command(command: Uint8Array, _options?: RpcOptions): Promise<unknown> {
    this.calls.push('command');
    return command.length;
  }
  async setConfiguration(_members: readonly RaftMember[], _options?: RpcOptions): Promise<void> {
    this.calls.push('setConfiguration');
  }
  async installSnapshot(request: InstallSnapshotRequest, _data: Uint8Array): Promise<InstallSnapshotResponse> {
    this.calls.push('installSnapshot');
    return { type: 'InstallSnapshotResponse', from: SELF, to: request.from, term: request.term, matchIndex: request.snapshot.index };
  }
}

interface App {
  readonly url: string;
  readonly handler: RecordingHandler;
}

const apps: INestApplication[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

interface AppOptions {
  readonly mode?: RaftRpcSecurityOptions['mode'];
  readonly secret?: string;
  readonly previousSecrets?: string[];
  readonly rateLimit?: RaftRateLimitOptions | false;
  readonly membership?: RaftMembershipView;
  readonly limits?: Partial<RaftRpcLimits>;
  readonly rawBody?: boolean;
}

async function startApp(options: AppOptions = {}): Promise<App> {
  const handler = new RecordingHandler();
  const security = new RaftRpcSecurity({
    mode: options.mode ?? 'authenticated',
    nodeId: SELF,
    clusterId: CLUSTER,
    ...(options.mode === 'closed' ? {} : { secret: options.secret ?? SECRET }),
    ...(options.previousSecrets ? { previousSecrets: options.previousSecrets } : {}),
    ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
    ...(options.membership ? { membership: options.membership } : {}),
    logger: { warn: () => undefined },
  });
  const moduleRef = await Test.createTestingModule({
    controllers: [createRaftRpcController('/raft')],
    providers: [
      { provide: RAFT_RPC_HANDLER, useValue: handler },
      { provide: RAFT_RPC_LIMITS, useValue: { ...DEFAULT_RPC_LIMITS, ...options.limits } },
      { provide: RAFT_RPC_SECURITY, useValue: security },
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false, ...(options.rawBody ? { rawBody: true } : {}) });
  apps.push(app);
  await app.listen(0, HOST);
  const port = (app.getHttpServer().address() as { port: number }).port;
  return { url: `http://${HOST}:${port}`, handler };
}

const peer = (sender = 1, extra: Partial<Signing> = {}): Signing => ({ secret: SECRET, sender, clusterId: CLUSTER, to: SELF, ...extra });

const heartbeat = (leader = 1, term = 3) => ({ term, leader_id: leader, prev_log_index: 0, prev_log_term: 0, entries: [], commit_index: 0 });
const vote = (candidate = 1, term = 3) => ({ term, candidate_id: candidate, last_log_index: 0, last_log_term: 0 });
const configuration = { peers: [{ id: 1, url: 'http://127.0.0.1:1' }, { id: 2, url: 'http://127.0.0.1:2' }] };
const SNAPSHOT = Buffer.from('a snapshot of the state machine');
/** A whole snapshot in one chunk (or its first `first` bytes, not done), sent by `leader`. */
const snapshotChunk = (leader = 1, term = 3, first?: number) => ({
  term,
  leader_id: leader,
  last_included_index: 10,
  last_included_term: 2,
  configuration: { voters: [1, 2, 3] },
  size: SNAPSHOT.length,
  offset: 0,
  data: SNAPSHOT.subarray(0, first ?? SNAPSHOT.length).toString('base64'),
  done: first === undefined,
  ...(first === undefined ? { digest: createHash('sha256').update(SNAPSHOT).digest('hex') } : {}),
});

/** [route, a valid body for it, its content type]. */
const ROUTES: Array<[string, string, string]> = [
  ['appendentries', JSON.stringify(heartbeat()), 'application/vnd.raft+json'],
  ['requestvote', JSON.stringify(vote()), 'application/vnd.raft+json'],
  ['command', 'hello', 'application/octet-stream'],
  ['setconfiguration', JSON.stringify(configuration), 'application/vnd.raft+json'],
  ['installsnapshot', JSON.stringify(snapshotChunk()), 'application/vnd.raft+json'],
];

describe('peer authentication of the RPC endpoints', () => {
  it('accepts a correctly signed request on every route, and answers GET /id unsigned', async () => {
    const { url, handler } = await startApp();
    for (const [route, body, contentType] of ROUTES) {
      const target = `${url}/raft/${route}`;
      const reply = await send(target, { body, headers: signedHeaders(peer(), target, body, contentType) });
      expect(reply.status, `${route}: ${reply.text}`).toBe(200);
    }
    expect(handler.calls).toEqual(['appendEntries', 'requestVote', 'command', 'setConfiguration', 'installSnapshot']);
    expect(await send(`${url}/raft/id`, { method: 'GET' })).toMatchObject({ status: 200, text: String(SELF) });
  });

  it('refuses unsigned requests with 401 on every POST route, and never calls the node', async () => {
    const { url, handler } = await startApp();
    for (const [route, body, contentType] of ROUTES) {
      const reply = await send(`${url}/raft/${route}`, { body, headers: { 'content-type': contentType } });
      expect(reply.status, route).toBe(401);
      expect(reply.json).toMatchObject({ code: 'unauthenticated' });
      expect(reply.json.error).toMatch(/peer authentication required/);
    }
    expect(handler.calls).toEqual([]);
  });

  it('refuses a forged signature (another secret) and a signature over anything else than what was sent, with 401', async () => {
    const { url, handler } = await startApp();
    const target = `${url}/raft/appendentries`;
    const body = JSON.stringify(heartbeat());
    const forged = await sendSigned(peer(1, { secret: OTHER_SECRET }), target, body);
    expect(forged.status).toBe(401);
    expect(forged.json).toMatchObject({ code: 'invalid_signature' });

    const signed = signedHeaders(peer(), target, body);
    const tampered: Array<[string, Record<string, string>, string, string]> = [
      ['another body', signed, target, JSON.stringify(heartbeat(1, 4))],
      ['a body with a byte more', signed, target, `${body} `],
      ['another path', signed, `${url}/raft/requestvote`, body],
      ['another sender header', { ...signed, [AUTH_HEADERS.sender]: '3' }, target, body],
      ['another timeout header', { ...signed, 'x-raft-timeout-ms': '5' }, target, body],
      ['another timestamp', { ...signed, [AUTH_HEADERS.timestamp]: String(Number(signed[AUTH_HEADERS.timestamp]) + 1) }, target, body],
      ['another nonce', { ...signed, [AUTH_HEADERS.nonce]: 'AAAAAAAAAAAAAAAAAAAAAA' }, target, body],
      ['a flipped signature', { ...signed, [AUTH_HEADERS.signature]: flip(signed[AUTH_HEADERS.signature]!) }, target, body],
    ];
    for (const [what, headers, where, sent] of tampered) {
      const reply = await send(where, { body: sent, headers });
      expect(reply.status, what).toBe(401);
      expect(reply.json.code, what).toBe('invalid_signature');
    }
    expect(handler.calls).toEqual([]);
  });

  it('refuses malformed authentication headers with 401', async () => {
    const { url } = await startApp();
    const target = `${url}/raft/appendentries`;
    const body = JSON.stringify(heartbeat());
    const good = signedHeaders(peer(), target, body);
    const cases: Array<[string, Record<string, string | undefined>]> = [
      ['no sender', { [AUTH_HEADERS.sender]: undefined }],
      ['sender 0', { [AUTH_HEADERS.sender]: '0' }],
      ['sender -1', { [AUTH_HEADERS.sender]: '-1' }],
      ['sender 1.5', { [AUTH_HEADERS.sender]: '1.5' }],
      ['sender above 2^53', { [AUTH_HEADERS.sender]: '9007199254740993' }],
      ['no cluster', { [AUTH_HEADERS.cluster]: undefined }],
      ['timestamp NaN', { [AUTH_HEADERS.timestamp]: 'NaN' }],
      ['timestamp float', { [AUTH_HEADERS.timestamp]: '1.5' }],
      ['short nonce', { [AUTH_HEADERS.nonce]: 'abc' }],
      ['signature not base64url', { [AUTH_HEADERS.signature]: '!'.repeat(43) }],
      ['signature too short', { [AUTH_HEADERS.signature]: 'A'.repeat(42) }],
      ['no addressee', { 'x-raft-to': undefined }],
    ];
    for (const [what, change] of cases) {
      const headers = Object.fromEntries(Object.entries({ ...good, ...change }).filter(([, v]) => v !== undefined)) as Record<string, string>;
      const reply = await send(target, { body, headers });
      expect(reply.status, `${what}: ${reply.text}`).toBe(401);
      expect(['invalid_auth_headers', 'unauthenticated'], what).toContain(reply.json.code);
    }
  });

  it('refuses a timestamp outside the ±30 s window with 401 (stale, and from the future)', async () => {
    const { url, handler } = await startApp();
    const target = `${url}/raft/appendentries`;
    for (const offset of [-31_000, 31_000, -3_600_000]) {
      const reply = await sendSigned(peer(1, { now: () => Date.now() + offset }), target, heartbeat());
      expect(reply.status, String(offset)).toBe(401);
      expect(reply.json).toMatchObject({ code: 'stale_timestamp' });
    }
    // Inside the window: accepted.
    expect((await sendSigned(peer(1, { now: () => Date.now() - 20_000 }), target, heartbeat())).status).toBe(200);
    expect(handler.calls).toEqual(['appendEntries']);
  });

  it('refuses a replayed request with 401, and the same request sent to another node with 409', async () => {
    const { url, handler } = await startApp();
    const target = `${url}/raft/appendentries`;
    const body = JSON.stringify(heartbeat());
    const headers = signedHeaders(peer(), target, body);
    expect((await send(target, { body, headers })).status).toBe(200);
    const replay = await send(target, { body, headers });
    expect(replay.status).toBe(401);
    expect(replay.json).toMatchObject({ code: 'replayed' });
    // Captured on its way to node 3: this node (2) is not its addressee, and x-raft-to is signed.
    const meantFor3 = signedHeaders(peer(1, { to: 3 }), target, body);
    expect((await send(target, { body, headers: meantFor3 })).status).toBe(409);
    expect((await send(target, { body, headers: { ...meantFor3, 'x-raft-to': String(SELF) } })).json).toMatchObject({ code: 'invalid_signature' });
    expect(handler.calls).toEqual(['appendEntries']);
  });

  it('refuses a request signed for another cluster with 412', async () => {
    const { url, handler } = await startApp();
    const reply = await sendSigned(peer(1, { clusterId: 'another-cluster' }), `${url}/raft/appendentries`, heartbeat());
    expect(reply.status).toBe(412);
    expect(reply.json).toMatchObject({ code: 'wrong_cluster' });
    expect(reply.json.error).toMatch(/cluster "security-test", not "another-cluster"/);
    expect(handler.calls).toEqual([]);
  });

  it('refuses a body that speaks for another node than its signer with 403, and a request signed as the receiver', async () => {
    const { url, handler } = await startApp();
    const asLeader = await sendSigned(peer(3), `${url}/raft/appendentries`, heartbeat(1));
    expect(asLeader.status).toBe(403);
    expect(asLeader.json).toMatchObject({ code: 'sender_mismatch' });
    expect(asLeader.json.error).toBe('the request is signed by node 3, but its leader_id is 1');
    const asCandidate = await sendSigned(peer(3), `${url}/raft/requestvote`, vote(4));
    expect(asCandidate.status).toBe(403);
    expect(asCandidate.json.error).toMatch(/candidate_id is 4/);
    const asSelf = await sendSigned(peer(SELF), `${url}/raft/appendentries`, heartbeat(1));
    expect(asSelf.status).toBe(403);
    expect(asSelf.json).toMatchObject({ code: 'sender_is_self' });
    expect(handler.calls).toEqual([]);
  });

  it('refuses a removed node with 410 up to the term of its removal, and accepts it in a later term (added back)', async () => {
    const membership: RaftMembershipView = { removal: (id) => (id === 3 ? { removedInTerm: 5 } : undefined) };
    const { url, handler } = await startApp({ membership });
    for (const term of [4, 5]) {
      const reply = await sendSigned(peer(3), `${url}/raft/appendentries`, heartbeat(3, term));
      expect(reply.status, `term ${term}`).toBe(410);
      expect(reply.json).toMatchObject({ code: 'removed' });
    }
    expect((await sendSigned(peer(3), `${url}/raft/requestvote`, vote(3, 5))).status).toBe(410);
    const command = 'x';
    const target = `${url}/raft/command`;
    expect((await send(target, { body: command, headers: signedHeaders(peer(3), target, command, 'application/octet-stream') })).status).toBe(410);
    expect(handler.calls).toEqual([]);
    // A leader in a term after its removal can only have been elected in a configuration that has it again.
    expect((await sendSigned(peer(3), `${url}/raft/appendentries`, heartbeat(3, 6))).status).toBe(200);
    expect((await sendSigned(peer(1), `${url}/raft/appendentries`, heartbeat(1, 4))).status).toBe(200);
    expect(handler.calls).toEqual(['appendEntries', 'appendEntries']);
  });

  it('accepts a correctly signed request from a leader it has never heard of (a newly added node)', async () => {
    const membership: RaftMembershipView = { removal: () => undefined };
    const { url, handler } = await startApp({ membership });
    const reply = await sendSigned(peer(42), `${url}/raft/appendentries`, heartbeat(42, 9));
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ term: 9, success: true });
    expect((await sendSigned(peer(42), `${url}/raft/requestvote`, vote(42, 10))).status).toBe(200);
    expect(handler.calls).toEqual(['appendEntries', 'requestVote']);
  });

  it('answers 413 for a body above the limit before checking its signature, and 400 beyond maxEntriesPerAppend or maxCommandBytes', async () => {
    const { url, handler } = await startApp({ limits: { bodyLimitBytes: 1024, maxEntriesPerAppend: 4, maxCommandBytes: 16 } });
    const target = `${url}/raft/appendentries`;
    const big = JSON.stringify({ ...heartbeat(), pad: 'x'.repeat(2000) });
    // Declared: refused from the content-length, after only part of the body was sent.
    const declared = await send(target, { body: big, truncateTo: 100, headers: signedHeaders(peer(), target, big) });
    expect(declared.status).toBe(413);
    expect(declared.json).toMatchObject({ code: 'body_too_large' });
    // Streamed (chunked, no content-length): refused once the limit is passed.
    const chunked = await send(target, { body: big, chunked: true, headers: signedHeaders(peer(), target, big) });
    expect(chunked.status).toBe(413);
    // Unsigned: refused before the body is even looked at.
    expect((await send(target, { body: big, truncateTo: 100, headers: { 'content-type': 'application/vnd.raft+json' } })).status).toBe(401);
    const tooMany = { ...heartbeat(), term: 3, entries: Array.from({ length: 5 }, (_, i) => ({ index: i + 1, term: 1, command: '' })) };
    const many = await sendSigned(peer(), target, tooMany);
    expect(many.status).toBe(400);
    expect(many.json.error).toMatch(/more than maxEntriesPerAppend \(4\)/);
    const longCommand = { ...heartbeat(), entries: [{ index: 1, term: 1, command: Buffer.alloc(17).toString('base64') }] };
    expect((await sendSigned(peer(), target, longCommand)).json.error).toMatch(/more than maxCommandBytes \(16\)/);
    const commandTarget = `${url}/raft/command`;
    const command = 'x'.repeat(17);
    const forwarded = await send(commandTarget, { body: command, headers: signedHeaders(peer(), commandTarget, command, 'application/octet-stream') });
    expect(forwarded.status).toBe(413);
    expect(handler.calls).toEqual([]);
  });

  it('throttles unauthenticated requests per address with 429 before any signature work; authenticated peers are not throttled', async () => {
    const { url, handler } = await startApp({ rateLimit: { burst: 5, perSecond: 1 } });
    const target = `${url}/raft/appendentries`;
    const attacker = '127.0.0.21';
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await send(target, { body: '{}', localAddress: attacker, headers: { 'content-type': 'application/json' } })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    const throttled = await send(target, { body: '{}', localAddress: attacker });
    expect(throttled.headers['retry-after']).toMatch(/^[0-9]+$/);
    expect(throttled.json).toMatchObject({ code: 'rate_limited' });
    // Even a correctly signed request from the throttled address is refused before its signature is checked.
    expect((await sendSigned(peer(), target, heartbeat(), { localAddress: attacker })).status).toBe(429);
    // GET /id is throttled too.
    expect((await send(`${url}/raft/id`, { method: 'GET', localAddress: attacker })).status).toBe(429);
    // Another address, a peer: signed requests never spend tokens, however many.
    const peerAddress = '127.0.0.22';
    for (let i = 0; i < 20; i++) expect((await sendSigned(peer(), target, heartbeat(), { localAddress: peerAddress })).status).toBe(200);
    expect(handler.calls.length).toBe(20);
    // A third address that failed a few times still has tokens left for its next correct request.
    const other = '127.0.0.23';
    for (let i = 0; i < 4; i++) expect((await send(target, { body: '{}', localAddress: other })).status).toBe(401);
    expect((await sendSigned(peer(), target, heartbeat(), { localAddress: other })).status).toBe(200);
  });

  it('accepts a previous secret during a rotation, and nothing else', async () => {
    const NEW = 'the new cluster secret, 32 bytes';
    const rotating = await startApp({ secret: NEW, previousSecrets: [SECRET] });
    const target = `${rotating.url}/raft/appendentries`;
    expect((await sendSigned(peer(1, { secret: SECRET }), target, heartbeat())).status).toBe(200);
    expect((await sendSigned(peer(1, { secret: NEW }), target, heartbeat())).status).toBe(200);
    expect((await sendSigned(peer(1, { secret: OTHER_SECRET }), target, heartbeat())).status).toBe(401);
    // A node that has not been given the new secret yet refuses it: rotate verification first, signing second.
    const old = await startApp({ secret: SECRET });
    expect((await sendSigned(peer(1, { secret: NEW }), `${old.url}/raft/appendentries`, heartbeat())).status).toBe(401);
  });

  it('checks the exact bytes of application/json bodies: 415 when the app\'s parser consumed them, verified with rawBody', async () => {
    const plain = await startApp();
    const body = JSON.stringify(heartbeat());
    const target = `${plain.url}/raft/appendentries`;
    const consumed = await send(target, { body, headers: signedHeaders(peer(), target, body, 'application/json') });
    expect(consumed.status).toBe(415);
    expect(consumed.json.error).toMatch(/rawBody: true/);
    const raw = await startApp({ rawBody: true });
    const rawTarget = `${raw.url}/raft/appendentries`;
    expect((await send(rawTarget, { body, headers: signedHeaders(peer(), rawTarget, body, 'application/json') })).status).toBe(200);
    // Not JSON at all: 415 once the caller holds well-formed headers.
    expect((await send(rawTarget, { body, headers: signedHeaders(peer(), rawTarget, body, 'text/plain') })).status).toBe(415);
  });

  it('a single node without a secret (closed) refuses every peer RPC with 401', async () => {
    const { url, handler } = await startApp({ mode: 'closed' });
    for (const [route, body, contentType] of ROUTES) {
      const reply = await send(`${url}/raft/${route}`, { body, headers: signedHeaders(peer(), `${url}/raft/${route}`, body, contentType) });
      expect(reply.status, route).toBe(401);
      expect(reply.json).toMatchObject({ code: 'auth_not_configured' });
    }
    expect(handler.calls).toEqual([]);
    expect((await send(`${url}/raft/id`, { method: 'GET' })).status).toBe(200);
  });

  it('puts InstallSnapshot chunks through the same checks: unsigned, forged, replayed, another leader, removed, throttled; signed ones are assembled', async () => {
    const membership: RaftMembershipView = { removal: (id) => (id === 3 ? { removedInTerm: 5 } : undefined) };
    const { url, handler } = await startApp({ membership, rateLimit: { burst: 2, perSecond: 0.1 } });
    const target = `${url}/raft/installsnapshot`;
    const first = JSON.stringify(snapshotChunk(1, 3, 10));
    const attacker = '127.0.0.24';
    expect((await send(target, { body: first, localAddress: attacker, headers: { 'content-type': 'application/vnd.raft+json' } })).json).toMatchObject({ code: 'unauthenticated' });
    expect((await sendSigned(peer(1, { secret: OTHER_SECRET }), target, first, { localAddress: attacker })).json).toMatchObject({ code: 'invalid_signature' });
    const signed = signedHeaders(peer(), target, first);
    expect((await send(target, { body: first, headers: signed })).json).toEqual({ term: 3, next_offset: 10 });
    expect((await send(target, { body: first, headers: signed })).json).toMatchObject({ code: 'replayed' });
    const asAnother = await sendSigned(peer(4), target, snapshotChunk(1));
    expect(asAnother.status).toBe(403);
    expect(asAnother.json.error).toBe('the request is signed by node 4, but its leader_id is 1');
    expect((await sendSigned(peer(3), target, snapshotChunk(3, 5))).status).toBe(410);
    expect((await sendSigned(peer(1, { clusterId: 'another-cluster' }), target, snapshotChunk(1))).status).toBe(412);
    expect((await sendSigned(peer(1, { to: 3 }), target, snapshotChunk(1))).status).toBe(409);
    expect((await sendSigned(peer(), target, { ...snapshotChunk(), term: 'x' })).status).toBe(400);
    // The throttled address is refused before any signature work, on this route too.
    expect((await send(target, { body: first, localAddress: attacker })).status).toBe(429);
    expect(handler.calls).toEqual([]);
    // The rest of the snapshot, correctly signed, completes it.
    const rest = { ...snapshotChunk(1, 3), offset: 10, data: SNAPSHOT.subarray(10).toString('base64') };
    const done = await sendSigned(peer(), target, rest);
    expect(done.json).toEqual({ term: 3, match_index: 10 });
    expect(handler.calls).toEqual(['installSnapshot']);
  });

  it('answers malformed bodies of authenticated peers with 400, never 5xx, and never calls the node', async () => {
    const { url, handler } = await startApp();
    const target = `${url}/raft/appendentries`;
    const bodies = ['', 'not json', '{"term":', 'null', '[]', '{"term":1e999}', `{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}`, '\u0000', '{"__proto__":{}}'];
    for (const body of bodies) {
      const reply = await sendSigned(peer(), target, body);
      expect(reply.status, body.slice(0, 30)).toBe(400);
      expect(reply.json.error).toMatch(/./);
    }
    const invalidUtf8 = Buffer.from([0x7b, 0xff, 0x7d]);
    const reply = await send(target, { body: invalidUtf8, headers: signedHeaders(peer(), target, invalidUtf8) });
    expect(reply.status).toBe(400);
    expect(handler.calls).toEqual([]);
  });
});

function flip(signature: string): string {
  const bytes = Buffer.from(signature, 'base64url');
  bytes[0]! ^= 1;
  return bytes.toString('base64url');
}
