/**
 * What the RPC controller asks before it lets a request reach the node: who is calling, and may they.
 *
 * Order of the checks for a POST (each answer says why, and nothing reaches the node before the last):
 *   429 the address has no token left (unauthenticated requests only; before any signature work)
 *   401 no, malformed or stale authentication headers
 *   415 not JSON (JSON routes) · 413 body above the limit (read with the limit, never parsed yet)
 *   401 signature wrong · 412 signed for another cluster · 401 nonce seen before (replay)
 *   400 body malformed (in the controller) · 403 body speaks for another node than the signer
 *   410 sender known to have been removed (see membership-view.ts)
 *
 * Three modes: `authenticated` (a cluster secret is configured), `closed` (a single-node cluster without
 * a secret: it has no peers, so every peer RPC is refused), `open` (`insecureNoAuth`: as before).
 */
import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { NodeId } from '../../core/types.js';
import { PeerAuthError, RaftRequestVerifier, type ClusterSecret } from '../../transport/auth.js';
import { readExactBody, type RaftHttpRequest } from '../raft-body.js';
import type { RaftMembershipView } from './membership-view.js';
import { AddressRateLimiter, type RaftRateLimitOptions } from './rate-limiter.js';

export type RaftRpcSecurityMode = 'authenticated' | 'closed' | 'open';

export interface RaftRpcSecurityOptions {
  readonly mode: RaftRpcSecurityMode;
  /** This node's id (a request signed as this node is refused). */
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /** Required in `authenticated` mode. */
  readonly secret?: ClusterSecret;
  readonly previousSecrets?: readonly ClusterSecret[];
  readonly clockSkewMs?: number;
  /** `false`: no throttling of unauthenticated requests. */
  readonly rateLimit?: RaftRateLimitOptions | false;
  readonly membership?: RaftMembershipView;
  /** Mutual TLS: the node a verified client certificate stands for; it must be the signer. */
  readonly peerCertificateNodeId?: (certificate: PeerCertificate) => NodeId | undefined;
  readonly now?: () => number;
  readonly logger?: { warn(message: string): void };
  /** Called on shutdown (e.g. to stop the membership tracker). */
  readonly onClose?: () => void;
}

/** A request that passed {@link RaftRpcSecurity.authenticate}. */
export interface AdmittedRpc {
  /** The authenticated sender; undefined in `open` mode. */
  readonly sender: NodeId | undefined;
  /** The exact body bytes (those the signature covers). */
  readonly body: Buffer;
}

/** What a request body claims, for {@link RaftRpcSecurity.authorize}. */
export interface RpcClaim {
  /** The node the body speaks for (`leader_id`, `candidate_id`) and that field's name. */
  readonly id?: NodeId;
  readonly field?: string;
  /** The body's term, when it has one. */
  readonly term?: number;
}

/** Refusals are logged at most this often per code. */
const LOG_INTERVAL_MS = 10_000;

export class RaftRpcSecurity implements OnApplicationShutdown {
  readonly mode: RaftRpcSecurityMode;
  private readonly nodeId: NodeId;
  private readonly verifier: RaftRequestVerifier | undefined;
  private readonly limiter: AddressRateLimiter | undefined;
  private readonly membership: RaftMembershipView | undefined;
  private readonly certificateNodeId: ((certificate: PeerCertificate) => NodeId | undefined) | undefined;
  private readonly logger: { warn(message: string): void };
  private readonly lastLogged = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private readonly onClose: (() => void) | undefined;
  private closed = false;

  constructor(options: RaftRpcSecurityOptions) {
    this.mode = options.mode;
    this.nodeId = options.nodeId;
    const now = options.now ?? Date.now;
    if (options.mode === 'authenticated') {
      if (options.secret === undefined) throw new Error('RaftRpcSecurity: the authenticated mode needs a secret');
      this.verifier = new RaftRequestVerifier({
        clusterId: options.clusterId,
        secret: options.secret,
        ...(options.previousSecrets ? { previousSecrets: options.previousSecrets } : {}),
        ...(options.clockSkewMs !== undefined ? { clockSkewMs: options.clockSkewMs } : {}),
        now,
      });
    }
    this.limiter = options.mode !== 'open' && options.rateLimit !== false ? new AddressRateLimiter(options.rateLimit || {}, now) : undefined;
    this.membership = options.membership;
    this.certificateNodeId = options.peerCertificateNodeId;
    this.logger = options.logger ?? new Logger('RaftRpcSecurity');
    this.onClose = options.onClose;
  }

  /** `GET {prefix}/id` is public (it tells only the id), but throttled like any unauthenticated request. */
  admitAnonymous(req: RaftHttpRequest): void {
    if (this.mode === 'open') return;
    this.throttle(req);
  }

