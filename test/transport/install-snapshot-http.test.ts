import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeStoppedError } from '../../lib/core/errors.js';
import type { InstallSnapshotRequest, InstallSnapshotResponse } from '../../lib/core/types.js';
import { createRaftRpcController } from '../../lib/nest/raft-rpc.controller.js';
import { DEFAULT_RPC_LIMITS, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, type RaftRpcLimits } from '../../lib/nest/raft.constants.js';
import { RaftRpcSecurity } from '../../lib/nest/security/raft-rpc-security.js';
import { RAFT_RPC_SECURITY } from '../../lib/nest/security/security.constants.js';
import { createRaftRequestSigner } from '../../lib/transport/auth.js';
import { HttpTransport, type HttpTransportOptions } from '../../lib/transport/http-transport.js';
import { PeerUnreachableError } from '../../lib/transport/memory-transport.js';
import { SnapshotTransferError } from '../../lib/transport/snapshot-assembler.js';
import type { RaftRpcHandler } from '../../lib/transport/transport.js';
import { RaftHttpError, encodeInstallSnapshotChunk } from '../../lib/transport/wire.js';
import { sendSigned } from '../security/helpers.js';
import { RecordingSnapshotHandler } from '../support/snapshot-handler.js';

/**
 * InstallSnapshot over HTTP, end to end: an {@link HttpTransport} peer sends to the real RPC
 * controller (Nest, on loopback, signatures checked), through a proxy that can fail chosen requests;
 * the node is a stub that records what it is given.
 */
const HOST = '127.0.0.5';
const SELF = 2;
const LEADER = 1;
const CLUSTER = 'snapshot-test';
const SECRET = 'install snapshot test secret, 32';
const KiB = 1024;
const MiB = 1024 * KiB;

class SnapshotRecorder extends RecordingSnapshotHandler {
  constructor() {
    super(SELF);
  }
}

/** What the proxy saw of one InstallSnapshot request. */
interface Seen {
  readonly offset: number;
  readonly length: number;
  readonly done: boolean;
  readonly bodyBytes: number;
}

/** What the proxy does with the n-th InstallSnapshot request (0-based). */
type Fault = 'forward' | 'answer-503' | 'lose-answer';

interface Proxy {
  readonly url: string;
  readonly seen: Seen[];
  fault: (n: number, seen: Seen) => Fault;
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function startReceiver(options: { limits?: Partial<RaftRpcLimits>; handler?: RaftRpcHandler } = {}): Promise<{ url: string; handler: RaftRpcHandler }> {
  const handler = options.handler ?? new SnapshotRecorder();
  const security = new RaftRpcSecurity({ mode: 'authenticated', nodeId: SELF, clusterId: CLUSTER, secret: SECRET, rateLimit: false, logger: { warn: () => undefined } });
  const moduleRef = await Test.createTestingModule({
    controllers: [createRaftRpcController('/raft')],
    providers: [
      { provide: RAFT_RPC_HANDLER, useValue: handler },
      { provide: RAFT_RPC_LIMITS, useValue: { ...DEFAULT_RPC_LIMITS, ...options.limits } },
      { provide: RAFT_RPC_SECURITY, useValue: security },
    ],
  }).compile();
  const app: INestApplication = moduleRef.createNestApplication({ logger: false, bodyParser: false });
  await app.listen(0, HOST);
  closers.push(() => app.close());
  return { url: `http://${HOST}:${(app.getHttpServer().address() as AddressInfo).port}`, handler };
}

/** A proxy in front of `target` that records every InstallSnapshot chunk and fails those `fault` says. */
async function startProxy(target: string): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const state: Proxy = { url: '', seen: [], fault: () => 'forward' };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let fault: Fault = 'forward';
      if (req.url?.endsWith('/installsnapshot')) {
        const json = JSON.parse(body.toString()) as { offset: number; data: string; done: boolean };
        const seen = { offset: json.offset, length: Buffer.from(json.data, 'base64').length, done: json.done, bodyBytes: body.length };
        fault = state.fault(state.seen.length, seen);
        state.seen.push(seen);
      }
      if (fault === 'answer-503') {
        const text = JSON.stringify({ error: 'proxy: service unavailable' });
        res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      const forward = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers, agent: false }, (answer) => {
        const parts: Buffer[] = [];
        answer.on('data', (c: Buffer) => parts.push(c));
        answer.on('end', () => {
          // The receiver got the chunk and answered; the sender never hears of it.
          if (fault === 'lose-answer') return void req.socket.destroy();
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(parts));
        });
      });
      forward.on('error', () => req.socket.destroy());
      forward.end(body);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return Object.assign(state, { url: `http://${HOST}:${(server.address() as AddressInfo).port}` });
}

