/**
 * The fuzzer's requests: every one of them is bad — unauthenticated, forged, replayed, stale, signed
 * for another sender, cluster or node, oversized, truncated, not JSON, of the wrong type, with
 * negative/huge/NaN/float numbers, unknown fields, deep nesting, huge arrays, invalid base64 — so a
 * 2xx answer is a bug ("accepted"), and so is a 5xx. Each request says which answers are expected:
 *
 * - unauthenticated ones (no, forged, stale or malformed signature) come from throttled addresses and
 *   expect 401 or 429;
 * - requests correctly signed with the cluster secret (an insider's bugs: wrong sender, wrong cluster,
 *   malformed bodies …) come from their own address and expect the exact refusal (400, 403, 409, 412,
 *   413, 415, and 401 for a replay);
 * - requests to the sample's public API expect a 4xx.
 */
import { createHash } from 'node:crypto';
import { createRaftRequestSigner } from '../../lib/transport/auth.js';
import { RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE, TIMEOUT_HEADER, TO_HEADER, encodeAppendEntriesBinary, encodeCommandBatch } from '../../lib/transport/wire.js';
import type { FuzzNode } from './cluster.js';
import type { FuzzRandom } from './prng.js';

export type Expected = readonly number[] | '4xx';

export interface FuzzRequest {
  /** What the request tries, e.g. `rpc/forged`. */
  readonly kind: string;
  readonly url: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  readonly localAddress?: string;
  /** Send only this many bytes of the body, then wait for the answer. */
  readonly truncateTo?: number;
  readonly chunked?: boolean;
  /** Bytes written as they are on a raw connection (malformed HTTP). */
  readonly raw?: Buffer;
  readonly expect: Expected;
  /** The error code the answer must carry, when it matters (`replayed`). */
  readonly expectCode?: string;
  /** Sent right after this one, with its answer checked the same way (a replay). */
  readonly then?: FuzzRequest;
  /** Sent this many times in a row (a flood), each answer checked. */
  readonly repeat?: number;
}

export interface FuzzContext {
  readonly nodes: readonly FuzzNode[];
  readonly clusterId: string;
  readonly secret: string;
  readonly adminToken: string;
  /** The cluster's term when the fuzzing started. */
  readonly term: number;
  /** Largest body the RPC endpoints read (the module's default) and largest command. */
  readonly bodyLimitBytes: number;
  readonly maxCommandBytes: number;
  readonly maxEntriesPerAppend: number;
}

/** Addresses unauthenticated requests come from: 127.0.0.1 (shared with the nodes, so trusted) and throttled ones. */
export const UNAUTHENTICATED_SOURCES = ['127.0.0.1', '127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24', '127.0.0.25', '127.0.0.26', '127.0.0.27', '127.0.0.28', '127.0.0.29'];
/** Addresses of floods of unauthenticated requests (throttled: the tests expect 429s from them). */
export const FLOOD_SOURCES = ['127.0.0.31', '127.0.0.32', '127.0.0.33', '127.0.0.34'];
/** Where correctly signed requests come from (their tokens are given back, so they are never throttled). */
export const SIGNED_SOURCE = '127.0.0.30';

const JSON_ROUTES = ['appendentries', 'requestvote', 'setconfiguration', 'installsnapshot'] as const;
type JsonRoute = (typeof JSON_ROUTES)[number];
const POST_ROUTES = [...JSON_ROUTES, 'command', 'commands'] as const;
type PostRoute = (typeof POST_ROUTES)[number];
const OTHER_SECRETS = ['a different cluster secret 0123', 'raft', '', 'nestjs-raft integration test cluster secret'];

// ------------------------------------------------------------------------------------------ bodies

function b64(rng: FuzzRandom, max = 24): string {
  return rng.bytes(rng.int(max + 1)).toString('base64');
}

/** A well-formed AppendEntries body sent by `leader`. */
function appendBody(rng: FuzzRandom, leader: number, term: number): Record<string, any> {
  const prev = rng.chance(0.3) ? 0 : rng.between(1, 50);
  const prevTerm = prev === 0 ? 0 : rng.between(1, term);
  const entries = Array.from({ length: rng.int(4) }, (_, i) => ({ index: prev + 1 + i, term: Math.max(prevTerm, 1, Math.min(term, prevTerm + i)), command: b64(rng) }));
  return { term, leader_id: leader, prev_log_index: prev, prev_log_term: prevTerm, entries, commit_index: rng.between(0, prev) };
}

function voteBody(rng: FuzzRandom, candidate: number, term: number): Record<string, any> {
  const last = rng.chance(0.3) ? 0 : rng.between(1, 50);
  return { term, candidate_id: candidate, last_log_index: last, last_log_term: last === 0 ? 0 : rng.between(1, term), ...(rng.chance(0.5) ? { pre_vote: true } : {}) };
}

/**
 * A well-formed InstallSnapshot chunk sent by `leader`: the first part of a small snapshot, or its last
 * part (done, with the digest). Only ever sent in ways that are refused before the snapshot assembler
 * (unsigned, another sender, cluster or addressee …) or after a mutation that makes it invalid.
 */
