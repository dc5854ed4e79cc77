import type { MigrationInterface } from 'typeorm';
import { RaftBaseConfigurationEntity } from './entities/raft-base-configuration.entity.js';
import { RaftHardStateEntity } from './entities/raft-hard-state.entity.js';
import { RaftLogEntryEntity } from './entities/raft-log-entry.entity.js';
import { RaftSnapshotChunkEntity } from './entities/raft-snapshot-chunk.entity.js';
import { RaftSnapshotEntity } from './entities/raft-snapshot.entity.js';
import { RaftInitialSchema1764400000000 } from './migrations/1764400000000-raft-initial-schema.js';
import { RaftSnapshots1796400000000 } from './migrations/1796400000000-raft-snapshots.js';

/** The entities of the Raft tables, for a DataSource that wants to read them through TypeORM. */
export const RAFT_ENTITIES = [RaftLogEntryEntity, RaftHardStateEntity, RaftBaseConfigurationEntity, RaftSnapshotEntity, RaftSnapshotChunkEntity] as const;

/** The shipped migrations, oldest first. {@link TypeOrmStorage} runs them itself on `load()`. */
export const RAFT_MIGRATIONS: ReadonlyArray<new () => MigrationInterface & { readonly name: string }> = [
  RaftInitialSchema1764400000000,
  RaftSnapshots1796400000000,
];

/**
 * The storage's own migrations table (TypeORM's format: id, timestamp, name), kept apart from the
 * application's `migrations` table so the two histories never mix.
 */
export const RAFT_MIGRATIONS_TABLE = 'raft_migrations';
