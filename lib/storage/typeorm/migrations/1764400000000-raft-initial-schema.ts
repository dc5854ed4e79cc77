import type { MigrationInterface, QueryRunner } from 'typeorm';
import { qualifiedTable, resolveRaftSchema } from '../schema-name.js';

/**
 * The log, hard state and base configuration tables (see the entities). Written to match what
 * TypeORM's schema builder derives from the entities, which a test checks, so the entities and the
 * shipped migrations cannot drift apart.
 */
export class RaftInitialSchema1764400000000 implements MigrationInterface {
  readonly name = 'RaftInitialSchema1764400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const schema = await resolveRaftSchema(queryRunner);
    await queryRunner.query(
      `CREATE TABLE ${qualifiedTable(schema, 'raft_log_entries')} (` +
        '"cluster_id" text NOT NULL, "node_id" bigint NOT NULL, "index" bigint NOT NULL, "term" bigint NOT NULL, ' +
        '"type" text NOT NULL, "command" bytea NOT NULL, "config" jsonb, ' +
        `CONSTRAINT "raft_log_entries_config_check" CHECK (("type" = 'config') = ("config" IS NOT NULL)), ` +
        `CONSTRAINT "raft_log_entries_type_check" CHECK ("type" IN ('command', 'noop', 'config')), ` +
        'CONSTRAINT "raft_log_entries_term_check" CHECK ("term" >= 1), ' +
        'CONSTRAINT "raft_log_entries_index_check" CHECK ("index" >= 1), ' +
        'CONSTRAINT "raft_log_entries_pkey" PRIMARY KEY ("cluster_id", "node_id", "index"))',
    );
    await queryRunner.query(
      `CREATE TABLE ${qualifiedTable(schema, 'raft_hard_state')} (` +
        '"cluster_id" text NOT NULL, "node_id" bigint NOT NULL, "term" bigint NOT NULL, "vote" bigint NOT NULL, "commit_index" bigint NOT NULL, ' +
        'CONSTRAINT "raft_hard_state_check" CHECK ("term" >= 0 AND "vote" >= 0 AND "commit_index" >= 0), ' +
        'CONSTRAINT "raft_hard_state_pkey" PRIMARY KEY ("cluster_id", "node_id"))',
    );
    await queryRunner.query(
      `CREATE TABLE ${qualifiedTable(schema, 'raft_base_configuration')} (` +
        '"cluster_id" text NOT NULL, "node_id" bigint NOT NULL, "configuration" jsonb NOT NULL, ' +
        'CONSTRAINT "raft_base_configuration_pkey" PRIMARY KEY ("cluster_id", "node_id"))',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const schema = await resolveRaftSchema(queryRunner);
    await queryRunner.query(`DROP TABLE ${qualifiedTable(schema, 'raft_base_configuration')}`);
    await queryRunner.query(`DROP TABLE ${qualifiedTable(schema, 'raft_hard_state')}`);
    await queryRunner.query(`DROP TABLE ${qualifiedTable(schema, 'raft_log_entries')}`);
  }
}