function snapshotBody(rng: FuzzRandom, ctx: FuzzContext, leader: number, term: number): Record<string, any> {
  const data = rng.bytes(rng.int(65));
  const split = rng.int(data.length + 1);
  const done = rng.chance(0.5);
  const [from, to] = done ? [split, data.length] : [0, split];
  return {
    term,
    leader_id: leader,
    last_included_index: rng.between(1, 50),
    last_included_term: rng.between(1, term),
    configuration: { voters: ctx.nodes.map((n) => n.id), ...(rng.chance(0.5) ? { addresses: Object.fromEntries(ctx.nodes.map((n) => [String(n.id), n.rpcUrl])) } : {}) },
    size: data.length,
    offset: from,
    data: data.subarray(from, to).toString('base64'),
    done,
    ...(done ? { digest: createHash('sha256').update(data).digest('hex') } : {}),
  };
}

function configurationBody(ctx: FuzzContext): Record<string, any> {
  return { peers: ctx.nodes.map((n) => ({ id: n.id, url: n.rpcUrl })) };
}

function validBody(rng: FuzzRandom, ctx: FuzzContext, route: JsonRoute, sender: number): Record<string, any> {
  const term = ctx.term + rng.between(0, 3);
  if (route === 'appendentries') return appendBody(rng, sender, Math.max(1, term));
  if (route === 'requestvote') return voteBody(rng, sender, Math.max(1, term));
  if (route === 'installsnapshot') return snapshotBody(rng, ctx, sender, Math.max(1, term));
  return configurationBody(ctx);
}

const REQUIRED_NUMBERS: Record<JsonRoute, readonly string[]> = {
  appendentries: ['term', 'leader_id', 'prev_log_index', 'prev_log_term', 'commit_index'],
  requestvote: ['term', 'candidate_id', 'last_log_index', 'last_log_term'],
  setconfiguration: [],
  installsnapshot: ['term', 'leader_id', 'last_included_index', 'last_included_term', 'size', 'offset'],
};

