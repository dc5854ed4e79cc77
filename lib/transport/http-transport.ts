/**
 * The HTTP client side of the RPCs: an {@link HttpPeer} per remote server, made by an
 * {@link HttpTransport}. It speaks the Go model's paths and bodies (see `wire.ts`).
 *
 * Built on `node:http` with a keep-alive Agent per peer rather than the global `fetch` (undici): on
 * loopback, Node 20, an AppendEntries of 8 entries took 115–245 µs per call with `node:http` against
 * 475–850 µs with `fetch`, both reusing their connections; heartbeats make this a leader's hot path.
 */
import http from 'node:http';
import https from 'node:https';
import { RaftError } from '../core/errors.js';
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  InstallSnapshotRequest,
  InstallSnapshotResponse,
  NodeId,
  RequestVoteRequest,
  RequestVoteResponse,
  TimeoutNowRequest,
} from '../core/types.js';
import { CommandAbortedError, CommandTimeoutError } from '../core/errors.js';
import { PeerUnreachableError } from './memory-transport.js';
import { SnapshotTransferError, snapshotDigest } from './snapshot-assembler.js';
import type { CommandOutcome, RaftMember, RaftPeer, RaftTransport, RpcOptions } from './transport.js';
import {
  decodeCommandOutcomes,
  encodeCommandBatch,
  DEFAULT_PATH_PREFIX,
  RAFT_JSON_CONTENT_TYPE,
  RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE,
  RPC_PATHS,
  TIMEOUT_HEADER,
  TO_HEADER,
  RaftHttpError,
  WireFormatError,
  decodeAnswer,
  decodeAppendEntriesResult,
  decodeInstallSnapshotResult,
  decodeRequestVoteResult,
  encodeAppendEntries,
  encodeAppendEntriesBinary,
  encodeInstallSnapshotChunk,
  encodeRequestVote,
  encodeSetConfiguration,
  errorFromWire,
  isIndex,
  isNodeId,
  normalizePathPrefix,
} from './wire.js';

/** Options of an {@link HttpTransport}; defaults in {@link HTTP_TRANSPORT_DEFAULTS}. */
export interface HttpTransportOptions {
  /** Where the peers serve the RPCs (the Go model's `/raft`); must match their controllers' prefix. */
  readonly pathPrefix?: string;
  /** Deadline of an AppendEntries, a RequestVote or an id lookup, unless the call gives its own. */
  readonly rpcTimeoutMs?: number;
  /** Deadline of a forwarded command or membership change, unless the call gives its own. */
  readonly commandTimeoutMs?: number;
  /** After the first failure a peer is left alone this long; the pause doubles per failure. */
  readonly backoffInitialMs?: number;
  /** The longest pause. Keep it near the election timeout, or a returning follower waits long for the leader. */
  readonly backoffMaxMs?: number;
  /**
   * Bytes of a snapshot per InstallSnapshot request (each chunk is its own request, base64 in JSON: a
   * third larger on the wire). Keep it well below the receivers' body limit (8 MiB by default); a
   * chunk refused as too large (413 `body_too_large`) is sent again in halves.
   */
  readonly snapshotChunkBytes?: number;
  /**
   * Deadline of each InstallSnapshot request (one chunk; the last one includes making the snapshot
   * durable on the receiver), unless the call gives its own `timeoutMs` — which, too, applies per chunk.
   */
  readonly snapshotChunkTimeoutMs?: number;
  /** Concurrent connections to one peer (pipelined AppendEntries use several). */
  readonly maxSocketsPerPeer?: number;
  /** An answer larger than this is refused (a defence against a misbehaving peer). */
  readonly maxResponseBytes?: number;
  /**
   * Content type of AppendEntries and RequestVote. The default, `application/vnd.raft+json`, is not
   * parsed by Nest's default JSON parser (100 kB limit), so the receiving controller parses it with
   * its own body limit; use `application/json` for a receiver that only accepts that.
   */
  readonly contentType?: string;
  /**
   * How AppendEntries travels. `binary` (the default): `application/vnd.raft.appendentries`, the
   * commands' bytes as they are (see `encodeAppendEntriesBinary`); a receiver that answers 415 (a
   * JSON-only server, such as one of the Go model) gets JSON for a minute, then binary is tried again
   * (it may have been upgraded). `json`: always the Go
   * model's JSON body ({@link contentType}), commands in base64.
   */
  readonly appendEntriesEncoding?: 'binary' | 'json';
  /** Extra headers on every request (informational ones; peers authenticate through {@link sign}). */
  readonly headers?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);
  /**
   * Signs each request: called for every attempt (a retry is signed again, with a fresh nonce) with the
   * method, path, exact body bytes and headers, it returns headers to add — the cluster's HMAC
   * signature (`createRaftRequestSigner`), which `RaftModule` sets up for its own transport.
   */
  readonly sign?: (request: HttpRequestToSign) => Readonly<Record<string, string>>;
  /**
   * TLS settings for `https:` peers: the CA to trust, and this node's client certificate and key for
   * mutual TLS (see docs/security.md). Ignored for `http:` peers.
   */
  readonly tls?: HttpTransportTlsOptions;
}

