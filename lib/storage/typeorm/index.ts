export { TypeOrmStorage, type TypeOrmStorageOptions, type TypeOrmStorageConnectionOptions } from './typeorm-storage.js';
export { StorageLockedError, UnsafeDurabilityError } from './errors.js';
export { RAFT_ENTITIES, RAFT_MIGRATIONS, RAFT_MIGRATIONS_TABLE } from './raft-schema.js';
export { RaftLogEntryEntity, RAFT_LOG_ENTRIES_TABLE } from './entities/raft-log-entry.entity.js';
export { RaftHardStateEntity, RAFT_HARD_STATE_TABLE } from './entities/raft-hard-state.entity.js';
export { RaftBaseConfigurationEntity, RAFT_BASE_CONFIGURATION_TABLE } from './entities/raft-base-configuration.entity.js';
export { RaftInitialSchema1764400000000 } from './migrations/1764400000000-raft-initial-schema.js';
export { safeIntegerTransformer, toSafeInteger } from './safe-integer.js';