function deepArray(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** One way to make a JSON body certainly invalid, and the body's text. */
function malformedBody(rng: FuzzRandom, ctx: FuzzContext, route: JsonRoute, sender: number): { mutation: string; text: string } {
  const body = validBody(rng, ctx, route, sender);
  const numbers = REQUIRED_NUMBERS[route];
  const pickNumber = () => rng.pick(numbers);
  const mutations: Array<[string, () => string]> = [
    ['truncated', () => {
      const text = JSON.stringify(body);
      return text.slice(0, rng.int(text.length));
    }],
    ['non-JSON', () => rng.pick([rng.bytes(rng.between(1, 200)).toString('latin1'), '<xml/>', 'term=1&leader_id=2', "{'term': 1}", '{term: 1}', '\u0000\u0001', 'undefined', '{"a":1,}'])],
    ['top-level', () => rng.pick(['null', '[]', '"text"', '42', 'true', '[{"term":1}]', '-0'])],
    ['empty', () => ''],
    ['unknown field', () => JSON.stringify({ ...body, [rng.pick(['extra', 'leaderId', 'constructor', 'prototype', 'toString', 'success', 'entries2'])]: rng.pick([1, 'x', null, {}, []]) })],
    ['__proto__', () => JSON.stringify(body).replace(/^\{/, `{"__proto__":${rng.pick(['{"isAdmin":true}', '[]', '1', 'null'])},`)],
    ['deep nesting', () => JSON.stringify(body).replace(/\}$/, `,"x":${deepArray(rng.between(9, 30_000))}}`)],
    ['missing field', () => {
      const key = rng.pick(
        route === 'setconfiguration'
          ? ['peers']
          : [...numbers, ...(route === 'appendentries' ? ['entries'] : []), ...(route === 'installsnapshot' ? ['configuration', 'data', 'done'] : [])],
      );
      const copy = { ...body };
      delete copy[key];
      return JSON.stringify(copy);
    }],
  ];
  if (route !== 'setconfiguration') {
    mutations.push(
      ['negative number', () => JSON.stringify({ ...body, [pickNumber()]: -rng.between(1, 1_000_000) })],
      ['huge number', () => JSON.stringify(body).replace(new RegExp(`"${pickNumber()}":[0-9]+`), (m) => `${m.split(':')[0]}:${rng.pick(['9007199254740992', '9007199254740993', '1e300', '1e400', '18446744073709551616', '-1e400'])}`)],
      ['float', () => JSON.stringify({ ...body, [pickNumber()]: rng.between(0, 100) + rng.pick([0.5, 0.25, 0.001, 1e-9]) })],
      ['NaN', () => JSON.stringify(body).replace(new RegExp(`"${pickNumber()}":[0-9]+`), (m) => `${m.split(':')[0]}:${rng.pick(['NaN', 'Infinity', '-Infinity', 'undefined', '0x10', '01', '+1', '.5'])}`)],
      ['wrong type', () => JSON.stringify({ ...body, [pickNumber()]: rng.pick(['3', '', true, false, null, [], {}, [1], { n: 1 }]) })],
    );
  }
  if (route === 'appendentries') {
    mutations.push(
      ['huge array', () => {
        const count = rng.between(ctx.maxEntriesPerAppend + 1, ctx.maxEntriesPerAppend * 6);
        const entries = Array.from({ length: count }, (_, i) => ({ index: body.prev_log_index + 1 + i, term: Math.max(1, body.prev_log_term), command: '' }));
        return JSON.stringify({ ...body, entries });
      }],
      ['huge voter array', () => {
        const voters = Array.from({ length: rng.between(1025, 5000) }, (_, i) => i + 1);
        const entry = { index: body.prev_log_index + 1, term: Math.max(1, body.prev_log_term), command: '', type: 'config', config: { voters } };
        return JSON.stringify({ ...body, entries: [entry] });
      }],
      ['invalid base64', () => {
        const entry = { index: body.prev_log_index + 1, term: Math.max(1, body.prev_log_term), command: rng.pick(['QR==', 'abc', '!!!!', 'aGVsbG8', '-_8=', 'aGVs bG8=', '====', 'a===', 'aGVsbG8=\n']) };
        return JSON.stringify({ ...body, entries: [entry] });
      }],
      ['entries not an array', () => JSON.stringify({ ...body, entries: rng.pick(['x', 5, { 0: {} }, true]) })],
      ['entry of the wrong shape', () => JSON.stringify({ ...body, entries: [rng.pick([5, 'x', null, [], { index: 'a', term: 1, command: '' }, { index: body.prev_log_index + 1, term: 1, command: '', type: 'snapshot' }])] })],
      ['non-consecutive entries', () => {
        const base = body.prev_log_index + 1;
        return JSON.stringify({ ...body, entries: [{ index: base, term: Math.max(1, body.prev_log_term), command: '' }, { index: base + rng.between(2, 9), term: Math.max(1, body.prev_log_term), command: '' }] });
      }],
      ['oversized command', () => {
        const entry = { index: body.prev_log_index + 1, term: Math.max(1, body.prev_log_term), command: Buffer.alloc(ctx.maxCommandBytes + 1).toString('base64') };
        return JSON.stringify({ ...body, entries: [entry] });
      }],
    );
  }
  if (route === 'requestvote') {
    mutations.push(['wrong type', () => JSON.stringify({ ...body, pre_vote: rng.pick(['true', 1, null, [], {}]) })]);
  }
  if (route === 'installsnapshot') {
    const digest = createHash('sha256').update('x').digest('hex');
    const end = body.offset + Buffer.from(body.data, 'base64').length;
    mutations.push(
      ['snapshot: invalid base64', () => JSON.stringify({ ...body, data: rng.pick(['QR==', 'abc', '!!!!', 'aGVsbG8', '-_8=', 'aGVs bG8=', '====', 'a===', 'aGVsbG8=\n', `-${'A'.repeat(399)}`, 5, null, []]) })],
      ['snapshot: offset beyond size', () => JSON.stringify({ ...body, offset: body.size + rng.between(1, 1000), data: '', done: false, digest: undefined })],
      ['snapshot: data beyond size', () => JSON.stringify({ ...body, data: rng.bytes(body.size - body.offset + rng.between(1, 100)).toString('base64') })],
      ['snapshot: done before the end', () => JSON.stringify({ ...body, size: end + rng.between(1, 100), done: true, digest })],
      ['snapshot: done without digest', () => JSON.stringify({ ...body, size: end, done: true, digest: undefined })],
      ['snapshot: digest on a middle chunk', () => JSON.stringify({ ...body, size: end + 1, done: false, digest })],
      ['snapshot: malformed digest', () => JSON.stringify({ ...body, size: end, done: true, digest: rng.pick([digest.toUpperCase(), digest.slice(1), `${digest}0`, 'z'.repeat(64), '', 7, null]) })],
      ['snapshot: done not a boolean', () => JSON.stringify({ ...body, done: rng.pick(['true', 1, 0, null, [], {}]) })],
      ['snapshot: snapshot term above term', () => JSON.stringify({ ...body, last_included_term: body.term + rng.between(1, 10) })],
      ['snapshot: index 0', () => JSON.stringify({ ...body, last_included_index: 0 })],
      ['snapshot: term 0', () => JSON.stringify({ ...body, term: 0 })],
      ['snapshot: bad configuration', () =>
        JSON.stringify({
          ...body,
          configuration: rng.pick<unknown>([
            null, [], 'all', 5, {}, { voters: [] }, { voters: [1, 1] }, { voters: [0] }, { voters: [1.5] }, { voters: ['1'] },
            { voters: Array.from({ length: rng.between(1025, 3000) }, (_, i) => i + 1) },
            { voters: [1], outgoing: [] }, { voters: [1], addresses: { x: 'http://a' } }, { voters: [1], addresses: { 1: 'ftp://a' } }, { voters: [1], learners: [2] },
          ]),
        })],
    );
  }
  if (route === 'setconfiguration') {
    mutations.push(
      ['empty members', () => JSON.stringify({ peers: [] })],
      ['wrong type', () => JSON.stringify({ peers: rng.pick(['x', 5, null, {}, true]) })],
      ['member of the wrong shape', () => JSON.stringify({ peers: [rng.pick([1, 'x', null, [], {}])] })],
      ['duplicate member', () => JSON.stringify({ peers: [body.peers[0], { ...body.peers[0] }] })],
      ['bad member id', () => JSON.stringify({ peers: [{ ...body.peers[0], id: rng.pick([0, -1, 1.5, '2', 1e300, null, true]) }] })],
      ['bad member url', () => JSON.stringify({ peers: [{ ...body.peers[0], url: rng.pick(['ftp://x', 'not a url', 'javascript:alert(1)', `http://${'a'.repeat(3000)}`, 5, '', null]) }] })],
      ['unknown member field', () => JSON.stringify({ peers: [{ ...body.peers[0], voter: true }] })],
      ['bad learners', () => JSON.stringify({ peers: body.peers, learners: rng.pick<unknown>(['x', 5, null, {}, [1], [{}], [{ id: 0 }], [{ id: 'a' }], [{ url: 'ftp://x' }], [{ ...body.peers[0] }], [{ id: 900 }, { id: 900 }]]) })],
      ['huge array', () => JSON.stringify({ peers: Array.from({ length: rng.between(1025, 3000) }, (_, i) => ({ id: i + 1, url: `http://127.0.0.1:${1 + (i % 60000)}` })) })],
    );
  }
  const [mutation, make] = rng.pick(mutations);
  return { mutation, text: make() };
}

// ------------------------------------------------------------------------------------------ signing

interface SignAs {
  readonly sender: number;
  readonly to: number;
  readonly secret?: string;
  readonly clusterId?: string;
  readonly now?: () => number;
  readonly timeout?: string;
}

function signed(ctx: FuzzContext, url: string, body: Buffer, as: SignAs, contentType: string): Record<string, string> {
  const target = new URL(url);
  const headers: Record<string, string> = { 'content-type': contentType, [TO_HEADER]: String(as.to) };
  if (as.timeout !== undefined) headers[TIMEOUT_HEADER] = as.timeout;
  // A secret too short to be accepted as a cluster secret is still used as a (wrong) HMAC key.
  const secret = (as.secret ?? ctx.secret).padEnd(16, '.');
  const sign = createRaftRequestSigner({ nodeId: as.sender, clusterId: as.clusterId ?? ctx.clusterId, secret, ...(as.now ? { now: as.now } : {}) });
  return { ...headers, ...sign({ method: 'POST', url: target, path: target.pathname + target.search, body, to: as.to, headers }) };
}

const contentTypeOf = (route: PostRoute) => (route === 'command' || route === 'commands' ? 'application/octet-stream' : 'application/vnd.raft+json');
const A_COMMAND = Buffer.from('{"op":"put","key":"k","value":1}');
/** A well-formed body of a binary route (a command, or a batch of them). */
const binaryBody = (route: 'command' | 'commands'): Buffer => (route === 'command' ? A_COMMAND : encodeCommandBatch([A_COMMAND, A_COMMAND]));

// ------------------------------------------------------------------------------------------ generators

type Generator = (rng: FuzzRandom, ctx: FuzzContext) => FuzzRequest;

function target(rng: FuzzRandom, ctx: FuzzContext) {
  const node = rng.pick(ctx.nodes);
  const others = ctx.nodes.filter((n) => n.id !== node.id).map((n) => n.id);
  // A sender: another member, or a node nobody has heard of (which holds the secret, so is accepted as such).
  const sender = rng.chance(0.8) ? rng.pick(others) : rng.between(4, 1_000);
  return { node, others, sender };
}

/** Some body for an unauthenticated request: valid-looking, malformed or garbage. */
function anyBody(rng: FuzzRandom, ctx: FuzzContext, route: PostRoute, sender: number): Buffer {
  if (route === 'command') return rng.chance(0.5) ? Buffer.from(JSON.stringify({ op: 'put', key: 'pwned', value: 1 })) : rng.bytes(rng.int(300));
  if (route === 'commands') return rng.chance(0.5) ? encodeCommandBatch([Buffer.from(JSON.stringify({ op: 'put', key: 'pwned', value: 1 }))]) : rng.bytes(rng.int(300));
  if (rng.chance(0.6)) return Buffer.from(JSON.stringify(validBody(rng, ctx, route, sender)));
  return Buffer.from(malformedBody(rng, ctx, route, sender).text);
}

const unauthenticated: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = anyBody(rng, ctx, route, sender);
  const headers: Record<string, string> = { 'content-type': rng.pick([contentTypeOf(route), 'application/json', 'text/plain', 'application/x-www-form-urlencoded']) };
  if (rng.chance(0.5)) headers[TO_HEADER] = String(node.id);
  if (rng.chance(0.3)) headers['x-raft-from'] = String(sender);
  if (rng.chance(0.2)) headers['x-raft-sender'] = String(sender); // claims to be a peer, without a signature
  return { kind: 'rpc/unauthenticated', url: `${node.rpcUrl}/raft/${route}`, method: 'POST', headers, body, localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: [401, 429] };
};