function peerTo(url: string, options: HttpTransportOptions = {}) {
  const transport = new HttpTransport({
    sign: createRaftRequestSigner({ nodeId: LEADER, clusterId: CLUSTER, secret: SECRET }),
    backoffInitialMs: 1,
    backoffMaxMs: 5,
    ...options,
  });
  closers.push(() => transport.close());
  return transport.peer(SELF, url);
}

function snapshotRequest(overrides: Partial<InstallSnapshotRequest> = {}): InstallSnapshotRequest {
  return {
    type: 'InstallSnapshot',
    from: LEADER,
    to: SELF,
    term: 4,
    snapshot: { index: 1_000, term: 3, configuration: { voters: [1, 2, 3], addresses: { '1': 'http://127.0.0.1:1', '2': 'http://127.0.0.1:2', '3': 'http://127.0.0.1:3' } } },
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const dataChunks = (seen: readonly Seen[]) => seen.filter((s) => s.length > 0);

describe('InstallSnapshot over HTTP', () => {
  it('sends a 2.5 MiB snapshot in signed 512 KiB chunks; it arrives byte-identical and is installed once', async () => {
    const receiver = await startReceiver();
    const proxy = await startProxy(receiver.url);
    const data = new Uint8Array(randomBytes(2.5 * MiB));
    const request = snapshotRequest();
    const response = await peerTo(proxy.url).installSnapshot(request, data);

    expect(response).toEqual({ type: 'InstallSnapshotResponse', from: SELF, to: LEADER, term: 4, matchIndex: 1_000 });
    const handler = receiver.handler as SnapshotRecorder;
    expect(handler.installs).toHaveLength(1);
    expect(handler.installs[0]!.request).toEqual(request);
    expect(same(handler.installs[0]!.data, data)).toBe(true);
    // A probe (where does the receiver stand?), then five chunks in order, the last one done.
    expect(proxy.seen.map((s) => [s.offset, s.length, s.done])).toEqual([
      [0, 0, false],
      [0, 512 * KiB, false],
      [512 * KiB, 512 * KiB, false],
      [1024 * KiB, 512 * KiB, false],
      [1536 * KiB, 512 * KiB, false],
      [2048 * KiB, 512 * KiB, true],
    ]);
    for (const seen of proxy.seen) expect(seen.bodyBytes).toBeLessThan(DEFAULT_RPC_LIMITS.bodyLimitBytes);
  });

  it('sends a small snapshot in one request, and an empty one', async () => {
    const receiver = await startReceiver();
    const proxy = await startProxy(receiver.url);
    const peer = peerTo(proxy.url);
    const data = new Uint8Array(randomBytes(1000));
    await peer.installSnapshot(snapshotRequest(), data);
    await peer.installSnapshot(snapshotRequest({ snapshot: { index: 2_000, term: 4, configuration: { voters: [1, 2] } } }), new Uint8Array(0));
    expect(proxy.seen.map((s) => [s.offset, s.length, s.done])).toEqual([
      [0, 1000, true],
      [0, 0, true],
    ]);
    const installs = (receiver.handler as SnapshotRecorder).installs;
    expect(installs.map((i) => i.data.length)).toEqual([1000, 0]);
    expect(same(installs[0]!.data, data)).toBe(true);
  });

  it('after a chunk fails (503), a new call resumes where the receiver stopped; the node gets the complete bytes once', async () => {
    const receiver = await startReceiver();
    const proxy = await startProxy(receiver.url);
    const data = new Uint8Array(randomBytes(2.5 * MiB));
    const request = snapshotRequest();
    const peer = peerTo(proxy.url, { snapshotChunkBytes: 256 * KiB });
    // The fourth data chunk (offset 768 KiB) is refused on its way.
    proxy.fault = (_n, seen) => (seen.offset === 768 * KiB && seen.length > 0 && proxy.seen.filter((s) => s.offset === 768 * KiB && s.length > 0).length === 0 ? 'answer-503' : 'forward');
    const failed = await peer.installSnapshot(request, data).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RaftHttpError);
    expect(failed).toMatchObject({ status: 503 });
    const handler = receiver.handler as SnapshotRecorder;
    expect(handler.installs).toHaveLength(0);
    const firstAttempt = proxy.seen.length;

    const response = await peer.installSnapshot(request, data);
    expect(response).toMatchObject({ matchIndex: 1_000 });
    const retry = proxy.seen.slice(firstAttempt);
    // The probe learns that the receiver holds 768 KiB: the rest follows from there, nothing before it again.
    expect(retry[0]).toMatchObject({ offset: 0, length: 0 });
    expect(dataChunks(retry)[0]!.offset).toBe(768 * KiB);
    expect(dataChunks(retry).reduce((n, s) => n + s.length, 0)).toBe(data.length - 768 * KiB);
    expect(handler.installs).toHaveLength(1);
    expect(same(handler.installs[0]!.data, data)).toBe(true);
  });

  it('continues from the receiver\'s offset when an answer is lost on the way back, and installs once when the last answer is lost', async () => {
    const receiver = await startReceiver();
    const proxy = await startProxy(receiver.url);
    const data = new Uint8Array(randomBytes(1.25 * MiB));
    const request = snapshotRequest();
    const peer = peerTo(proxy.url, { snapshotChunkBytes: 256 * KiB });
    const lostAt = new Set<number>();
    // The answers to the third data chunk and to the last one never arrive (the receiver did get them).
    proxy.fault = (_n, seen) => {
      if (!(seen.offset === 512 * KiB || seen.done) || seen.length === 0 || lostAt.has(seen.offset)) return 'forward';
      lostAt.add(seen.offset);
      return 'lose-answer';
    };
    let response: InstallSnapshotResponse | undefined;
    for (let attempt = 0; attempt < 4 && !response; attempt++) {
      response = await peer.installSnapshot(request, data).catch((error: unknown) => {
        expect(error).toBeInstanceOf(PeerUnreachableError);
        return sleep(10).then(() => undefined);
      });
    }
    expect(response).toMatchObject({ matchIndex: 1_000 });
    expect(lostAt.size).toBe(2);
    const handler = receiver.handler as SnapshotRecorder;
    expect(handler.installs).toHaveLength(1);
    expect(same(handler.installs[0]!.data, data)).toBe(true);
    // Nothing was sent twice but the chunks whose answers were lost.
    const sent = dataChunks(proxy.seen).reduce((n, s) => n + s.length, 0);
    expect(sent).toBeLessThanOrEqual(data.length + 2 * 256 * KiB);
  });

  it('halves its chunks when the receiver refuses them as too large (413 body_too_large)', async () => {
    const receiver = await startReceiver({ limits: { bodyLimitBytes: 300 * KiB } });
    const proxy = await startProxy(receiver.url);
    const data = new Uint8Array(randomBytes(600 * KiB));
    await peerTo(proxy.url, { snapshotChunkBytes: 512 * KiB }).installSnapshot(snapshotRequest(), data);
    const handler = receiver.handler as SnapshotRecorder;
    expect(same(handler.installs[0]!.data, data)).toBe(true);
    expect(Math.max(...dataChunks(proxy.seen).map((s) => s.length))).toBe(512 * KiB); // tried first
    expect(dataChunks(proxy.seen).at(-1)!.length).toBeLessThanOrEqual(128 * KiB);
  });

  it('reports the receiver\'s refusals as typed errors: too large, stale, no snapshots taken, node stopped', async () => {
    const receiver = await startReceiver({ limits: { maxSnapshotBytes: 1 * MiB } });
    const peer = peerTo(receiver.url, { snapshotChunkBytes: 256 * KiB });
    const tooLarge = await peer.installSnapshot(snapshotRequest(), new Uint8Array(MiB + 1)).catch((e: unknown) => e);
    expect(tooLarge).toBeInstanceOf(SnapshotTransferError);
    expect(tooLarge).toMatchObject({ status: 413, code: 'snapshot_too_large' });
    expect((tooLarge as Error).message).toMatch(/1048577 bytes, more than the limit of 1048576 bytes/);

    // The node fails while installing: its error comes back typed.
    const handler = receiver.handler as SnapshotRecorder;
    handler.failWith = new NodeStoppedError('the Raft node is not running');
    const stopped = await peer.installSnapshot(snapshotRequest(), new Uint8Array(100)).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(NodeStoppedError);
    handler.failWith = undefined;

    // A newer leader (node 3, term 9) has sent the first part of its snapshot: the deposed leader's is stale.
    const first = encodeInstallSnapshotChunk(snapshotRequest({ from: 3, term: 9 }), { size: 1000, offset: 0, data: new Uint8Array(10), done: false });
    const reply = await sendSigned({ secret: SECRET, sender: 3, clusterId: CLUSTER, to: SELF }, `${receiver.url}/raft/installsnapshot`, first);
    expect(reply.json).toEqual({ term: 9, next_offset: 10 });
    const stale = await peer.installSnapshot(snapshotRequest({ term: 4 }), new Uint8Array(100)).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(SnapshotTransferError);
    expect(stale).toMatchObject({ status: 409, code: 'snapshot_stale' });
    expect(handler.installs).toHaveLength(0);

    const plain = await startReceiver({ handler: { id: SELF, appendEntries: handler.appendEntries, requestVote: handler.requestVote, command: handler.command, setConfiguration: handler.setConfiguration } });
    const unsupported = await peerTo(plain.url).installSnapshot(snapshotRequest(), new Uint8Array(10)).catch((e: unknown) => e);
    expect(unsupported).toBeInstanceOf(SnapshotTransferError);
    expect(unsupported).toMatchObject({ status: 501, code: 'snapshot_unsupported' });
  });

  it('stops at once when the caller aborts, and validates its options', async () => {
    const receiver = await startReceiver();
    const proxy = await startProxy(receiver.url);
    const abort = new AbortController();
    proxy.fault = (n) => {
      if (n === 2) abort.abort();
      return 'forward';
    };
    const error = await peerTo(proxy.url, { snapshotChunkBytes: 64 * KiB }).installSnapshot(snapshotRequest(), new Uint8Array(MiB), { signal: abort.signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AbortError' });
    expect(proxy.seen.length).toBeLessThanOrEqual(4);
    expect((receiver.handler as SnapshotRecorder).installs).toHaveLength(0);
    expect(() => new HttpTransport({ snapshotChunkBytes: 0 })).toThrow(/snapshotChunkBytes must be a positive integer/);
    expect(() => new HttpTransport({ snapshotChunkTimeoutMs: -1 })).toThrow(/snapshotChunkTimeoutMs/);
  });

  it('the digest is SHA-256 of the whole snapshot (the last chunk carries it)', async () => {
    const receiver = await startReceiver();
    const data = new Uint8Array(randomBytes(5000));
    const seen: string[] = [];
    // Read the digest off the wire through a signer hook (it sees every body).
    const peer = peerTo(receiver.url, {
      sign: (r) => {
        const body = JSON.parse(Buffer.from(r.body).toString()) as { digest?: string };
        if (body.digest) seen.push(body.digest);
        return createRaftRequestSigner({ nodeId: LEADER, clusterId: CLUSTER, secret: SECRET })(r);
      },
    });
    await peer.installSnapshot(snapshotRequest(), data);
    expect(seen).toEqual([createHash('sha256').update(data).digest('hex')]);
  });
});
