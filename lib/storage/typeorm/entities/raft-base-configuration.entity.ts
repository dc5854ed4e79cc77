import { Check, Column, Entity, PrimaryColumn } from 'typeorm';
import { safeIntegerTransformer } from '../safe-integer.js';

export const RAFT_BASE_CONFIGURATION_TABLE = 'raft_base_configuration';

/**
 * Where a node's log starts, and the configuration in force there: before any compaction, the
 * bootstrap configuration (written once when a server of the initial cluster first starts) at index
 * 0; after a compaction, the configuration at the compacted index. A server that joins later has no
 * row until its first compaction (usually an installed snapshot).
 */
@Entity({ name: RAFT_BASE_CONFIGURATION_TABLE })
@Check('raft_base_configuration_log_start_check', '"log_start_index" >= 0 AND "log_start_term" >= 0')
export class RaftBaseConfigurationEntity {
  @PrimaryColumn({ name: 'cluster_id', type: 'text', primaryKeyConstraintName: 'raft_base_configuration_pkey' })
  clusterId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_base_configuration_pkey' })
  nodeId!: number;

  /** `{ voters, outgoing?, addresses? }`, as in a `config` log entry. */
  @Column({ name: 'configuration', type: 'jsonb' })
  configuration!: unknown;

  /** Every entry up to this index was compacted away; 0 for a log never compacted. */
  @Column({ name: 'log_start_index', type: 'bigint', default: 0, transformer: safeIntegerTransformer })
  logStartIndex!: number;

  /** The term of the entry at `logStartIndex` (0 for a log never compacted). */
  @Column({ name: 'log_start_term', type: 'bigint', default: 0, transformer: safeIntegerTransformer })
  logStartTerm!: number;
}