const forged: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = anyBody(rng, ctx, route, sender);
  const url = `${node.rpcUrl}/raft/${route}`;
  const headers = signed(ctx, url, body, { sender, to: node.id, secret: rng.pick(OTHER_SECRETS) }, contentTypeOf(route));
  return { kind: 'rpc/forged', url, method: 'POST', headers, body, localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: [401, 429] };
};

const stale: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = anyBody(rng, ctx, route, sender);
  const url = `${node.rpcUrl}/raft/${route}`;
  const skew = rng.pick([31_000, 60_000, 3_600_000, 365 * 86_400_000]) * (rng.chance(0.5) ? -1 : 1);
  const headers = signed(ctx, url, body, { sender, to: node.id, now: () => Math.max(0, Date.now() + skew) }, contentTypeOf(route));
  return { kind: 'rpc/stale-timestamp', url, method: 'POST', headers, body, localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: [401, 429] };
};

const badAuthHeaders: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = anyBody(rng, ctx, route, sender);
  const url = `${node.rpcUrl}/raft/${route}`;
  const headers = signed(ctx, url, body, { sender, to: node.id }, contentTypeOf(route));
  const [name, value] = rng.pick<[string, string | undefined]>([
    ['x-raft-sender', rng.pick(['0', '-1', 'abc', '1.5', '1e3', '99999999999999999', '01', `${sender},${sender}`])],
    ['x-raft-sender', undefined],
    ['x-raft-nonce', rng.pick(['short', 'a'.repeat(65), 'has spaces in it!!', ''])],
    ['x-raft-timestamp', rng.pick(['NaN', '-1', '1.5', 'now', '1'.repeat(17), ''])],
    ['x-raft-signature', rng.pick(['', 'x', 'A'.repeat(42), 'A'.repeat(44), '!'.repeat(43), Buffer.alloc(32).toString('hex')])],
    ['x-raft-signature', undefined],
    ['x-raft-cluster', rng.pick(['', 'a b', '%', '../x', `${ctx.clusterId},${ctx.clusterId}`])],
    ['x-raft-to', undefined],
  ]);
  if (value === undefined) delete headers[name];
  else headers[name] = value;
  return { kind: 'rpc/malformed-auth-headers', url, method: 'POST', headers, body, localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: [401, 429] };
};

