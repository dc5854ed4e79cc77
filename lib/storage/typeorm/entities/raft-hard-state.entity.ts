import { Check, Column, Entity, PrimaryColumn } from 'typeorm';
import { safeIntegerTransformer } from '../safe-integer.js';

export const RAFT_HARD_STATE_TABLE = 'raft_hard_state';

/** A node's current term, vote and commit index (§5, Figure 2's persistent state): one row per node. */
@Entity({ name: RAFT_HARD_STATE_TABLE })
@Check('raft_hard_state_check', '"term" >= 0 AND "vote" >= 0 AND "commit_index" >= 0')
export class RaftHardStateEntity {
  @PrimaryColumn({ name: 'cluster_id', type: 'text', primaryKeyConstraintName: 'raft_hard_state_pkey' })
  clusterId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_hard_state_pkey' })
  nodeId!: number;

  @Column({ name: 'term', type: 'bigint', transformer: safeIntegerTransformer })
  term!: number;

  /** The node voted for in `term`, 0 for none. */
  @Column({ name: 'vote', type: 'bigint', transformer: safeIntegerTransformer })
  vote!: number;

  @Column({ name: 'commit_index', type: 'bigint', transformer: safeIntegerTransformer })
  commit!: number;
}