/** TLS settings of an {@link HttpTransport} (a subset of `https.AgentOptions`). */
export type HttpTransportTlsOptions = Pick<https.AgentOptions, 'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'servername' | 'rejectUnauthorized' | 'checkServerIdentity' | 'minVersion'>;

/** What {@link HttpTransportOptions.sign} is given: everything a signature has to cover. */
export interface HttpRequestToSign {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  /** Path and query as they appear in the request line (`/raft/appendentries`). */
  readonly path: string;
  /** The exact bytes of the body (empty for a GET). */
  readonly body: Uint8Array;
  /** The node the request is meant for, when known. */
  readonly to?: NodeId;
  /** The request's other headers (`x-raft-to`, `x-raft-timeout-ms`, content type …). */
  readonly headers: Readonly<Record<string, string>>;
}

/** How long a peer that refused the binary AppendEntries (415) gets JSON before binary is tried again. */
const BINARY_RETRY_MS = 60_000;

/** Options with the defaults filled in. */
type ResolvedHttpTransportOptions = Required<Omit<HttpTransportOptions, 'headers' | 'sign' | 'tls'>> & Pick<HttpTransportOptions, 'headers' | 'sign' | 'tls'>;

export const HTTP_TRANSPORT_DEFAULTS = {
  pathPrefix: DEFAULT_PATH_PREFIX,
  rpcTimeoutMs: 1_000,
  commandTimeoutMs: 30_000,
  backoffInitialMs: 50,
  backoffMaxMs: 1_000,
  maxSocketsPerPeer: 16,
  maxResponseBytes: 64 * 1024 * 1024,
  contentType: RAFT_JSON_CONTENT_TYPE,
  appendEntriesEncoding: 'binary',
  snapshotChunkBytes: 512 * 1024,
  snapshotChunkTimeoutMs: 30_000,
} as const satisfies Required<Omit<HttpTransportOptions, 'headers' | 'sign' | 'tls'>>;

/** A peer failed recently and is being left alone for a while; the call was not attempted. */
export class PeerUnavailableError extends PeerUnreachableError {
  constructor(
    readonly peerId: NodeId,
    /** Milliseconds until the next attempt is allowed (0: another attempt is under way). */
    readonly retryInMs: number,
    readonly failures: number,
  ) {
    super(`node ${peerId} is unavailable after ${failures} failure${failures === 1 ? '' : 's'}; ${retryInMs > 0 ? `next attempt in ${retryInMs} ms` : 'a probe is under way'}`);
  }
}

/** An AppendEntries, RequestVote or id lookup got no answer within its deadline. */
export class RpcTimeoutError extends PeerUnreachableError {
  constructor(
    readonly timeoutMs: number,
    what: string,
  ) {
    super(`${what}: no answer within ${timeoutMs} ms`);
  }
}

/** The transport (or the peer) was closed; the call was abandoned. */
export class TransportClosedError extends RaftError {
  constructor() {
    super('the HTTP transport is closed');
  }
}

const EMPTY_BODY = new Uint8Array(0);

