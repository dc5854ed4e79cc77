/**
 * nestjs-raft: Raft consensus for Node.js and NestJS.
 *
 * The protocol engine ({@link RaftCore}) is a deterministic state machine; storage and transport are
 * small contracts with in-memory implementations for tests and in-process clusters.
 */
export { RaftCore, CORE_DEFAULTS } from './core/raft.js';
export { RaftLog } from './core/log.js';
export * from './core/types.js';
export {
  RaftError,
  NotLeaderError,
  ConfigurationChangeError,
  RaftInvariantError,
  type ConfigurationChangeRefusal,
} from './core/errors.js';
export { isJoint, isVoter, votersOf, normalizeIds, formatConfiguration, validateVoterIds } from './core/configuration.js';
export { majorityIndex, jointMajorityIndex, majorityVote, jointVote, type VoteOutcome } from './core/quorum.js';

export type { RaftStorage, StorageBatch } from './storage/storage.js';
export { EMPTY_HARD_STATE } from './storage/storage.js';
export { StorageCorruptionError, StorageClosedError } from './storage/errors.js';
export { MemoryStorage } from './storage/memory-storage.js';

export type { RaftPeer, RaftTransport, RaftRpcHandler, RpcOptions } from './transport/transport.js';
export { MemoryNetwork, PeerUnreachableError } from './transport/memory-transport.js';
