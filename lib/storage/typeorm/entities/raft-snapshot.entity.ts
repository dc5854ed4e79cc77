import { Check, Column, Entity, PrimaryColumn } from 'typeorm';
import { safeIntegerTransformer } from '../safe-integer.js';

export const RAFT_SNAPSHOTS_TABLE = 'raft_snapshots';

/**
 * A node's latest snapshot's metadata (one row per node; a new snapshot replaces it). Its bytes are
 * in {@link RaftSnapshotChunkEntity} rows.
 */
@Entity({ name: RAFT_SNAPSHOTS_TABLE })
@Check('raft_snapshots_check', '"index" >= 0 AND "term" >= 0 AND "size" >= 0 AND "chunks" >= 0 AND octet_length("sha256") = 32')
export class RaftSnapshotEntity {
  @PrimaryColumn({ name: 'cluster_id', type: 'text', primaryKeyConstraintName: 'raft_snapshots_pkey' })
  clusterId!: string;

  @PrimaryColumn({ name: 'node_id', type: 'bigint', transformer: safeIntegerTransformer, primaryKeyConstraintName: 'raft_snapshots_pkey' })
  nodeId!: number;

  /** The last index the snapshot covers. */
  @Column({ name: 'index', type: 'bigint', transformer: safeIntegerTransformer })
  index!: number;

  /** The term of the entry at `index`. */
  @Column({ name: 'term', type: 'bigint', transformer: safeIntegerTransformer })
  term!: number;

  /** The configuration in force at `index` (`{ voters, outgoing?, addresses? }`). */
  @Column({ name: 'configuration', type: 'jsonb' })
  configuration!: unknown;

  /** The snapshot's length in bytes. */
  @Column({ name: 'size', type: 'bigint', transformer: safeIntegerTransformer })
  size!: number;

  /** How many chunk rows hold the bytes (numbered 0..chunks-1). */
  @Column({ name: 'chunks', type: 'integer' })
  chunks!: number;

  /** SHA-256 of the bytes, checked when they are read back. */
  @Column({ name: 'sha256', type: 'bytea' })
  sha256!: Buffer;
}
