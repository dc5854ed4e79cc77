import { Check, Column, Entity, PrimaryColumn } from 'typeorm';
import { safeIntegerTransformer } from '../safe-integer.js';

export const RAFT_SNAPSHOT_CHUNKS_TABLE = 'raft_snapshot_chunks';

/** One piece of a node's latest snapshot's bytes (see {@link RaftSnapshotEntity}), in chunk order. */
@Entity({ name: RAFT_SNAPSHOT_CHUNKS_TABLE })
@Check('raft_snapshot_chunks_chunk_check', '"chunk" >= 0')
export class RaftSnapshotChunkEntity {
  @PrimaryColumn({ name: 'cluster_id', type: 'text', primaryKeyConstraintName: 'raft_snapshot_chunks_pkey' })
  clusterId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_snapshot_chunks_pkey' })
  nodeId!: number;

  @PrimaryColumn({ name: 'chunk', type: 'integer', primaryKeyConstraintName: 'raft_snapshot_chunks_pkey' })
  chunk!: number;

  @Column({ name: 'data', type: 'bytea' })
  data!: Buffer;
}