  /**
   * Authenticates a POST before its body is parsed, reading the body (at most `bodyLimit` bytes) to
   * verify the signature over the exact bytes received. `beforeBody` runs cheap checks of the
   * request's form (content type) once the caller is known to hold well-formed headers. Not for the
   * `open` mode, where the controller reads bodies as it always did.
   * @throws PeerAuthError, RequestBodyError
   */
  async authenticate(req: RaftHttpRequest, options: { readonly bodyLimit: number; readonly beforeBody?: () => void }): Promise<AdmittedRpc> {
    try {
      const ticket = this.throttle(req);
      if (this.mode === 'closed' || !this.verifier) {
        throw new PeerAuthError(
          401,
          'auth_not_configured',
          'this node has no cluster secret: it runs a single-node cluster and accepts no peer requests (give every node the same clusterSecret to form a cluster)',
        );
      }
      const headers = this.verifier.readHeaders(req.headers);
      if (this.certificateNodeId) this.checkCertificate(req, headers.sender);
      options.beforeBody?.();
      const body = await readExactBody(req, options.bodyLimit);
      const peer = this.verifier.verify(headers, req.method ?? 'POST', req.originalUrl ?? req.url ?? '/', body);
      if (ticket) this.limiter!.authenticated(ticket);
      if (peer.sender === this.nodeId) throw new PeerAuthError(403, 'sender_is_self', `the request is signed as node ${this.nodeId}, which is this node`);
      return { sender: peer.sender, body };
    } catch (error) {
      if (error instanceof PeerAuthError) this.note(error, req);
      throw error;
    }
  }

  /**
   * Binds the authenticated sender to the body (403 when it speaks for another node) and refuses a
   * sender known to have been removed (410).
   * @throws PeerAuthError
   */
  authorize(peer: AdmittedRpc, claim: RpcClaim, req?: RaftHttpRequest): void {
    if (peer.sender === undefined) return;
    try {
      if (claim.id !== undefined && claim.id !== peer.sender) {
        throw new PeerAuthError(403, 'sender_mismatch', `the request is signed by node ${peer.sender}, but its ${claim.field ?? 'sender'} is ${claim.id}`);
      }
      const removal = this.membership?.removal(peer.sender);
      if (removal && (claim.term === undefined || claim.term <= removal.removedInTerm)) {
        throw new PeerAuthError(
          410,
          'removed',
          `node ${peer.sender} was removed from the cluster (by the configuration committed in term ${removal.removedInTerm})${claim.term !== undefined ? `, and this request is from term ${claim.term}` : ''}`,
        );
      }
    } catch (error) {
      if (error instanceof PeerAuthError && req) this.note(error, req);
      throw error;
    }
  }

  onApplicationShutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
  }

  /**
   * Mutual TLS: the connection's client certificate was verified by the TLS layer and stands for the
   * node that claims to sign the request (checked again by the signature right after).
   */
  private checkCertificate(req: RaftHttpRequest, sender: NodeId): void {
    const socket = req.socket as Partial<TLSSocket> | undefined;
    if (!socket || typeof socket.getPeerCertificate !== 'function' || socket.authorized !== true) {
      throw new PeerAuthError(401, 'certificate_required', 'peer requests must come over TLS with a client certificate signed by the cluster\'s CA');
    }
    const certificate = socket.getPeerCertificate();
    let id: NodeId | undefined;
    try {
      id = this.certificateNodeId!(certificate);
    } catch {
      id = undefined;
    }
    if (id === undefined) throw new PeerAuthError(403, 'certificate_mismatch', 'the client certificate does not name a node');
    if (id !== sender) throw new PeerAuthError(403, 'certificate_mismatch', `the client certificate is node ${id}'s, but the request is signed as node ${sender}`);
  }

  /** Takes a token for a request not from a trusted address, or answers 429. */
  private throttle(req: RaftHttpRequest) {
    if (!this.limiter) return undefined;
    const address = req.socket?.remoteAddress;
    const ticket = this.limiter.take(address);
    if (!ticket) {
      const retry = this.limiter.retryAfterSeconds(address);
      throw new PeerAuthError(429, 'rate_limited', `too many unauthenticated requests from ${AddressRateLimiter.keyOf(address)}; try again in ${retry} s`, retry);
    }
    return ticket;
  }

  /** Logs a refusal, at most once per code every {@link LOG_INTERVAL_MS} (counting the rest). No header values. */
  private note(error: PeerAuthError, req: RaftHttpRequest): void {
    const now = Date.now();
    const key = error.code;
    const last = this.lastLogged.get(key) ?? -Infinity;
    if (now - last < LOG_INTERVAL_MS) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    const more = this.suppressed.get(key) ?? 0;
    this.suppressed.delete(key);
    this.lastLogged.set(key, now);
    if (this.lastLogged.size > 64) this.lastLogged.delete(this.lastLogged.keys().next().value!);
    const from = AddressRateLimiter.keyOf(req.socket?.remoteAddress);
    this.logger.warn(`refused ${req.method ?? ''} ${(req.originalUrl ?? req.url ?? '').slice(0, 100)} from ${from}: ${error.status} ${error.code}${more ? ` (and ${more} more since the last report)` : ''}`);
  }
}