const unauthenticatedOversized: Generator = (rng, ctx) => {
  const { node } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = rng.bytes(rng.between(64, 4096));
  const declared = ctx.bodyLimitBytes + rng.between(1, 1_000_000_000);
  const headers = { 'content-type': contentTypeOf(route), 'content-length': String(declared) };
  return { kind: 'rpc/unauthenticated-oversized', url: `${node.rpcUrl}/raft/${route}`, method: 'POST', headers, body, truncateTo: body.length, localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: [401, 429] };
};

/** A well-formed body that speaks for another node than the one that signed it. */
function wrongSenderRequest(rng: FuzzRandom, ctx: FuzzContext): FuzzRequest {
  const { node, others } = target(rng, ctx);
  const route = rng.pick(['appendentries', 'requestvote', 'installsnapshot'] as const);
  const claimed = rng.chance(0.7) ? rng.pick(others) : rng.between(4, 1000);
  const sender = rng.pick([...others, rng.between(1001, 2000)].filter((id) => id !== claimed));
  const body = Buffer.from(JSON.stringify(validBody(rng, ctx, route, claimed)));
  const url = `${node.rpcUrl}/raft/${route}`;
  return { kind: 'rpc/wrong-sender', url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id }, contentTypeOf(route)), body, localAddress: SIGNED_SOURCE, expect: [403], expectCode: 'sender_mismatch' };
}

const wrongSender: Generator = (rng, ctx) => wrongSenderRequest(rng, ctx);

const replayed: Generator = (rng, ctx) => {
  const first = rng.chance(0.7) ? wrongSenderRequest(rng, ctx) : signedMalformed(rng, ctx);
  return { ...first, kind: `${first.kind} (then replayed)`, then: { ...first, kind: 'rpc/replayed', expect: [401], expectCode: 'replayed' } };
};

const selfSender: Generator = (rng, ctx) => {
  const { node } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = route === 'command' || route === 'commands' ? binaryBody(route) : Buffer.from(JSON.stringify(validBody(rng, ctx, route, node.id)));
  const url = `${node.rpcUrl}/raft/${route}`;
  return { kind: 'rpc/signed-as-the-receiver', url, method: 'POST', headers: signed(ctx, url, body, { sender: node.id, to: node.id }, contentTypeOf(route)), body, localAddress: SIGNED_SOURCE, expect: [403], expectCode: 'sender_is_self' };
};

const wrongCluster: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = route === 'command' || route === 'commands' ? binaryBody(route) : Buffer.from(JSON.stringify(validBody(rng, ctx, route, sender)));
  const url = `${node.rpcUrl}/raft/${route}`;
  const clusterId = rng.pick(['default', `${ctx.clusterId}x`, 'production', 'a/b', '']) || 'x';
  return { kind: 'rpc/wrong-cluster', url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id, clusterId }, contentTypeOf(route)), body, localAddress: SIGNED_SOURCE, expect: [412], expectCode: 'wrong_cluster' };
};

