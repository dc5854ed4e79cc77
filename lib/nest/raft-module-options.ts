import type { Type } from '@nestjs/common';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import type { DataSource } from 'typeorm';
import type { NodeId } from '../core/types.js';
import type { RaftLogger, RaftTimingOptions } from '../node/options.js';
import type { RaftStateMachine, RaftStateMachineLike } from '../node/state-machine.js';
import type { RaftStorage } from '../storage/storage.js';
import type { ClusterSecret } from '../transport/auth.js';
import type { HttpTransportTlsOptions } from '../transport/http-transport.js';
import type { RaftMember, RaftTransport } from '../transport/transport.js';
import type { RaftRateLimitOptions } from './security/rate-limiter.js';

/** Where the RPC endpoints listen when they have their own server (`rpcListener`). */
export interface RaftRpcListenerOptions {
  /** Interface to bind, e.g. a private network's address. Default: all interfaces (as `app.listen`). */
  readonly host?: string;
  /** Port (0: any free port, see `RaftRpcListener.address`). Required. */
  readonly port?: number;
  /** Serve HTTPS with these options (certificates; `requestCert`/`ca` for mutual TLS, see docs/security.md). */
  readonly httpsOptions?: HttpsServerOptions;
}

/** PostgreSQL connection settings for the log (a subset of TypeORM's Postgres options). */
export interface RaftPostgresOptions {
  readonly url?: string;
  readonly host?: string;
  readonly port?: number;
  readonly username?: string;
  readonly password?: string;
  readonly database?: string;
  readonly schema?: string;
  /** Passed to `pg` (e.g. `{ max: 4 }`, `{ options: '-c statement_timeout=5000' }`). */
  readonly extra?: Record<string, unknown>;
}

/**
 * Where the node keeps its log, term and vote:
 * - omitted or `{ embedded: { dataDir? } }`: an embedded PostgreSQL (PGlite) under `./data/node-<id>`,
 *   through the same TypeORM and `pg` code path — zero set-up, for development;
 * - `{ postgres: { url | host … } }`: a PostgreSQL server the node connects to;
 * - `{ dataSource }`: an existing, initialized TypeORM DataSource of yours (not closed by the module);
 * - any object implementing {@link RaftStorage} (e.g. `MemoryStorage` in tests).
 */
export type RaftStorageOption =
  | { readonly embedded: { readonly dataDir?: string } }
  | { readonly postgres: RaftPostgresOptions }
  | { readonly dataSource: DataSource }
  | RaftStorage;

