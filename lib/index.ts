/**
 * nestjs-raft: Raft consensus for Node.js and NestJS.
 *
 * - `RaftModule` / `RaftService`: Raft in a Nest application (RPC endpoints, command(), observables).
 * - `RaftNode`: the same without Nest.
 * - `RaftCore`: the protocol engine, a deterministic state machine.
 * - Storage (`TypeOrmStorage` on PostgreSQL, `EmbeddedPostgres`, `MemoryStorage`) and transport
 *   (`HttpTransport`, `MemoryNetwork`) contracts with their implementations.
 */

// The protocol engine
export { RaftCore, CORE_DEFAULTS } from './core/raft.js';
export { RaftLog } from './core/log.js';
export * from './core/types.js';
export { isJoint, isVoter, isLearner, votersOf, membersOf, normalizeIds, formatConfiguration, validateVoterIds } from './core/configuration.js';
export { majorityIndex, jointMajorityIndex, majorityVote, jointVote, type VoteOutcome } from './core/quorum.js';

// Errors (every one a subclass of RaftError)
export {
  RaftError,
  NotLeaderError,
  ConfigurationChangeError,
  RaftInvariantError,
  CommandTimeoutError,
  LeadershipLostError,
  NodeStoppedError,
  NodeRemovedError,
  CommandAbortedError,
  RaftOptionsError,
  CommandForwardingError,
  ConfigurationChangeFailedError,
  StorageFailureError,
  LogCompactedError,
  CommitsOverflowError,
  type ConfigurationChangeRefusal,
} from './core/errors.js';

// The node (driver)
export {
  RaftNode,
  type RaftNodeEvent,
  type CommittedEntry,
  type RaftState,
  type RaftStatus,
  type CommandOptions,
  type MembershipOptions,
  type RaftMemberSpec,
} from './node/raft-node.js';
export { RAFT_DEFAULTS, type RaftNodeOptions, type RaftTimingOptions, type RaftLogger } from './node/options.js';
export { SessionExpiredError } from './node/session-table.js';
export { toStateMachine, type RaftStateMachine, type RaftApplyFunction, type RaftStateMachineLike } from './node/state-machine.js';

// Storage
export type { RaftStorage, StorageBatch, StoredSnapshot, LogCompaction } from './storage/storage.js';
export { EMPTY_HARD_STATE } from './storage/storage.js';
export { StorageCorruptionError, StorageClosedError } from './storage/errors.js';
export { MemoryStorage } from './storage/memory-storage.js';
export {
  TypeOrmStorage,
  type TypeOrmStorageOptions,
  type TypeOrmStorageConnectionOptions,
  StorageLockedError,
  UnsafeDurabilityError,
  RAFT_ENTITIES,
  RAFT_MIGRATIONS,
  RAFT_MIGRATIONS_TABLE,
  RaftLogEntryEntity,
  RaftHardStateEntity,
  RaftBaseConfigurationEntity,
  RaftSnapshotEntity,
  RaftSnapshotChunkEntity,
} from './storage/typeorm/index.js';
export { EmbeddedPostgres, type EmbeddedPostgresOptions, type EmbeddedPostgresConnectionOptions } from './storage/embedded/index.js';