const wrongAddressee: Generator = (rng, ctx) => {
  const { node, others, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const body = route === 'command' || route === 'commands' ? binaryBody(route) : Buffer.from(JSON.stringify(validBody(rng, ctx, route, sender)));
  const url = `${node.rpcUrl}/raft/${route}`;
  const to = rng.pick([...others, rng.between(4, 1000)]);
  return { kind: 'rpc/wrong-node', url, method: 'POST', headers: signed(ctx, url, body, { sender, to }, contentTypeOf(route)), body, localAddress: SIGNED_SOURCE, expect: [409], expectCode: 'wrong_node' };
};

function signedMalformed(rng: FuzzRandom, ctx: FuzzContext): FuzzRequest {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(JSON_ROUTES);
  const { mutation, text } = malformedBody(rng, ctx, route, sender);
  const body = Buffer.from(text, mutation === 'non-JSON' ? 'latin1' : 'utf8');
  const url = `${node.rpcUrl}/raft/${route}`;
  return { kind: `rpc/${mutation}`, url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id }, contentTypeOf(route)), body, localAddress: SIGNED_SOURCE, expect: [400] };
}

const signedMalformedBody: Generator = (rng, ctx) => signedMalformed(rng, ctx);

/** A signed batch of forwarded commands whose framing is broken: 400, nothing proposed. */
const signedMalformedBatch: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const good = encodeCommandBatch([A_COMMAND, A_COMMAND]);
  const mutations: [string, () => Buffer][] = [
    ['empty', () => Buffer.alloc(0)],
    ['truncated', () => good.subarray(0, rng.between(1, good.length - 1))],
    ['trailing bytes', () => Buffer.concat([good, rng.bytes(rng.between(1, 16))])],
    ['zero count', () => Buffer.from([0, 0, 0, 0])],
    ['huge count', () => Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), good.subarray(4)])],
    ['length past the end', () => Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0x10, 0, 0]), A_COMMAND])],
    ['oversized command', () => encodeCommandBatch([Buffer.alloc(ctx.maxCommandBytes + 1, 0x20)])],
  ];
  const [mutation, make] = rng.pick(mutations);
  const body = make();
  const url = `${node.rpcUrl}/raft/commands`;
  return { kind: `rpc/commands-${mutation}`, url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id }, 'application/octet-stream'), body, localAddress: SIGNED_SOURCE, expect: [400] };
};

/** A signed binary AppendEntries whose framing or content is certainly invalid: 400, nothing changes. */
const signedMalformedBinaryAppend: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const term = Math.max(1, ctx.term + rng.between(0, 3));
  const good = encodeAppendEntriesBinary({
    type: 'AppendEntries', from: sender, to: node.id, term, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0,
    entries: [{ index: 1, term, type: 'command', command: A_COMMAND }],
  });
  const patched = (at: number, bytes: number[]) => {
    const out = Buffer.from(good);
    out.set(bytes, at);
    return out;
  };
  const mutations: [string, () => Buffer][] = [
    ['truncated', () => good.subarray(0, rng.between(0, good.length - 1))],
    ['trailing bytes', () => Buffer.concat([good, rng.bytes(rng.between(1, 16))])],
    ['unsafe number', () => patched(1 + 8 * rng.between(0, 4), [0xff, 0xff, 0xff, 0xff])],
    ['huge count', () => patched(41, [0xff, 0xff, 0xff, 0xff])],
    ['unknown entry type', () => patched(45 + 8, [rng.between(3, 255)])],
    ['command past the end', () => patched(45 + 9, [0x7f, 0, 0, 0])],
    ['own id as leader', () => patched(9, [0, 0, 0, 0, 0, 0, Math.floor(node.id / 256) % 256, node.id % 256])],
    ['entry term above term', () => patched(45, [0, 0, 0, 0, 0, 0x10, 0, 0])],
  ];
  const [mutation, make] = rng.pick(mutations);
  const body = make();
  const url = `${node.rpcUrl}/raft/appendentries`;
  return {
    kind: `rpc/binary-append-${mutation}`,
    url,
    method: 'POST',
    headers: signed(ctx, url, body, { sender, to: node.id }, RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE),
    body,
    localAddress: SIGNED_SOURCE,
    expect: [400],
  };
};

const signedOversized: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(POST_ROUTES);
  const limit = route === 'command' ? ctx.maxCommandBytes : ctx.bodyLimitBytes;
  const url = `${node.rpcUrl}/raft/${route}`;
  if (rng.chance(0.01)) {
    // Streamed without a length: the node reads up to its limit, then refuses.
    const body = Buffer.alloc(limit + rng.between(1, 4096), 0x20);
    return { kind: 'rpc/oversized-streamed', url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id }, contentTypeOf(route)), body, chunked: true, localAddress: SIGNED_SOURCE, expect: [413] };
  }
  const body = rng.bytes(rng.between(16, 2048));
  const headers = { ...signed(ctx, url, body, { sender, to: node.id }, contentTypeOf(route)), 'content-length': String(limit + rng.between(1, 1_000_000_000)) };
  return { kind: 'rpc/oversized', url, method: 'POST', headers, body, truncateTo: body.length, localAddress: SIGNED_SOURCE, expect: [413], expectCode: 'body_too_large' };
};