/** Smallest chunk a snapshot is split into when the receiver refuses larger bodies. */
const MIN_SNAPSHOT_CHUNK_BYTES = 16 * 1024;

/** Answers in a row that move a snapshot transfer nowhere before it is given up. */
const MAX_SNAPSHOT_STALLS = 4;

/** Digests of the snapshots sent, per bytes object: a retry of the same snapshot does not hash it again. */
const SNAPSHOT_DIGESTS = new WeakMap<Uint8Array, { readonly length: number; readonly digest: string }>();

async function cachedSnapshotDigest(data: Uint8Array, signal: AbortSignal | undefined): Promise<string> {
  const cached = SNAPSHOT_DIGESTS.get(data);
  if (cached && cached.length === data.length) return cached.digest;
  const digest = await snapshotDigest(data, signal);
  SNAPSHOT_DIGESTS.set(data, { length: data.length, digest });
  return digest;
}

/** Kinds of call: how their deadline, abort and retry behave. */
type CallKind = 'rpc' | 'command' | 'snapshot';

/** A received HTTP answer. */
interface HttpAnswer {
  readonly status: number;
  readonly body: Buffer;
}

interface RequestSpec {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  /** Headers computed per attempt (a signature with a fresh nonce). */
  readonly sign?: () => Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** What a timeout rejects with. */
  readonly onTimeout: () => Error;
  /** What the caller's abort rejects with. */
  readonly onAbort: (signal: AbortSignal) => unknown;
  /** Safe to send twice: retried once when a kept-alive socket turns out to have been closed by the server. */
  readonly idempotent: boolean;
  readonly agent: http.Agent | undefined;
  /** TLS settings of a request without its own agent (an id lookup). */
  readonly tls?: HttpTransportTlsOptions;
  readonly maxResponseBytes: number;
  readonly signal?: AbortSignal;
  /** Calls in flight, so that closing can abandon them. */
  readonly inflight?: Set<(error: Error) => void>;
}

/**
 * One HTTP request with a total deadline and the caller's signal, both without `AbortSignal.any`
 * (whose dependants on a long-lived signal were a source of leaks in Node 20): a timer and a listener
 * that are removed when the call ends.
 */
