import type { Type } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { NodeId } from '../core/types.js';
import type { RaftLogger, RaftTimingOptions } from '../node/options.js';
import type { RaftStateMachine, RaftStateMachineLike } from '../node/state-machine.js';
import type { RaftStorage } from '../storage/storage.js';
import type { RaftMember, RaftTransport } from '../transport/transport.js';

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
  /** Default: Nest's Logger with context `Raft(<nodeId>)`. */
  readonly logger?: RaftLogger;
}

/** Extras of `forRoot`/`forRootAsync` that shape the module itself, so they must be known statically. */
export interface RaftModuleExtras {
  /** Make `RaftService` injectable everywhere without importing the module. Default false. */
  readonly isGlobal?: boolean;
  /** Path prefix of the RPC endpoints. Default `/raft` (the Go model's paths). */
  readonly path?: string;
}

/** What `forRootAsync({ useClass })` / `({ useExisting })` instantiates: it makes the options. */
export interface RaftOptionsFactory {
  createRaftOptions(): RaftModuleOptions | Promise<RaftModuleOptions>;
}
