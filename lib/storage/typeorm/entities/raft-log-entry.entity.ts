import { Check, Column, Entity, PrimaryColumn } from 'typeorm';
import type { EntryType } from '../../../core/types.js';
import { safeIntegerTransformer } from '../safe-integer.js';

export const RAFT_LOG_ENTRIES_TABLE = 'raft_log_entries';

/**
 * One entry of one node's log. Rows are keyed by (cluster, node, index), so the servers of several
 * clusters, or several servers of one cluster, can share one database without seeing each other.
 *
 * Every column names its type explicitly: the schema must not depend on emitted decorator metadata,
 * which some TypeScript runners (tsx, esbuild) do not produce.
 */
@Entity({ name: RAFT_LOG_ENTRIES_TABLE })
@Check('raft_log_entries_index_check', '"index" >= 1')
@Check('raft_log_entries_term_check', '"term" >= 1')
@Check('raft_log_entries_type_check', `"type" IN ('command', 'noop', 'config')`)
@Check('raft_log_entries_config_check', `("type" = 'config') = ("config" IS NOT NULL)`)
export class RaftLogEntryEntity {
  @PrimaryColumn({ name: 'cluster_id', type: 'text', primaryKeyConstraintName: 'raft_log_entries_pkey' })
  clusterId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_log_entries_pkey' })
  nodeId!: number;

  @PrimaryColumn({ name: 'index', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_log_entries_pkey' })
  index!: number;

  @Column({ name: 'term', type: 'bigint', transformer: safeIntegerTransformer })
  term!: number;

  @Column({ name: 'type', type: 'text' })
  type!: EntryType;

  /** The command's bytes; empty for `noop` and `config` entries. */
  @Column({ name: 'command', type: 'bytea' })
  command!: Buffer;

  /** The configuration of a `config` entry (`{ voters, outgoing?, addresses? }`); NULL otherwise. */
  @Column({ name: 'config', type: 'jsonb', nullable: true })
  config!: unknown;
}