function sendRequest(spec: RequestSpec): Promise<HttpAnswer> {
  if (spec.signal?.aborted) return Promise.reject(spec.onAbort(spec.signal));
  const client = spec.url.protocol === 'https:' ? https : http;
  return new Promise<HttpAnswer>((resolve, reject) => {
    let done = false;
    let current: http.ClientRequest | undefined;
    const finish = (error: unknown, answer?: HttpAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      spec.inflight?.delete(cancel);
      if (error !== undefined) {
        current?.destroy();
        reject(error);
      } else {
        resolve(answer!);
      }
    };
    const cancel = (error: Error) => finish(error);
    const onAbort = () => finish(spec.onAbort(spec.signal!));
    const timer = setTimeout(() => finish(spec.onTimeout()), spec.timeoutMs);
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    spec.inflight?.add(cancel);

    const attempt = (mayRetry: boolean) => {
      const headers: Record<string, string> = { ...spec.headers };
      if (spec.body) headers['content-length'] = String(spec.body.length);
      if (spec.sign) {
        let signed: Readonly<Record<string, string>>;
        try {
          signed = spec.sign();
        } catch (error) {
          finish(error);
          return;
        }
        Object.assign(headers, signed);
      }
      const tls = spec.agent === undefined && spec.url.protocol === 'https:' ? spec.tls : undefined;
      const req = client.request(spec.url, { method: spec.method, agent: spec.agent, headers, ...tls }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > spec.maxResponseBytes) finish(new WireFormatError(`the answer of ${spec.url.href} exceeds ${spec.maxResponseBytes} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks, size) }));
        res.on('error', (error) => finish(unreachable(spec.url, error)));
        res.on('close', () => {
          if (!res.complete) finish(unreachable(spec.url, new Error('the connection closed before the answer was complete')));
        });
      });
      current = req;
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (done) return;
        // A kept-alive socket the server closed meanwhile: nothing was processed, so send again once.
        if (mayRetry && req.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) attempt(false);
        else finish(unreachable(spec.url, error));
      });
      req.end(spec.body);
    };
    attempt(spec.idempotent);
  });
}

function unreachable(url: URL, cause: Error): PeerUnreachableError {
  const error = new PeerUnreachableError(`${url.origin} is unreachable: ${cause.message}`);
  Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
  return error;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function parseJson(answer: HttpAnswer, what: string): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new WireFormatError(`${what}: the answer is not JSON`);
  }
}

/** The typed error for a non-200 answer (its body is JSON when it comes from a RaftModule). */
function errorAnswer(answer: HttpAnswer): RaftError {
  let body: unknown;
  try {
    body = JSON.parse(answer.body.toString('utf8'));
  } catch {
    body = { error: answer.body.toString('utf8').slice(0, 500) || `HTTP ${answer.status}` };
  }
  return errorFromWire(answer.status, body);
}

function parseNodeId(text: string, url: string): NodeId {
  const trimmed = text.trim();
  const id = /^[0-9]{1,16}$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!isNodeId(id)) throw new WireFormatError(`${url} answered "${trimmed.slice(0, 40)}", not a node id`);
  return id;
}

function checkUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RaftError(`"${url}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new RaftError(`"${url}" is not an http or https URL`);
  return parsed;
}

/** `{base}{prefix}/{path}`, keeping a path the base URL may already have. */
function endpoint(base: URL, prefix: string, path: string): URL {
  const url = new URL(base.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${prefix}/${path}`;
  return url;
}

/** Options of {@link HttpTransport.discoverId}. */
export interface DiscoverIdOptions extends RpcOptions {
  readonly pathPrefix?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** For an `https:` url. */
  readonly tls?: HttpTransportTlsOptions;
}

/**
 * Per-peer backoff after failures, with one probe at a time once a pause is over. Calls that were
 * already in flight when a failure was recorded (pipelined AppendEntries to a peer that just died)
 * count as that one failure, not one each: the pause doubles per round of attempts.
 */
class Backoff {
  failures = 0;
  private retryAt = 0;
  private probing = false;
  /** Bumped by each counted failure; a call remembers the generation it started in. */
  private generation = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {}

  /** Throws when calls must fail fast; otherwise returns the call's ticket. */
  admit(peerId: NodeId): { readonly generation: number; readonly probe: boolean } {
    if (this.failures === 0) return { generation: this.generation, probe: false };
    const now = Date.now();
    if (now < this.retryAt || this.probing) throw new PeerUnavailableError(peerId, Math.max(0, this.retryAt - now), this.failures);
    this.probing = true;
    return { generation: this.generation, probe: true };
  }

  succeeded(): void {
    this.failures = 0;
    this.retryAt = 0;
  }

  failed(ticket: { readonly generation: number }): void {
    if (ticket.generation !== this.generation) return; // already counted by a call of the same round
    this.generation++;
    this.failures++;
    this.retryAt = Date.now() + Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.failures - 1, 30));
  }

  /** The call that was the probe has ended (however it ended). */
  ended(ticket: { readonly probe: boolean }): void {
    if (ticket.probe) this.probing = false;
  }

  /** Milliseconds until a call is attempted again (0 when calls go through). */
  get retryInMs(): number {
    return this.failures === 0 ? 0 : Math.max(0, this.retryAt - Date.now());
  }
}

/** One remote server over HTTP (the Go model's `HTTPPeer`). Get one from {@link HttpTransport.peer}. */
export class HttpPeer implements RaftPeer {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly inflight = new Set<(error: Error) => void>();
  private readonly backoff: Backoff;
  private readonly prefix: string;
  private closed = false;
  /** Until when AppendEntries goes to this peer as JSON (it answered 415 to the binary body). */
  private jsonUntil = 0;

  /** @internal use {@link HttpTransport.peer} */
  constructor(
    readonly id: NodeId,
    /** The peer's base URL (the RPCs live under `{url}{pathPrefix}`). */
    readonly url: string,
    private readonly options: ResolvedHttpTransportOptions,
    private readonly onClose?: (peer: HttpPeer) => void,
  ) {
    this.base = checkUrl(url);
    this.prefix = normalizePathPrefix(options.pathPrefix);
    const agentOptions = { keepAlive: true, maxSockets: options.maxSocketsPerPeer };
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ ...agentOptions, ...options.tls }) : new http.Agent(agentOptions);
    this.backoff = new Backoff(options.backoffInitialMs, options.backoffMaxMs);
  }

  /** Failures since the last success, and how long calls keep failing fast. */
  get availability(): { readonly failures: number; readonly retryInMs: number } {
    return { failures: this.backoff.failures, retryInMs: this.backoff.retryInMs };
  }

  async appendEntries(request: AppendEntriesRequest, options?: RpcOptions): Promise<AppendEntriesResponse> {
    let answer: HttpAnswer | undefined;
    const binary = this.options.appendEntriesEncoding === 'binary' && Date.now() >= this.jsonUntil;
    if (binary) {
      const startedAt = Date.now();
      const body = { data: encodeAppendEntriesBinary(request), contentType: RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE };
      answer = await this.call('POST', RPC_PATHS.appendEntries, body, 'rpc', options);
      if (answer.status === 415) {
        // A receiver that does not read this binary body (a JSON-only server, or an older version):
        // JSON for a while (this request included), then binary again, in case it was upgraded.
        this.jsonUntil = Date.now() + BINARY_RETRY_MS;
        const timeoutMs = Math.max(1, (options?.timeoutMs ?? this.options.rpcTimeoutMs) - (Date.now() - startedAt));
        answer = undefined;
        options = { ...options, timeoutMs };
      }
    }
    answer ??= await this.call('POST', RPC_PATHS.appendEntries, this.json(encodeAppendEntries(request)), 'rpc', options);
    if (answer.status !== 200) throw errorAnswer(answer);
    return decodeAppendEntriesResult(parseJson(answer, 'AppendEntries'), request, this.id);
  }

  async requestVote(request: RequestVoteRequest, options?: RpcOptions): Promise<RequestVoteResponse> {
    const answer = await this.call('POST', RPC_PATHS.requestVote, this.json(encodeRequestVote(request)), 'rpc', options);
    if (answer.status !== 200) throw errorAnswer(answer);
    return decodeRequestVoteResult(parseJson(answer, 'RequestVote'), request, this.id);
  }

  /**
   * Forwards a command to this peer (the leader); resolves with the state machine's answer once
   * applied (decoded by `decodeAnswer`: bytes come back as a Uint8Array).
   */
  async command(command: Uint8Array, options?: RpcOptions): Promise<unknown> {
    const body = { data: Buffer.from(command.buffer, command.byteOffset, command.byteLength), contentType: 'application/octet-stream' };
    const answer = await this.call('POST', RPC_PATHS.command, body, 'command', options);
    if (answer.status !== 200) throw errorAnswer(answer);
    const json = parseJson(answer, 'command');
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new WireFormatError('command: the answer is not a JSON object');
    return decodeAnswer((json as { result?: unknown }).result);
  }

  /** Forwards several commands in one request (`POST {prefix}/commands`, a binary batch); one outcome per command. */
  async commands(commands: readonly Uint8Array[], options?: RpcOptions): Promise<CommandOutcome[]> {
    const answer = await this.call('POST', RPC_PATHS.commands, { data: encodeCommandBatch(commands), contentType: 'application/octet-stream' }, 'command', options);
    if (answer.status !== 200) throw errorAnswer(answer);
    return decodeCommandOutcomes(parseJson(answer, 'commands'), commands.length);
  }

  /**
   * Forwards a membership change to this peer (the leader): voters `members` and, when given, the
   * complete set of `learners`; resolves once C_new is committed.
   */
  async setConfiguration(members: readonly RaftMember[], options?: RpcOptions, learners?: readonly RaftMember[]): Promise<void> {
    const answer = await this.call('POST', RPC_PATHS.setConfiguration, this.json(encodeSetConfiguration(members, learners)), 'command', options);
    if (answer.status !== 200) throw errorAnswer(answer);
    const json = parseJson(answer, 'setConfiguration');
    if ((json as { success?: unknown } | null)?.success !== true) throw errorFromWire(answer.status, json);
  }

  /** Asks this peer (the leader) for a read index confirmed by a quorum (`POST {prefix}/readindex`, thesis §6.4). */
  async readIndex(options?: RpcOptions): Promise<number> {
    const answer = await this.call('POST', RPC_PATHS.readIndex, this.json({}), 'command', options);
    if (answer.status !== 200) throw errorAnswer(answer);
    const index = (parseJson(answer, 'readIndex') as { index?: unknown } | null)?.index;
    if (!isIndex(index)) throw new WireFormatError('readIndex: the answer has no valid index');
    return index;
  }

  /** Tells this peer to campaign at once: the sender hands leadership over (`POST {prefix}/timeoutnow`, thesis §3.10). */
  async timeoutNow(request: TimeoutNowRequest, options?: RpcOptions): Promise<void> {
    const answer = await this.call('POST', RPC_PATHS.timeoutNow, this.json({ term: request.term, leader_id: request.from }), 'rpc', options);
    if (answer.status !== 200) throw errorAnswer(answer);
  }

  /**
   * Sends a snapshot (`POST {prefix}/installsnapshot`, thesis §5.4.1) in chunks of
   * `snapshotChunkBytes`, and resolves with the follower's answer once it is installed there.
   *
   * Resumable: a transfer of several chunks starts with an empty chunk at offset 0, whose answer says
   * how much of this snapshot the receiver already holds (from an interrupted attempt), and continues
   * from there; whenever the receiver answers another offset than the one sent, the transfer continues
   * from the receiver's. A call that fails (a chunk refused, the peer unreachable, a timeout) rejects;
   * calling again with the same snapshot resumes where the receiver stopped. `options.timeoutMs`
   * bounds each chunk's request (default `snapshotChunkTimeoutMs`), `options.signal` the whole
   * transfer. `data` must not change while it is being sent.
   */
  async installSnapshot(request: InstallSnapshotRequest, data: Uint8Array, options?: RpcOptions): Promise<InstallSnapshotResponse> {
    if (this.closed) throw new TransportClosedError();
    const size = data.length;
    let chunkBytes = this.options.snapshotChunkBytes;
    let digest = await cachedSnapshotDigest(data, options?.signal);
    let offset = 0;
    let probe = size > chunkBytes;
    let restarted = false;
    let stalls = 0;
    for (;;) {
      if (options?.signal?.aborted) throw abortReason(options.signal);
      const length = probe ? 0 : Math.min(chunkBytes, size - offset);
      const done = !probe && offset + length === size;
      const body = encodeInstallSnapshotChunk(request, { size, offset, data: data.subarray(offset, offset + length), done, ...(done ? { digest } : {}) });
      const answer = await this.call('POST', RPC_PATHS.installSnapshot, this.json(body), 'snapshot', options);
      if (answer.status !== 200) {
        const error = errorAnswer(answer);
        if (error instanceof RaftHttpError && error.status === 413 && error.code === 'body_too_large' && length > MIN_SNAPSHOT_CHUNK_BYTES) {
          chunkBytes = Math.max(MIN_SNAPSHOT_CHUNK_BYTES, Math.floor(length / 2));
          continue;
        }
        if (error instanceof SnapshotTransferError && error.code === 'snapshot_digest_mismatch' && !restarted) {
          // The receiver dropped what it had (bytes of another snapshot with the same metadata, or of
          // `data` before it changed): send everything once more, with a digest computed afresh.
          restarted = true;
          SNAPSHOT_DIGESTS.delete(data);
          digest = await cachedSnapshotDigest(data, options?.signal);
          offset = 0;
          probe = false;
          continue;
        }
        throw error;
      }
      const result = decodeInstallSnapshotResult(parseJson(answer, 'InstallSnapshot'), request, this.id, size);
      if (result.done) return result.response;
      if (!probe && result.nextOffset <= offset) {
        // The receiver went back (its assembly expired or was replaced) or did not move: tolerated a few times.
        if (++stalls > MAX_SNAPSHOT_STALLS) {
          throw new WireFormatError(`InstallSnapshot to node ${this.id}: the receiver answered offset ${result.nextOffset} after a chunk at ${offset}, ${stalls} times in a row`);
        }
      } else {
        stalls = 0;
      }
      probe = false;
      offset = result.nextOffset;
    }
  }

  /** Asks the server at {@link url} for its id (`GET {prefix}/id`). */
  async fetchId(options?: RpcOptions): Promise<NodeId> {
    const answer = await this.call('GET', RPC_PATHS.id, undefined, 'rpc', options, false);
    if (answer.status !== 200) throw errorAnswer(answer);
    return parseNodeId(answer.body.toString('utf8'), this.url);
  }

  /** Abandons the calls in flight (they reject with {@link TransportClosedError}) and closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new TransportClosedError();
    for (const cancel of [...this.inflight]) cancel(error);
    this.agent.destroy();
    this.onClose?.(this);
  }

  private json(value: unknown): { data: Buffer; contentType: string } {
    return { data: Buffer.from(JSON.stringify(value)), contentType: this.options.contentType };
  }

  private async call(
    method: 'GET' | 'POST',
    path: string,
    body: { data: Buffer; contentType: string } | undefined,
    kind: CallKind,
    options: RpcOptions | undefined,
    sendTo = true,
  ): Promise<HttpAnswer> {
    if (this.closed) throw new TransportClosedError();
    const ticket = this.backoff.admit(this.id);
    const timeoutMs =
      options?.timeoutMs ?? (kind === 'rpc' ? this.options.rpcTimeoutMs : kind === 'snapshot' ? this.options.snapshotChunkTimeoutMs : this.options.commandTimeoutMs);
    const url = endpoint(this.base, this.prefix, path);
    const extra = typeof this.options.headers === 'function' ? this.options.headers() : this.options.headers;
    const headers: Record<string, string> = { ...extra, accept: method === 'GET' ? 'text/plain' : 'application/json' };
    if (body) headers['content-type'] = body.contentType;
    if (sendTo) headers[TO_HEADER] = String(this.id);
    if (kind === 'command') headers[TIMEOUT_HEADER] = String(timeoutMs);
    const sign = this.options.sign;
    const bytes = body?.data ?? EMPTY_BODY;
    try {
      const answer = await sendRequest({
        method,
        url,
        headers,
        ...(body ? { body: body.data } : {}),
        ...(sign ? { sign: () => sign({ method, url, path: url.pathname + url.search, body: bytes, to: this.id, headers }) } : {}),
        timeoutMs,
        onTimeout: () => (kind === 'command' ? new CommandTimeoutError(timeoutMs) : new RpcTimeoutError(timeoutMs, `${path} to node ${this.id}`)),
        onAbort: (signal) => (kind === 'command' ? new CommandAbortedError() : abortReason(signal)),
        // A chunk sent twice is harmless: the receiver answers the offset it expects.
        idempotent: kind !== 'command',
        agent: this.agent,
        maxResponseBytes: this.options.maxResponseBytes,
        ...(options?.signal ? { signal: options.signal } : {}),
        inflight: this.inflight,
      });
      this.backoff.succeeded(); // any HTTP answer shows the peer is up
      return answer;
    } catch (error) {
      // Only "no answer" counts against the peer: not a caller's abort, not a command the leader is still working on.
      if (error instanceof PeerUnreachableError) this.backoff.failed(ticket);
      throw error;
    } finally {
      this.backoff.ended(ticket);
    }
  }
}

/**
 * Makes {@link HttpPeer}s (the Go model's `HTTPTransport` client side): one per server id and url,
 * each with its own keep-alive connections and backoff, until the transport closes.
 */
export class HttpTransport implements RaftTransport {
  private readonly options: ResolvedHttpTransportOptions;
  private readonly peers = new Map<string, HttpPeer>();
  private readonly lookups = new Set<(error: Error) => void>();
  private closed = false;

  constructor(options: HttpTransportOptions = {}) {
    const merged = { ...HTTP_TRANSPORT_DEFAULTS, ...withoutUndefined(options) };
    for (const name of ['rpcTimeoutMs', 'commandTimeoutMs', 'backoffInitialMs', 'backoffMaxMs', 'maxSocketsPerPeer', 'maxResponseBytes', 'snapshotChunkBytes', 'snapshotChunkTimeoutMs'] as const) {
      const value = merged[name];
      if (!Number.isSafeInteger(value) || value <= 0) throw new RaftError(`HttpTransport option ${name} must be a positive integer, got ${String(value)}`);
    }
    this.options = { ...merged, pathPrefix: normalizePathPrefix(merged.pathPrefix) };
  }

  /**
   * The peer for server `id` at base URL `url` (required: HTTP needs an address); the same object for
   * the same pair. A peer made for an older url stays usable (a caller may still hold it); its idle
   * connections are closed by the server's keep-alive timeout, and {@link close} closes them all.
   */
  peer(id: NodeId, url?: string): HttpPeer {
    if (this.closed) throw new TransportClosedError();
    if (!isNodeId(id)) throw new RaftError(`node id ${String(id)} is not a positive integer`);
    if (url === undefined) throw new RaftError(`the HTTP transport needs the url of node ${id}`);
    const key = `${id} ${url}`;
    const existing = this.peers.get(key);
    if (existing) return existing;
    const peer = new HttpPeer(id, url, this.options, (closed) => {
      if (this.peers.get(key) === closed) this.peers.delete(key);
    });
    this.peers.set(key, peer);
    return peer;
  }

  /** The peer at `url`, whose id is learnt through `GET {prefix}/id`, as the Go model's `NewHTTPPeer` did. */
  async peerAt(url: string, options?: RpcOptions): Promise<HttpPeer> {
    const id = await this.discoverId(url, options);
    return this.peer(id, url);
  }

  /** The id of the server at `url`, with this transport's prefix, headers and timeout. */
  discoverId(url: string, options?: RpcOptions): Promise<NodeId> {
    if (this.closed) return Promise.reject(new TransportClosedError());
    const headers = typeof this.options.headers === 'function' ? this.options.headers() : this.options.headers;
    return lookupId(url, {
      pathPrefix: this.options.pathPrefix,
      timeoutMs: options?.timeoutMs ?? this.options.rpcTimeoutMs,
      ...(options?.signal ? { signal: options.signal } : {}),
      ...(headers ? { headers } : {}),
      ...(this.options.tls ? { tls: this.options.tls } : {}),
    }, this.lookups, this.options.sign);
  }

  /** The id of the server at `url` (`GET {url}{pathPrefix}/id`), without a transport. */
  static discoverId(url: string, options: DiscoverIdOptions = {}): Promise<NodeId> {
    return lookupId(url, options);
  }

  /** Closes every peer; calls in flight reject with {@link TransportClosedError}. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new TransportClosedError();
    for (const cancel of [...this.lookups]) cancel(error);
    await Promise.all([...this.peers.values()].map((peer) => peer.close()));
    this.peers.clear();
  }
}

async function lookupId(
  url: string,
  options: DiscoverIdOptions,
  inflight?: Set<(error: Error) => void>,
  sign?: HttpTransportOptions['sign'],
): Promise<NodeId> {
  const base = checkUrl(url);
  const timeoutMs = options.timeoutMs ?? HTTP_TRANSPORT_DEFAULTS.rpcTimeoutMs;
  const target = endpoint(base, normalizePathPrefix(options.pathPrefix ?? DEFAULT_PATH_PREFIX), RPC_PATHS.id);
  const headers = { ...options.headers, accept: 'text/plain' };
  const answer = await sendRequest({
    method: 'GET',
    url: target,
    headers,
    ...(sign ? { sign: () => sign({ method: 'GET', url: target, path: target.pathname + target.search, body: EMPTY_BODY, headers }) } : {}),
    timeoutMs,
    onTimeout: () => new RpcTimeoutError(timeoutMs, `GET ${target.href}`),
    onAbort: abortReason,
    idempotent: true,
    agent: undefined,
    ...(options.tls ? { tls: options.tls } : {}),
    maxResponseBytes: 1024,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(inflight ? { inflight } : {}),
  });
  if (answer.status !== 200) throw errorAnswer(answer);
  return parseNodeId(answer.body.toString('utf8'), target.href);
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