const signedWrongContentType: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(JSON_ROUTES);
  const body = Buffer.from(JSON.stringify(validBody(rng, ctx, route, sender)));
  const url = `${node.rpcUrl}/raft/${route}`;
  const type = rng.pick(['text/plain', 'application/xml', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded']);
  return { kind: 'rpc/wrong-content-type', url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id }, type), body, localAddress: SIGNED_SOURCE, expect: [415] };
};

const signedBadTimeout: Generator = (rng, ctx) => {
  const { node, sender } = target(rng, ctx);
  const route = rng.pick(['command', 'setconfiguration'] as const);
  const body = route === 'command' ? Buffer.from('{"op":"put","key":"k","value":1}') : Buffer.from(JSON.stringify(configurationBody(ctx)));
  const url = `${node.rpcUrl}/raft/${route}`;
  const timeout = rng.pick(['0', '-1', 'abc', '1.5', '99999999999', '1e3', '']);
  return { kind: 'rpc/bad-timeout-header', url, method: 'POST', headers: signed(ctx, url, body, { sender, to: node.id, timeout }, contentTypeOf(route)), body, localAddress: SIGNED_SOURCE, expect: [400] };
};

/** Unsigned requests in a quick row from one address, to one node: past the burst, 429. */
const flood: Generator = (rng, ctx) => {
  const request = unauthenticated(rng, ctx);
  return { ...request, kind: 'rpc/unauthenticated-flood', localAddress: rng.pick(FLOOD_SOURCES), repeat: rng.between(40, 80) };
};

const wrongRoute: Generator = (rng, ctx) => {
  const { node } = target(rng, ctx);
  const [method, path] = rng.pick<[string, string]>([
    ['GET', '/raft/appendentries'],
    ['PUT', '/raft/requestvote'],
    ['DELETE', '/raft/command'],
    ['POST', '/raft/id'],
    ['POST', '/raft/snapshot'],
    ['POST', '/raft/../kv/x'],
    ['POST', '/raft/appendentries/extra'],
    ['GET', '/kv/x'],
    ['POST', '/cluster/members'],
    ['PATCH', '/raft/setconfiguration'],
  ]);
  return { kind: 'rpc/wrong-route', url: `${node.rpcUrl}${path}`, method, headers: { 'content-type': 'application/json' }, body: Buffer.from('{}'), localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: [404] };
};

