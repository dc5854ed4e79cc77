import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigurationChangeError, NotLeaderError } from '../../lib/core/errors.js';
import type { AppendEntriesRequest, RequestVoteRequest } from '../../lib/core/types.js';
import { CommandAbortedError, CommandTimeoutError } from '../../lib/node/errors.js';
import {
  HttpTransport,
  PeerUnavailableError,
  RpcTimeoutError,
  TransportClosedError,
} from '../../lib/transport/http-transport.js';
import { PeerUnreachableError } from '../../lib/transport/memory-transport.js';
import { RaftHttpError, WireFormatError, decodeAppendEntriesBinary } from '../../lib/transport/wire.js';

const HOST = '127.0.0.2';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

type Reply = (req: Received, res: http.ServerResponse) => void;

interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  connections: number;
  reply: Reply;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function startServer(reply: Reply, port = 0): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const state: TestServer = {
    url: '',
    port: 0,
    received: [],
    connections: 0,
    reply,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      state.received.push(received);
      state.reply(received, res);
    });
  });
  server.on('connection', (socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
  const actual = (server.address() as AddressInfo).port;
  Object.assign(state, { port: actual, url: `http://${HOST}:${actual}` });
  servers.push(state);
  return state;
}

function transport(options: ConstructorParameters<typeof HttpTransport>[0] = {}): HttpTransport {
  const t = new HttpTransport(options);
  transports.push(t);
  return t;
}

/** A port nothing listens on (a server was there a moment ago). */
async function deadPort(): Promise<number> {
  const server = await startServer(() => {});
  await server.close();
  servers.splice(servers.indexOf(server), 1);
  return server.port;
}

const append: AppendEntriesRequest = {
  type: 'AppendEntries',
  from: 1,
  to: 2,
  term: 3,
  prevLogIndex: 4,
  prevLogTerm: 2,
  entries: [{ index: 5, term: 3, type: 'command', command: new Uint8Array([0, 255, 7]) }],
  leaderCommit: 4,
};
const vote: RequestVoteRequest = { type: 'RequestVote', from: 1, to: 2, term: 4, lastLogIndex: 5, lastLogTerm: 3, preVote: true };
const okAppend: Reply = (_req, res) => json(res, 200, { term: 3, success: true, match_index: 5, rejected_index: 0, conflict_term: 0, conflict_index: 0 });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('HttpPeer', () => {
  it('sends AppendEntries as a binary body by default, and as the Go model\'s JSON to a server that answers 415', async () => {
    // A JSON-only receiver (the Go model): 415 for any other content type.
    const server = await startServer((req, res) =>
      req.headers['content-type'] === 'application/vnd.raft+json' ? okAppend(req, res) : json(res, 415, { error: 'unsupported media type' }),
    );
    const peer = transport().peer(2, server.url);
    const expected = { type: 'AppendEntriesResponse', from: 2, to: 1, term: 3, success: true, matchIndex: 5, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 };
    await expect(peer.appendEntries(append)).resolves.toEqual(expected);
    await expect(peer.appendEntries(append)).resolves.toEqual(expected);
    expect(server.received.map((r) => r.headers['content-type'])).toEqual(['application/vnd.raft.appendentries', 'application/vnd.raft+json', 'application/vnd.raft+json']);
    expect(decodeAppendEntriesBinary(server.received[0]!.body, 100)).toEqual({
      term: 3, leader_id: 1, prev_log_index: 4, prev_log_term: 2, commit_index: 4, entries: [{ term: 3, type: 'command', command: new Uint8Array([0, 255, 7]) }],
    });
    // A minute later binary is tried again (the server may have been upgraded).
    const now = Date.now();
    const clock = vi.spyOn(Date, 'now').mockReturnValue(now + 61_000);
    try {
      await expect(peer.appendEntries(append)).resolves.toEqual(expected);
    } finally {
      clock.mockRestore();
    }
    expect(server.received.slice(3).map((r) => r.headers['content-type'])).toEqual(['application/vnd.raft.appendentries', 'application/vnd.raft+json']);
    // A server that knows the binary body keeps getting it.
    const binary = await startServer(okAppend);
    const other = transport().peer(2, binary.url);
    await other.appendEntries(append);
    await other.appendEntries(append);
    expect(binary.received.map((r) => r.headers['content-type'])).toEqual(['application/vnd.raft.appendentries', 'application/vnd.raft.appendentries']);
  });

  it('sends AppendEntries as the Go model\'s JSON to {prefix}/appendentries when asked to, and decodes the answer', async () => {
    const server = await startServer(okAppend);
    const peer = transport({ appendEntriesEncoding: 'json' }).peer(2, server.url);
    const response = await peer.appendEntries(append);
    expect(response).toEqual({ type: 'AppendEntriesResponse', from: 2, to: 1, term: 3, success: true, matchIndex: 5, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
    const [sent] = server.received;
    expect(sent!.method).toBe('POST');
    expect(sent!.url).toBe('/raft/appendentries');
    expect(sent!.headers['content-type']).toBe('application/vnd.raft+json');
    expect(sent!.headers['x-raft-to']).toBe('2');
    expect(JSON.parse(sent!.body.toString())).toEqual({
      term: 3, leader_id: 1, prev_log_index: 4, prev_log_term: 2, entries: [{ index: 5, term: 3, command: 'AP8H' }], commit_index: 4,
    });
  });

  it('sends RequestVote, honours a path prefix, a base path and a content type option, and extra headers', async () => {
    const server = await startServer((_req, res) => json(res, 200, { term: 4, vote_granted: true, pre_vote: true }));
    const t = transport({ pathPrefix: 'cluster/rpc/', contentType: 'application/json', headers: () => ({ authorization: 'Bearer s3cret' }) });
    const response = await t.peer(2, `${server.url}/base/`).requestVote(vote);
    expect(response).toEqual({ type: 'RequestVoteResponse', from: 2, to: 1, term: 4, voteGranted: true, preVote: true });
    const [sent] = server.received;
    expect(sent!.url).toBe('/base/cluster/rpc/requestvote');
    expect(sent!.headers['content-type']).toBe('application/json');
    expect(sent!.headers.authorization).toBe('Bearer s3cret');
    expect(JSON.parse(sent!.body.toString())).toEqual({ term: 4, candidate_id: 1, last_log_index: 5, last_log_term: 3, pre_vote: true });
  });

  it('reuses one kept-alive connection for sequential calls', async () => {
    const server = await startServer(okAppend);
    const peer = transport().peer(2, server.url);
    for (let i = 0; i < 25; i++) await peer.appendEntries(append);
    expect(server.received).toHaveLength(25);
    expect(server.connections).toBe(1);
  });

  it('rejects within its timeout when the peer does not answer, with RpcTimeoutError', async () => {
    const server = await startServer(() => {}); // never answers
    const peer = transport({ rpcTimeoutMs: 5_000 }).peer(2, server.url);
    const started = Date.now();
    const error = await peer.appendEntries(append, { timeoutMs: 150 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(RpcTimeoutError);
    expect(error).toBeInstanceOf(PeerUnreachableError);
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(400);
  });

  it('uses the transport\'s rpcTimeoutMs by default', async () => {
    const server = await startServer(() => {});
    const peer = transport({ rpcTimeoutMs: 100 }).peer(2, server.url);
    const started = Date.now();
    await expect(peer.requestVote(vote)).rejects.toBeInstanceOf(RpcTimeoutError);
    expect(Date.now() - started).toBeLessThan(350);
  });

  it('rejects at once when the caller aborts', async () => {
    const server = await startServer(() => {});
    const peer = transport().peer(2, server.url);
    const abort = new AbortController();
    const call = peer.appendEntries(append, { signal: abort.signal });
    setTimeout(() => abort.abort(), 30);
    const started = Date.now();
    await expect(call).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(200);
    // An abort says nothing about the peer: no backoff.
    expect(peer.availability.failures).toBe(0);
    await expect(peer.appendEntries(append, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('backs off after failures: fails fast with PeerUnavailableError, doubles the pause, and recovers on success', async () => {
    const port = await deadPort();
    const peer = transport({ backoffInitialMs: 100, backoffMaxMs: 1_000 }).peer(2, `http://${HOST}:${port}`);

    const first = await peer.appendEntries(append).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(PeerUnreachableError);
    expect(first).not.toBeInstanceOf(PeerUnavailableError);
    expect(peer.availability.failures).toBe(1);

    // While backing off, calls do not touch the network.
    const started = Date.now();
    for (let i = 0; i < 50; i++) {
      const error = await peer.appendEntries(append).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PeerUnavailableError);
    }
    expect(Date.now() - started).toBeLessThan(50);
    const fast = (await peer.requestVote(vote).catch((e: unknown) => e)) as PeerUnavailableError;
    expect(fast.peerId).toBe(2);
    expect(fast.retryInMs).toBeGreaterThan(0);
    expect(fast.retryInMs).toBeLessThanOrEqual(100);

    // After the pause, one attempt goes out; it fails again and the pause doubles.
    await sleep(110);
    await expect(peer.appendEntries(append)).rejects.not.toBeInstanceOf(PeerUnavailableError);
    expect(peer.availability.failures).toBe(2);
    expect(peer.availability.retryInMs).toBeGreaterThan(100);
    expect(peer.availability.retryInMs).toBeLessThanOrEqual(200);

    // The peer comes back: the next attempt after the pause succeeds and resets the backoff.
    const server = await startServer(okAppend, port);
    await expect(peer.appendEntries(append)).rejects.toBeInstanceOf(PeerUnavailableError);
    await sleep(210);
    await expect(peer.appendEntries(append)).resolves.toMatchObject({ success: true });
    expect(peer.availability).toEqual({ failures: 0, retryInMs: 0 });
    await expect(peer.appendEntries(append)).resolves.toMatchObject({ success: true });
    expect(server.received).toHaveLength(2);
  });

  it('counts calls that were in flight together as one failure', async () => {
    const server = await startServer(() => {});
    const peer = transport({ backoffInitialMs: 100, rpcTimeoutMs: 5_000 }).peer(2, server.url);
    const calls = Array.from({ length: 10 }, () => peer.appendEntries(append).catch((e: unknown) => e));
    await sleep(30);
    await server.close(); // the peer dies with ten pipelined AppendEntries in flight
    servers.splice(servers.indexOf(server), 1);
    for (const error of await Promise.all(calls)) expect(error).toBeInstanceOf(PeerUnreachableError);
    expect(peer.availability.failures).toBe(1);
    expect(peer.availability.retryInMs).toBeLessThanOrEqual(100);
  });

  it('caps the pause at backoffMaxMs and lets one probe through at a time', async () => {
    const server = await startServer(() => {}); // black hole: every call times out
    const peer = transport({ backoffInitialMs: 20, backoffMaxMs: 40, rpcTimeoutMs: 60 }).peer(2, server.url);
    for (let i = 0; i < 4; i++) {
      await expect(peer.appendEntries(append)).rejects.toBeInstanceOf(RpcTimeoutError);
      expect(peer.availability.retryInMs).toBeLessThanOrEqual(40);
      await sleep(45);
    }
    expect(peer.availability.failures).toBe(4);
    const probe = peer.appendEntries(append).catch((e: unknown) => e);
    const second = await peer.appendEntries(append).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(PeerUnavailableError);
    expect((second as PeerUnavailableError).retryInMs).toBe(0); // a probe is under way
    expect(await probe).toBeInstanceOf(RpcTimeoutError);
  });

  it('does not count an HTTP error answer, nor a slow command, against the peer', async () => {
    const server = await startServer((req, res) => {
      if (req.url.endsWith('/command')) return; // the leader is still working on it
      json(res, 500, { error: 'boom', code: 'internal' });
    });
    const peer = transport().peer(2, server.url);
    const error = await peer.appendEntries(append).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RaftHttpError);
    expect(error).toMatchObject({ status: 500, code: 'internal' });
    await expect(peer.command(new Uint8Array([1]), { timeoutMs: 50 })).rejects.toBeInstanceOf(CommandTimeoutError);
    expect(peer.availability.failures).toBe(0);
  });

  it('resends an idempotent RPC once when a kept-alive socket was closed by the server, but never a command', async () => {
    let requests = 0;
    const server = await startServer((req, res) => {
      requests++;
      // The second request arrives on the reused socket: drop the connection without answering.
      if (requests === 2 || requests === 5) {
        res.socket!.destroy();
        return;
      }
      if (req.url.endsWith('/command')) return json(res, 200, { result: 'done' });
      okAppend(req, res);
    });
    const peer = transport().peer(2, server.url);
    await peer.appendEntries(append);
    await expect(peer.appendEntries(append)).resolves.toMatchObject({ success: true });
    expect(server.connections).toBe(2);
    expect(requests).toBe(3);

    await peer.command(new Uint8Array([1])); // request 4
    await expect(peer.command(new Uint8Array([2]))).rejects.toBeInstanceOf(PeerUnreachableError); // request 5: not resent
    expect(requests).toBe(5);
  });

  it('forwards a command as raw bytes with its timeout, and decodes the answer', async () => {
    const server = await startServer((_req, res) => json(res, 200, { result: { $bytes: 'AQI=' } }));
    const peer = transport().peer(2, server.url);
    const command = new Uint8Array([0, 1, 2, 255]);
    await expect(peer.command(command, { timeoutMs: 1234 })).resolves.toEqual(new Uint8Array([1, 2]));
    const [sent] = server.received;
    expect(sent!.url).toBe('/raft/command');
    expect(sent!.headers['content-type']).toBe('application/octet-stream');
    expect(sent!.headers['x-raft-timeout-ms']).toBe('1234');
    expect(new Uint8Array(sent!.body)).toEqual(command);

    server.reply = (_req, res) => json(res, 200, { result: { ok: true, n: [1, 2] } });
    await expect(peer.command(command)).resolves.toEqual({ ok: true, n: [1, 2] });
    server.reply = (_req, res) => json(res, 200, {});
    await expect(peer.command(command)).resolves.toBeUndefined();
    server.reply = (_req, res) => json(res, 200, [1]);
    await expect(peer.command(command)).rejects.toBeInstanceOf(WireFormatError);
  });

  it('turns error answers into typed errors', async () => {
    const server = await startServer((_req, res) => json(res, 421, { error: 'not the leader', code: 'not_leader', leader_id: 3, leader_url: 'http://127.0.0.1:3003' }));
    const peer = transport().peer(2, server.url);
    const notLeader = await peer.command(new Uint8Array([1])).catch((e: unknown) => e);
    expect(notLeader).toBeInstanceOf(NotLeaderError);
    expect(notLeader).toMatchObject({ leaderId: 3, leaderUrl: 'http://127.0.0.1:3003' });

    server.reply = (_req, res) => json(res, 504, { error: 'no answer within 200 ms', code: 'timeout', timeout_ms: 200 });
    await expect(peer.command(new Uint8Array([1]))).rejects.toMatchObject({ name: 'CommandTimeoutError', timeoutMs: 200 });

    server.reply = (_req, res) => json(res, 409, { success: false, error: 'configuration change refused (in-progress): busy', code: 'configuration_change', reason: 'in-progress' });
    const refused = await peer.setConfiguration([{ id: 1 }, { id: 2, url: 'http://b' }]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfigurationChangeError);
    expect(refused).toMatchObject({ reason: 'in-progress' });
    expect(JSON.parse(server.received.at(-1)!.body.toString())).toEqual({ peers: [{ id: 1 }, { id: 2, url: 'http://b' }] });

    server.reply = (_req, res) => json(res, 200, { success: true });
    await expect(peer.setConfiguration([{ id: 1 }])).resolves.toBeUndefined();
    server.reply = (_req, res) => json(res, 200, { success: false, error: 'nope' });
    await expect(peer.setConfiguration([{ id: 1 }])).rejects.toThrow('nope');

    server.reply = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{not json');
    };
    await expect(peer.appendEntries(append)).rejects.toBeInstanceOf(WireFormatError);
  });

  it('refuses an answer larger than maxResponseBytes', async () => {
    const server = await startServer((_req, res) => json(res, 200, { term: 3, success: true, padding: 'x'.repeat(10_000) }));
    const peer = transport({ maxResponseBytes: 1_000 }).peer(2, server.url);
    await expect(peer.appendEntries(append)).rejects.toBeInstanceOf(WireFormatError);
  });

  it('rejects a caller-aborted command with CommandAbortedError', async () => {
    const server = await startServer(() => {});
    const peer = transport().peer(2, server.url);
    const abort = new AbortController();
    const call = peer.command(new Uint8Array([1]), { signal: abort.signal });
    abort.abort();
    await expect(call).rejects.toBeInstanceOf(CommandAbortedError);
  });
});

describe('HttpTransport', () => {
  it('learns a server\'s id through GET {prefix}/id, as the Go model does', async () => {
    const server = await startServer((req, res) => {
      res.writeHead(req.url === '/raft/id' || req.url === '/custom/id' ? 200 : 404, { 'content-type': 'text/plain' });
      res.end('7\n');
    });
    await expect(HttpTransport.discoverId(server.url)).resolves.toBe(7);
    await expect(HttpTransport.discoverId(server.url, { pathPrefix: '/custom' })).resolves.toBe(7);
    const t = transport();
    await expect(t.discoverId(server.url)).resolves.toBe(7);
    const peer = await t.peerAt(server.url);
    expect(peer.id).toBe(7);
    expect(peer.url).toBe(server.url);
    expect(t.peer(7, server.url)).toBe(peer);
    await expect(peer.fetchId()).resolves.toBe(7);
    expect(server.received.map((r) => r.method)).toEqual(['GET', 'GET', 'GET', 'GET', 'GET']);
  });

  it('refuses an id that is not a positive integer, and unreachable or non-HTTP urls', async () => {
    const server = await startServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(req.url === '/raft/id' ? '0' : 'abc');
    });
    await expect(HttpTransport.discoverId(server.url)).rejects.toBeInstanceOf(WireFormatError);
    await expect(HttpTransport.discoverId(server.url, { pathPrefix: '/x' })).rejects.toBeInstanceOf(WireFormatError);
    await expect(HttpTransport.discoverId(`http://${HOST}:${await deadPort()}`)).rejects.toBeInstanceOf(PeerUnreachableError);
    await expect(HttpTransport.discoverId('ftp://example.com')).rejects.toThrow('not an http or https URL');
    await expect(HttpTransport.discoverId('nonsense')).rejects.toThrow('not a URL');
  });

  it('keeps one peer per id and url (an older one stays usable), and needs a url', async () => {
    const server = await startServer(okAppend);
    const t = transport();
    const a = t.peer(2, server.url);
    expect(t.peer(2, server.url)).toBe(a);
    const b = t.peer(2, 'http://127.0.0.2:2');
    expect(b).not.toBe(a);
    expect(t.peer(2, server.url)).toBe(a);
    await expect(a.appendEntries(append)).resolves.toMatchObject({ success: true });
    await a.close();
    expect(t.peer(2, server.url)).not.toBe(a);
    await expect(a.appendEntries(append)).rejects.toBeInstanceOf(TransportClosedError);
    expect(() => t.peer(3)).toThrow('needs the url of node 3');
    expect(() => t.peer(0, 'http://x')).toThrow('not a positive integer');
    expect(() => new HttpTransport({ rpcTimeoutMs: 0 })).toThrow('rpcTimeoutMs');
  });

  it('closing aborts the calls in flight and refuses new ones', async () => {
    const server = await startServer(() => {});
    const t = transport();
    const peer = t.peer(2, server.url);
    const calls = [peer.appendEntries(append), peer.command(new Uint8Array([1])), t.discoverId(server.url)].map((p) => p.catch((e: unknown) => e));
    await sleep(30);
    const started = Date.now();
    await t.close();
    for (const error of await Promise.all(calls)) expect(error).toBeInstanceOf(TransportClosedError);
    expect(Date.now() - started).toBeLessThan(100);
    await expect(peer.appendEntries(append)).rejects.toBeInstanceOf(TransportClosedError);
    expect(() => t.peer(2, server.url)).toThrow(TransportClosedError);
  });
});
