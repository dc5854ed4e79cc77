import { Column, Entity, PrimaryColumn } from 'typeorm';
import { safeIntegerTransformer } from '../safe-integer.js';

export const RAFT_BASE_CONFIGURATION_TABLE = 'raft_base_configuration';

/**
 * The configuration in force before a node's first log entry: the bootstrap configuration, written
 * once when a server of the initial cluster first starts. A server that joins later has no row.
 */
@Entity({ name: RAFT_BASE_CONFIGURATION_TABLE })
export class RaftBaseConfigurationEntity {
  @PrimaryColumn({ name: 'cluster_id', type: 'text', primaryKeyConstraintName: 'raft_base_configuration_pkey' })
  clusterId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_base_configuration_pkey' })
  nodeId!: number;

  /** `{ voters, outgoing?, addresses? }`, as in a `config` log entry. */
  @Column({ name: 'configuration', type: 'jsonb' })
  configuration!: unknown;
}