const malformedHttp: Generator = (rng, ctx) => {
  const node = rng.pick(ctx.nodes);
  const onRpc = rng.chance(0.7);
  const url = onRpc ? node.rpcUrl : node.url;
  const path = onRpc ? '/raft/appendentries' : '/kv/x';
  const raw = rng.pick([
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    `POST ${path}${'?q='.padEnd(20_000, 'a')} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    `\u0000\u0001\u0002 ${path} HTTP/1.1\r\n\r\n`,
    `POST ${path} HTTP/1.1\nHost: x\n\n`.replace(/\n/g, '\r\r\n'),
  ]);
  return { kind: 'http/malformed', url, method: 'RAW', headers: {}, raw: Buffer.from(raw, 'latin1'), localAddress: rng.pick(UNAUTHENTICATED_SOURCES), expect: '4xx' };
};

// ------------------------------------------------------------------------------------------ the sample's API

const publicKv: Generator = (rng, ctx) => {
  const node = rng.pick(ctx.nodes);
  const key = () => encodeURIComponent(rng.text(rng.between(1, 40)));
  const longKey = () => 'k'.repeat(rng.between(257, 4000));
  const json = 'application/json';
  const choices: Array<[string, string, string, string | Buffer | undefined, string]> = [
    // [what, method, path, body, content type]
    ['invalid JSON', 'PUT', `/kv/${key()}`, rng.pick(['{"value":', 'not json', "{'value': 1}", '{"value": NaN}', '{"value":1,}']), json],
    ['array body', 'PUT', `/kv/${key()}`, rng.pick(['[]', '[{"value":1}]', '[1,2,3]']), json],
    ['missing value', 'PUT', `/kv/${key()}`, rng.pick(['{}', '{"value":null}', '{"val":1}']), json],
    ['unknown field', 'PUT', `/kv/${key()}`, JSON.stringify({ value: 1, [rng.pick(['extra', 'op', 'key', '__v'])]: 1 }), json],
    ['__proto__', 'PUT', `/kv/${key()}`, '{"__proto__":{"polluted":true},"value":1}', json],
    ['deep nesting', 'PUT', `/kv/${key()}`, `{"value":${deepArray(rng.between(33, 40_000))}}`, json],
    ['too many values', 'PUT', `/kv/${key()}`, JSON.stringify({ value: Array.from({ length: rng.between(10_001, 15_000) }, () => 0) }), json],
    ['value too large', 'PUT', `/kv/${key()}`, JSON.stringify({ value: 'v'.repeat(rng.between(65_537, 90_000)) }), json],
    ['body too large', 'PUT', `/kv/${key()}`, JSON.stringify({ value: 'v'.repeat(rng.between(110_000, 400_000)) }), json],
    ['key too long', 'PUT', `/kv/${longKey()}`, '{"value":1}', json],
    ['control character in key', 'PUT', `/kv/a${rng.pick(['%00', '%0A', '%1F', '%7F'])}b`, '{"value":1}', json],
    ['invalid percent-encoding', 'PUT', `/kv/${rng.pick(['%ZZ', '%E0%A4%A', '%', '%C0%AF', '%ED%A0%80'])}`, '{"value":1}', json],
    ['not JSON content type', 'PUT', `/kv/${key()}`, '{"value":1}', rng.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/xml'])],
    ['unsupported charset', 'PUT', `/kv/${key()}`, '{"value":1}', 'application/json; charset=latin1'],
    ['cas: invalid JSON', 'POST', `/kv/${key()}/cas`, '{"expected":', json],
    ['cas: array body', 'POST', `/kv/${key()}/cas`, '[{"expected":1,"value":2}]', json],
    ['cas: missing value', 'POST', `/kv/${key()}/cas`, '{"expected":1}', json],
    ['cas: unknown field', 'POST', `/kv/${key()}/cas`, '{"expected":1,"value":2,"force":true}', json],
    ['cas: deep nesting', 'POST', `/kv/${key()}/cas`, `{"expected":${deepArray(rng.between(33, 5000))},"value":1}`, json],
    ['cas: key too long', 'POST', `/kv/${longKey()}/cas`, '{"value":1}', json],
    ['get: key too long', 'GET', `/kv/${longKey()}`, undefined, json],
    ['get: invalid percent-encoding', 'GET', `/kv/${rng.pick(['%ZZ', '%', '%E0%A4%A'])}`, undefined, json],
    ['get: control character in key', 'GET', `/kv/%00${key()}`, undefined, json],
    ['delete: key too long', 'DELETE', `/kv/${longKey()}`, undefined, json],
    ['unknown route', rng.pick(['GET', 'POST', 'PATCH']), rng.pick(['/', '/kv', '/kv/', '/admin', '/cluster/x', '/kv/a/b/c']), undefined, json],
  ];
  const [what, method, path, body, contentType] = rng.pick(choices);
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const headers: Record<string, string> = bytes ? { 'content-type': contentType } : {};
  return { kind: `api/${what}`, url: `${node.url}${path}`, method, headers, ...(bytes ? { body: bytes } : {}), expect: '4xx' };
};

const publicMembers: Generator = (rng, ctx) => {
  const node = rng.pick(ctx.nodes);
  const auth = rng.pick<Record<string, string>>([{}, { authorization: 'Bearer wrong' }, { authorization: ctx.adminToken }, { authorization: `Basic ${ctx.adminToken}` }, { authorization: `Bearer ${ctx.adminToken}` }]);
  const authorized = auth.authorization === `Bearer ${ctx.adminToken}`;
  if (rng.chance(0.5)) {
    // Only malformed bodies: with the right token, a valid one would change the membership.
    const body = rng.pick([
      '{"url":"not a url"}',
      '{"url":"ftp://127.0.0.1:1"}',
      '{"id":-1,"url":"http://127.0.0.1:1"}',
      '{"id":1.5,"url":"http://127.0.0.1:1"}',
      '{"id":"2","url":"http://127.0.0.1:1"}',
      '{"url":"http://127.0.0.1:1","extra":1}',
      '[]',
      '{}',
      '{"url":',
      `{"url":${deepArray(50)}}`,
    ]);
    // The application's JSON parser runs before the token is checked: invalid JSON is a 400 either way.
    return { kind: `api/add member${authorized ? '' : ' (unauthorized)'}`, url: `${node.url}/cluster/members`, method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: Buffer.from(body), expect: authorized ? [400] : [400, 401] };
  }
  const id = authorized ? rng.pick(['abc', '1.5', '-', '%00', '1e3', 'NaN']) : rng.pick(['1', '2', '3', 'abc', '-1']);
  return { kind: `api/remove member${authorized ? '' : ' (unauthorized)'}`, url: `${node.url}/cluster/members/${id}`, method: 'DELETE', headers: auth, expect: authorized ? [400] : [401] };
};

/** Weighted mix of everything; the sample's API gets about a third. */
export const GENERATORS: ReadonlyArray<readonly [number, Generator]> = [
  [10, unauthenticated],
  [8, forged],
  [6, stale],
  [6, badAuthHeaders],
  [2, unauthenticatedOversized],
  [6, wrongSender],
  [4, replayed],
  [3, selfSender],
  [4, wrongCluster],
  [3, wrongAddressee],
  [18, signedMalformedBody],
  [3, signedMalformedBatch],
  [3, signedMalformedBinaryAppend],
  [3, signedOversized],
  [2, signedWrongContentType],
  [2, signedBadTimeout],
  [0.3, flood],
  [2, wrongRoute],
  [2, malformedHttp],
  [22, publicKv],
  [6, publicMembers],
];

export function generate(rng: FuzzRandom, ctx: FuzzContext): FuzzRequest {
  return rng.weighted(GENERATORS)(rng, ctx);
}