// Transport
export type { RaftPeer, RaftTransport, RaftRpcHandler, RpcOptions, RaftMember } from './transport/transport.js';
export { MemoryNetwork, PeerUnreachableError } from './transport/memory-transport.js';
export {
  HttpTransport,
  HttpPeer,
  HTTP_TRANSPORT_DEFAULTS,
  PeerUnavailableError,
  RpcTimeoutError,
  TransportClosedError,
  type HttpTransportOptions,
  type HttpRequestToSign,
  type HttpTransportTlsOptions,
  type DiscoverIdOptions,
} from './transport/http-transport.js';
export {
  AUTH_HEADERS,
  AUTH_SCHEME,
  DEFAULT_AUTH_CLOCK_SKEW_MS,
  MIN_CLUSTER_SECRET_BYTES,
  PeerAuthError,
  RaftRequestVerifier,
  canonicalRequest,
  createRaftRequestSigner,
  type ClusterSecret,
  type PeerAuthHeaders,
  type RaftRequestSignerOptions,
  type RaftRequestVerifierOptions,
  type SignedRequestParts,
  type VerifiedPeer,
} from './transport/auth.js';
export {
  SnapshotAssembler,
  SnapshotTransferError,
  SNAPSHOT_ASSEMBLER_DEFAULTS,
  snapshotDigest,
  type SnapshotAssemblerOptions,
  type SnapshotAssemblyInfo,
  type SnapshotChunk,
  type SnapshotChunkResult,
  type SnapshotInstaller,
  type SnapshotTransferErrorCode,
} from './transport/snapshot-assembler.js';
export { NonceReplayCache, type NonceReplayCacheOptions, type NonceVerdict } from './transport/auth-replay-cache.js';
export {
  WireFormatError,
  RaftHttpError,
  encodeAnswer,
  decodeAnswer,
  errorToWire,
  errorFromWire,
  DEFAULT_PATH_PREFIX,
  RAFT_JSON_CONTENT_TYPE,
  RAFT_APPEND_ENTRIES_BINARY_CONTENT_TYPE,
  encodeAppendEntriesBinary,
  decodeAppendEntriesBinary,
  isBinaryAppendEntries,
  type BinaryAppendEntriesBody,
  type BinaryWireEntry,
} from './transport/wire.js';

// NestJS
export { RaftModule } from './nest/raft.module.js';
export { RaftService } from './nest/raft.service.js';
export { RaftExceptionFilter } from './nest/raft-exception.filter.js';
export type {
  RaftModuleOptions,
  RaftModuleExtras,
  RaftOptionsFactory,
  RaftStorageOption,
  RaftPostgresOptions,
  RaftRpcListenerOptions,
} from './nest/raft-module-options.js';
export { RaftRpcListener } from './nest/security/raft-rpc-listener.js';
export { nodeIdFromCommonName } from './nest/security/peer-certificate.js';
export { RaftRpcSecurity, type RaftRpcSecurityMode } from './nest/security/raft-rpc-security.js';
export { RAFT_RPC_SECURITY } from './nest/security/security.constants.js';
export { CLUSTER_SECRET_ENV, PREVIOUS_CLUSTER_SECRETS_ENV } from './nest/security/cluster-auth.js';
export type { RaftRateLimitOptions } from './nest/security/rate-limiter.js';
export { RAFT_MODULE_OPTIONS, RAFT_NODE, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, RAFT_SNAPSHOT_ASSEMBLER, DEFAULT_RPC_LIMITS, type RaftRpcLimits } from './nest/raft.constants.js';
export { createRaftRpcController } from './nest/raft-rpc.controller.js';
export { InvalidRpcBodyError, parseAppendEntries, parseAppendEntriesBinary, parseInstallSnapshot, parseRequestVote, parseSetConfiguration, parseSetConfigurationBody } from './nest/dto/parse-rpc-body.js';
export { RequestBodyError } from './nest/raft-body.js';

// Nest-native leader features
export {
  OnLeaderElected,
  OnLeadershipLost,
  OnCommit,
  ON_LEADER_ELECTED_METADATA,
  ON_LEADERSHIP_LOST_METADATA,
  ON_COMMIT_METADATA,
  type LeaderElectedEvent,
  type LeadershipLostEvent,
  type CommitEvent,
  type OnCommitOptions,
} from './nest/decorators/raft-event.decorators.js';
export { LeaderOnly } from './nest/decorators/leader-only.decorator.js';
export { LeaderOnlyGuard } from './nest/decorators/leader-only.guard.js';
export { LEADER_ONLY_METADATA, RAFT_LEADER_URL, type LeaderOnlyOptions, type LeaderAddress, type LeaderUrlResolver } from './nest/decorators/leader-only.options.js';
export { RaftExplorer } from './nest/decorators/raft.explorer.js';
export { RaftHealthIndicator, type RaftHealthOptions, type RaftHealthDetails, type RaftHealthStatus, type RaftHealthIndicatorResult } from './nest/health/raft.health.js';
export { RaftMetrics, provideRaftMetrics, RAFT_METRICS_OPTIONS, type RaftMetricsOptions, type RaftMetricsRegistry } from './nest/metrics/raft.metrics.js';
export { HttpServerDrain, type HttpDrainOptions } from './nest/http-drain.js';
