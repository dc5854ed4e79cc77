import type { MigrationInterface, QueryRunner } from 'typeorm';
import { qualifiedTable, resolveRaftSchema } from '../schema-name.js';

/**
 * Log compaction and snapshots: where each node's log starts (two columns of the base configuration,
 * which becomes the configuration in force there), and the latest snapshot of each node, its metadata
 * in `raft_snapshots` and its bytes in `raft_snapshot_chunks`. Existing rows keep a log that starts at
 * index 0 (never compacted) and have no snapshot.
 */
export class RaftSnapshots1796400000000 implements MigrationInterface {
  readonly name = 'RaftSnapshots1796400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = await resolveRaftSchema(queryRunner);
    await queryRunner.query(
      `ALTER TABLE ${qualifiedTable(schema, 'raft_base_configuration')} ` +
        'ADD "log_start_index" bigint NOT NULL DEFAULT 0, ADD "log_start_term" bigint NOT NULL DEFAULT 0, ' +
        'ADD CONSTRAINT "raft_base_configuration_log_start_check" CHECK ("log_start_index" >= 0 AND "log_start_term" >= 0)',
    );
    await queryRunner.query(
      `CREATE TABLE ${qualifiedTable(schema, 'raft_snapshots')} (` +
        '"cluster_id" text NOT NULL, "node_id" bigint NOT NULL, "index" bigint NOT NULL, "term" bigint NOT NULL, ' +
        '"configuration" jsonb NOT NULL, "size" bigint NOT NULL, "chunks" integer NOT NULL, "sha256" bytea NOT NULL, ' +
        'CONSTRAINT "raft_snapshots_check" CHECK ("index" >= 0 AND "term" >= 0 AND "size" >= 0 AND "chunks" >= 0 AND octet_length("sha256") = 32), ' +
        'CONSTRAINT "raft_snapshots_pkey" PRIMARY KEY ("cluster_id", "node_id"))',
    );
    await queryRunner.query(
      `CREATE TABLE ${qualifiedTable(schema, 'raft_snapshot_chunks')} (` +
        '"cluster_id" text NOT NULL, "node_id" bigint NOT NULL, "chunk" integer NOT NULL, "data" bytea NOT NULL, ' +
        'CONSTRAINT "raft_snapshot_chunks_chunk_check" CHECK ("chunk" >= 0), ' +
        'CONSTRAINT "raft_snapshot_chunks_pkey" PRIMARY KEY ("cluster_id", "node_id", "chunk"))',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const schema = await resolveRaftSchema(queryRunner);
    await queryRunner.query(`DROP TABLE ${qualifiedTable(schema, 'raft_snapshot_chunks')}`);
    await queryRunner.query(`DROP TABLE ${qualifiedTable(schema, 'raft_snapshots')}`);
    await queryRunner.query(
      `ALTER TABLE ${qualifiedTable(schema, 'raft_base_configuration')} ` +
        'DROP CONSTRAINT "raft_base_configuration_log_start_check", DROP COLUMN "log_start_term", DROP COLUMN "log_start_index"',
    );
  }
}
