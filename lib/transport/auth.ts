/**
 * Peer authentication of the HTTP RPCs: every request a node sends is signed with HMAC-SHA256 under
 * the cluster's shared secret, and every request a node serves is verified before its body is parsed.
 *
 * The signature covers a canonical text of the request — method, path, timestamp, nonce, sender id,
 * cluster id, the addressee (`x-raft-to`), the forwarded timeout and the SHA-256 of the exact body
 * bytes — so that no part of a request can be changed, and a captured request cannot be sent to
 * another node (addressee), another cluster, later (timestamp within ±30 s) or again (nonce cache).
 *
 * A shared secret proves membership of the cluster, not which member is speaking: any holder of the
 * secret can sign as any node id. The receiving side therefore only checks that the body speaks for
 * the same node as the signed header (see docs/security.md, "Threat model").
 */
import { createHash, createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { RaftError, RaftOptionsError } from '../core/errors.js';
import type { NodeId } from '../core/types.js';
import { NonceReplayCache } from './auth-replay-cache.js';
import type { HttpRequestToSign } from './http-transport.js';
import { TIMEOUT_HEADER, TO_HEADER } from './wire.js';

/** The headers of a signed request. */
export const AUTH_HEADERS = {
  sender: 'x-raft-sender',
  cluster: 'x-raft-cluster',
  timestamp: 'x-raft-timestamp',
  nonce: 'x-raft-nonce',
  signature: 'x-raft-signature',
} as const;

/** First line of the signed text: names the scheme, so that a later one cannot be confused with it. */
export const AUTH_SCHEME = 'nestjs-raft-hmac-sha256-v1';

/** Shortest cluster secret accepted, in bytes. */
export const MIN_CLUSTER_SECRET_BYTES = 16;

/** Largest difference between a request's timestamp and the receiver's clock. */
export const DEFAULT_AUTH_CLOCK_SKEW_MS = 30_000;

/** Previous secrets accepted at most (a rotation needs one). */
export const MAX_PREVIOUS_CLUSTER_SECRETS = 4;

/** A cluster secret: text (its UTF-8 bytes are the key) or bytes. */
export type ClusterSecret = string | Uint8Array;

/** Why a peer request was refused: `status` is the HTTP status to answer with. */
export class PeerAuthError extends RaftError {
  constructor(
    readonly status: 401 | 403 | 410 | 412 | 429,
    readonly code: string,
    message: string,
    /** Seconds after which a throttled client may try again (429). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/**
 * The secret as an HMAC key. The value never appears in an error message, and a `KeyObject` does not
 * print its bytes (`util.inspect` shows only its size), so a logged options object or key leaks nothing.
 */
export function clusterSecretKey(secret: unknown, field = 'clusterSecret'): KeyObject {
  let bytes: Buffer;
  if (typeof secret === 'string') bytes = Buffer.from(secret, 'utf8');
  else if (secret instanceof Uint8Array) bytes = Buffer.from(secret);
  else throw new RaftOptionsError(field, `must be a string or bytes (got ${secret === null ? 'null' : typeof secret})`);
  if (bytes.length < MIN_CLUSTER_SECRET_BYTES) {
    throw new RaftOptionsError(field, `must be at least ${MIN_CLUSTER_SECRET_BYTES} bytes long (got ${bytes.length}); generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`);
  }
  const key = createSecretKey(bytes);
  bytes.fill(0);
  return key;
}

/** The cluster id as it travels in `x-raft-cluster` (header-safe, and what is signed). */
export function encodeClusterId(clusterId: string): string {
  return encodeURIComponent(clusterId);
}

/** SHA-256 of the body, hex: the body's part of the signed text. */
export function bodyDigest(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** Everything the signature covers. */
export interface SignedRequestParts {
  readonly method: string;
  /** Path and query exactly as sent in the request line, e.g. `/raft/appendentries`. */
  readonly path: string;
  readonly timestamp: string;
  readonly nonce: string;
  readonly sender: string;
  /** The encoded cluster id ({@link encodeClusterId}). */
  readonly cluster: string;
  /** The `x-raft-to` header, `''` when absent. */
  readonly to: string;
  /** The `x-raft-timeout-ms` header, `''` when absent. */
  readonly timeout: string;
  /** {@link bodyDigest} of the body. */
  readonly bodySha256: string;
}

/** The text that is signed: one part per line, after the scheme's name. */
export function canonicalRequest(parts: SignedRequestParts): string {
  return [AUTH_SCHEME, parts.method.toUpperCase(), parts.path, parts.timestamp, parts.nonce, parts.sender, parts.cluster, parts.to, parts.timeout, parts.bodySha256].join('\n');
}

function hmac(key: KeyObject, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest();
}

/** Options of {@link createRaftRequestSigner}. */
export interface RaftRequestSignerOptions {
  /** The signing node's id (`x-raft-sender`). */
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /** The current cluster secret (always the one signed with; previous ones only verify). */
  readonly secret: ClusterSecret;
  readonly now?: () => number;
}

/**
 * The `sign` hook of an {@link HttpTransport}: the authentication headers of one request. Give it to a
 * transport you build yourself (`new HttpTransport({ sign: createRaftRequestSigner({ … }) })`);
 * `RaftModule` does this for its own transport.
 */
export function createRaftRequestSigner(options: RaftRequestSignerOptions): (request: HttpRequestToSign) => Record<string, string> {
  const key = clusterSecretKey(options.secret);
  const now = options.now ?? Date.now;
  const sender = String(options.nodeId);
  const cluster = encodeClusterId(options.clusterId);
  return (request) => {
    const timestamp = String(Math.floor(now()));
    const nonce = randomBytes(16).toString('base64url');
    const signature = hmac(
      key,
      canonicalRequest({
        method: request.method,
        path: request.path,
        timestamp,
        nonce,
        sender,
        cluster,
        to: request.headers[TO_HEADER] ?? '',
        timeout: request.headers[TIMEOUT_HEADER] ?? '',
        bodySha256: bodyDigest(request.body),
      }),
    ).toString('base64url');
    return {
      [AUTH_HEADERS.sender]: sender,
      [AUTH_HEADERS.cluster]: cluster,
      [AUTH_HEADERS.timestamp]: timestamp,
      [AUTH_HEADERS.nonce]: nonce,
      [AUTH_HEADERS.signature]: signature,
    };
  };
}

/** The authentication headers of a request, checked for form (not yet for the signature). */
export interface PeerAuthHeaders {
  readonly sender: NodeId;
  readonly cluster: string;
  readonly timestamp: number;
  readonly nonce: string;
  readonly signature: Buffer;
  readonly to: string;
  readonly timeout: string;
}

/** A request whose signature, cluster and nonce were verified. */
export interface VerifiedPeer {
  /** The node the request speaks for (any holder of the secret can claim any id; see the module comment). */
  readonly sender: NodeId;
  /** 0: the current secret; 1…: one of the previous secrets (a rotation is under way). */
  readonly secretIndex: number;
}

/** Options of {@link RaftRequestVerifier}. */
export interface RaftRequestVerifierOptions {
  readonly clusterId: string;
  readonly secret: ClusterSecret;
  /** Also accepted, during a rotation. */
  readonly previousSecrets?: readonly ClusterSecret[];
  /** Default {@link DEFAULT_AUTH_CLOCK_SKEW_MS}. */
  readonly clockSkewMs?: number;
  readonly now?: () => number;
  /** Default: a {@link NonceReplayCache} for the clock window. */
  readonly replayCache?: NonceReplayCache;
}

const SENDER = /^[1-9][0-9]{0,15}$/;
const TIMESTAMP = /^[0-9]{1,16}$/;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const CLUSTER = /^[A-Za-z0-9%._~!*'()-]{1,1024}$/;

/** The receiving side: checks the headers, the signature (constant time), the cluster and the nonce. */
export class RaftRequestVerifier {
  private readonly keys: readonly KeyObject[];
  private readonly cluster: string;
  private readonly clockSkewMs: number;
  private readonly now: () => number;
  private readonly replays: NonceReplayCache;

  constructor(options: RaftRequestVerifierOptions) {
    const previous = options.previousSecrets ?? [];
    if (!Array.isArray(previous)) throw new RaftOptionsError('previousClusterSecrets', 'must be an array of secrets');
    if (previous.length > MAX_PREVIOUS_CLUSTER_SECRETS) throw new RaftOptionsError('previousClusterSecrets', `holds ${previous.length} secrets, more than ${MAX_PREVIOUS_CLUSTER_SECRETS}`);
    this.keys = [clusterSecretKey(options.secret), ...previous.map((s, i) => clusterSecretKey(s, `previousClusterSecrets[${i}]`))];
    this.cluster = encodeClusterId(options.clusterId);
    this.clockSkewMs = options.clockSkewMs ?? DEFAULT_AUTH_CLOCK_SKEW_MS;
    if (!(Number.isSafeInteger(this.clockSkewMs) && this.clockSkewMs > 0)) throw new RaftOptionsError('authClockSkewMs', `must be a positive integer, got ${String(options.clockSkewMs)}`);
    this.now = options.now ?? Date.now;
    this.replays = options.replayCache ?? new NonceReplayCache({ windowMs: this.clockSkewMs, now: this.now });
  }

  /** Whether the request carries any authentication header (else it is simply unauthenticated). */
  static isSigned(headers: IncomingHttpHeaders): boolean {
    return headers[AUTH_HEADERS.signature] !== undefined;
  }

  /**
   * The authentication headers, checked for presence, form and freshness (all cheap: no HMAC yet).
   * @throws PeerAuthError 401
   */
  readHeaders(headers: IncomingHttpHeaders): PeerAuthHeaders {
    const text = (name: string): string | undefined => {
      const value = headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    const signature = text(AUTH_HEADERS.signature);
    if (signature === undefined) {
      throw new PeerAuthError(401, 'unauthenticated', `peer authentication required: sign the request with the cluster secret (headers ${Object.values(AUTH_HEADERS).join(', ')})`);
    }
    const sender = text(AUTH_HEADERS.sender);
    const cluster = text(AUTH_HEADERS.cluster);
    const timestamp = text(AUTH_HEADERS.timestamp);
    const nonce = text(AUTH_HEADERS.nonce);
    const bad = (what: string) => new PeerAuthError(401, 'invalid_auth_headers', `invalid authentication header: ${what}`);
    if (!SIGNATURE.test(signature)) throw bad(`${AUTH_HEADERS.signature} must be 43 base64url characters`);
    if (sender === undefined || !SENDER.test(sender) || !Number.isSafeInteger(Number(sender))) throw bad(`${AUTH_HEADERS.sender} must be a node id`);
    if (cluster === undefined || !CLUSTER.test(cluster)) throw bad(`${AUTH_HEADERS.cluster} must be a URI-encoded cluster id`);
    if (timestamp === undefined || !TIMESTAMP.test(timestamp)) throw bad(`${AUTH_HEADERS.timestamp} must be milliseconds since the epoch`);
    if (nonce === undefined || !NONCE.test(nonce)) throw bad(`${AUTH_HEADERS.nonce} must be 16 to 64 base64url characters`);
    const to = headers[TO_HEADER];
    const timeout = headers[TIMEOUT_HEADER];
    if (typeof to !== 'string') throw bad(`${TO_HEADER} is required on a signed request`);
    if (timeout !== undefined && typeof timeout !== 'string') throw bad(`${TIMEOUT_HEADER} must appear once`);
    const at = Number(timestamp);
    const skew = at - this.now();
    if (Math.abs(skew) > this.clockSkewMs) {
      throw new PeerAuthError(401, 'stale_timestamp', `the request's timestamp is ${Math.round(Math.abs(skew) / 1000)} s ${skew < 0 ? 'old' : 'ahead of this node\'s clock'}, outside the ±${this.clockSkewMs / 1000} s window (check the clocks)`);
    }
    return { sender: Number(sender), cluster, timestamp: at, nonce, signature: Buffer.from(signature, 'base64url'), to, timeout: timeout ?? '' };
  }

  /**
   * Verifies the signature over the exact `body` bytes received (under the current secret, then each
   * previous one, each compared in constant time), then the cluster id (412), then the nonce (401).
   * @throws PeerAuthError
   */
  verify(auth: PeerAuthHeaders, method: string, path: string, body: Uint8Array): VerifiedPeer {
    const text = canonicalRequest({
      method,
      path,
      timestamp: String(auth.timestamp),
      nonce: auth.nonce,
      sender: String(auth.sender),
      cluster: auth.cluster,
      to: auth.to,
      timeout: auth.timeout,
      bodySha256: bodyDigest(body),
    });
    let secretIndex = -1;
    // Every key is tried (no early exit), so the time taken does not tell which one matched.
    this.keys.forEach((key, i) => {
      const expected = hmac(key, text);
      if (auth.signature.length === expected.length && timingSafeEqual(auth.signature, expected) && secretIndex < 0) secretIndex = i;
    });
    if (secretIndex < 0) throw new PeerAuthError(401, 'invalid_signature', 'the request signature does not verify (wrong cluster secret, or the request was altered)');
    if (auth.cluster !== this.cluster) {
      throw new PeerAuthError(412, 'wrong_cluster', `this node belongs to cluster "${decodeURIComponent(this.cluster)}", not "${safeDecode(auth.cluster)}"`);
    }
    const verdict = this.replays.admit(auth.sender, auth.nonce, auth.timestamp);
    if (verdict === 'replayed') throw new PeerAuthError(401, 'replayed', 'this request was already received (its nonce was seen before)');
    if (verdict === 'too_old') throw new PeerAuthError(401, 'stale_timestamp', 'the request is older than the nonces this node still remembers; send a new one');
    return { sender: auth.sender, secretIndex };
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text).slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