/** Options of `RaftModule.forRoot()` (and what `forRootAsync`'s factory returns). */
export interface RaftModuleOptions extends RaftTimingOptions {
  /** This server's id: a positive integer, unique in the cluster. */
  readonly nodeId: NodeId;
  /** Where peers reach this server's Raft endpoints, e.g. `http://127.0.0.1:3001` (the path prefix is added). */
  readonly url?: string;
  /** The initial cluster, this server included, each `{ id, url }`. Omit on a server that will be added later. */
  readonly peers?: readonly RaftMember[];
  /**
   * The state machine: an apply function `(index, command) => answer`, an object with `apply`, or an
   * injectable class implementing {@link RaftStateMachine} (resolved from the application's providers,
   * or instantiated by the module with its dependencies injected).
   */
  readonly stateMachine: RaftStateMachineLike | Type<RaftStateMachine>;
  /** Where the log lives; see {@link RaftStorageOption}. Default: embedded PostgreSQL. */
  readonly storage?: RaftStorageOption;
  /** Rows of several clusters can share one database; this keeps them apart. Default `default`. */
  readonly clusterId?: string;
  /**
   * Accept a database connection with `synchronous_commit` or `fsync` off. Acknowledged writes can then
   * be lost in a crash: never in production.
   */
  readonly unsafeAllowAsyncCommit?: boolean;
  /** A custom transport. Default: HTTP to each peer's url. */
  readonly transport?: RaftTransport;
  /** Largest request body the RPC endpoints accept, in bytes. Default 8 MiB. */
  readonly bodyLimitBytes?: number;
  /**
   * Largest snapshot this node accepts from a leader (InstallSnapshot, received in chunks), in bytes.
   * Default 256 MiB. Must be at least the size of the leader's snapshots, or this node cannot catch up
   * once the entries it lacks were compacted away.
   */
  readonly maxSnapshotBytes?: number;
  /**
   * The cluster's shared secret (at least 16 bytes; the same on every node): every RPC is signed with
   * HMAC-SHA256 under it and verified by the receiver. Default: the environment variable
   * `RAFT_CLUSTER_SECRET`. Required as soon as the cluster can have more than one node (more than one
   * peer, or peers left out to join), unless {@link insecureNoAuth}. Never logged.
   */
  readonly clusterSecret?: ClusterSecret;
  /**
   * Secrets also accepted when verifying (never used to sign), during a rotation. Default: the
   * comma-separated environment variable `RAFT_PREVIOUS_CLUSTER_SECRETS`. At most 4.
   */
  readonly previousClusterSecrets?: readonly ClusterSecret[];
  /**
   * Serve the RPC endpoints without authentication. Anyone who can reach them can then rewrite this
   * node's log: only for a network nobody else can reach. Default false.
   */
  readonly insecureNoAuth?: boolean;
  /** Largest difference between a signed request's timestamp and this node's clock, in ms. Default 30 000. */
  readonly authClockSkewMs?: number;
  /** Throttling of unauthenticated RPC requests per address (`false`: none). Default 32 at once, 8 per second. */
  readonly unauthenticatedRateLimit?: RaftRateLimitOptions | false;
  /**
   * Address of the RPCs' own listener, when the module extra `rpcListener` is `true` (for
   * `forRootAsync`, whose options are only known at run time). Ignored otherwise.
   */
  readonly rpcListener?: RaftRpcListenerOptions;
  /**
   * TLS settings of this node's requests to `https:` peers: the CA that signed their certificates and,
   * for mutual TLS, this node's certificate and key.
   */
  readonly peerTls?: HttpTransportTlsOptions;
  /**
   * How this node sends AppendEntries to its peers (the built-in HTTP transport). `binary` (default):
   * a compact body without base64 or JSON; a peer that answers 415 (a JSON-only server) gets JSON for
   * a minute at a time. `json`: always the Go model's JSON body. Either way this node accepts both.
   */
  readonly appendEntriesEncoding?: 'binary' | 'json';
  /**
   * Mutual TLS: the node id a peer's client certificate stands for (e.g. `nodeIdFromCommonName()`).
   * When set, every RPC must arrive over TLS with a certificate the listener verified (its
   * `httpsOptions` with `requestCert` and `ca`), and the certificate's node must be the one that
   * signed the request (401 without one, 403 for another node's). Requires {@link clusterSecret}.
   */
  readonly peerCertificateNodeId?: (certificate: PeerCertificate) => NodeId | undefined;
  /** Default: Nest's Logger with context `Raft(<nodeId>)`. */
  readonly logger?: RaftLogger;
}

/** Extras of `forRoot`/`forRootAsync` that shape the module itself, so they must be known statically. */
export interface RaftModuleExtras {
  /** Make `RaftService` injectable everywhere without importing the module. Default false. */
  readonly isGlobal?: boolean;
  /** Path prefix of the RPC endpoints. Default `/raft` (the Go model's paths). */
  readonly path?: string;
  /**
   * Serve the RPC endpoints on their own HTTP server (`{ host, port }`), not on the application's: the
   * public port then never serves `{path}/*`. `true`: take the address from the options' `rpcListener`
   * (for `forRootAsync`). Point this node's `url` (and the peers' urls) at this listener. Default: off.
   */
  readonly rpcListener?: RaftRpcListenerOptions | boolean;
}

/** What `forRootAsync({ useClass })` / `({ useExisting })` instantiates: it makes the options. */
export interface RaftOptionsFactory {
  createRaftOptions(): RaftModuleOptions | Promise<RaftModuleOptions>;
}
