import { Inject, Injectable } from '@nestjs/common';
import type { NodeId } from '../../core/types.js';
import { RaftService } from '../raft.service.js';

/** Options of {@link RaftHealthIndicator.isHealthy}. */
export interface RaftHealthOptions {
  /**
   * How many committed entries may wait to be applied (`commitIndex − appliedIndex`) before the node
   * is reported `degraded`. Default 100.
   */
  readonly maxLag?: number;
  /**
   * On the leader: how many entries a member's log may be behind the leader's (`lastIndex −
   * matchIndex`) before the leader is reported `degraded`. Default: not checked (the lag is shown in
   * `replication`, but a slow follower does not make the leader unhealthy).
   */
  readonly maxReplicationLag?: number;
}

/** Status of one health indicator, as `@nestjs/terminus` 12 counts it (`degraded` keeps HTTP 200). */
export type RaftHealthStatus = 'up' | 'degraded' | 'down';

/** What the indicator reports under its key (JSON, for the health endpoint). */
export interface RaftHealthDetails {
  readonly status: RaftHealthStatus;
  /** Why it is not `up`: `stopped`, `no_leader`, `apply_lag` or `replication_lag`. */
  readonly reason?: 'stopped' | 'no_leader' | 'apply_lag' | 'replication_lag';
  readonly nodeId: NodeId;
  readonly role: string;
  readonly term: number;
  /** 0 when no leader is known. */
  readonly leaderId: NodeId;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** `commitIndex − appliedIndex`: committed entries this node has not applied yet. */
  readonly applyLag: number;
  /** On the leader: each other member's lag behind the leader's log (`lastIndex − matchIndex`). */
  readonly replication?: readonly { readonly id: NodeId; readonly matchIndex: number; readonly lag: number }[];
}

/**
 * The result shape of a terminus health indicator (`HealthIndicatorResult<Key>`), spelt out here so
 * that this file needs nothing from `@nestjs/terminus` — an optional peer dependency — at run time
 * nor in its types.
 */
export type RaftHealthIndicatorResult<Key extends string = 'raft'> = Record<Key, RaftHealthDetails>;

const DEFAULT_MAX_LAG = 100;

/**
 * A health indicator for `@nestjs/terminus` (12 or later, which knows `degraded`):
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() {
 *   return this.health.check([() => this.raft.isHealthy('raft', { maxLag: 100 })]);
 * }
 * ```
 *
 * - `down` when the node is stopped or knows no leader (an election is under way, or this node is cut
 *   off from a majority): it cannot serve commands now. Terminus answers 503.
 * - `degraded` when more than `maxLag` committed entries wait to be applied here (and, on the leader
 *   with `maxReplicationLag`, when a member lags behind that much). Terminus answers 200 with
 *   `status: 'degraded'`.
 * - `up` otherwise.
 *
 * It reports what this node knows, without any network call. On a follower the commit index is the
 * leader's as of the last AppendEntries received (at most a heartbeat old while the leader is
 * reachable); how far the follower's log is behind the leader's is known only to the leader
 * (`replication`, and the `raft_replication_lag` metric) — a follower that cannot hear from the
 * leader stops knowing a leader after an election timeout and is then reported `down`.
 *
 * Needs no `@nestjs/terminus` import of its own: its results have terminus's shape.
 */
@Injectable()
export class RaftHealthIndicator {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  async isHealthy<const Key extends string = 'raft'>(key: Key = 'raft' as Key, options: RaftHealthOptions = {}): Promise<RaftHealthIndicatorResult<Key>> {
    return { [key]: this.details(options) } as RaftHealthIndicatorResult<Key>;
  }

  /** The details reported under the indicator's key (also for a custom endpoint or a log line). */
  details(options: RaftHealthOptions = {}): RaftHealthDetails {
    const maxLag = options.maxLag ?? DEFAULT_MAX_LAG;
    const s = this.raft.status();
    const applyLag = Math.max(0, s.commitIndex - s.appliedIndex);
    const replication = s.replication.map((r) => ({ id: r.id, matchIndex: r.matchIndex, lag: Math.max(0, s.lastIndex - r.matchIndex) }));
    const base = {
      nodeId: s.nodeId,
      role: s.role,
      term: s.term,
      leaderId: s.leaderId,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      lastIndex: s.lastIndex,
      applyLag,
      ...(s.role === 'leader' ? { replication } : {}),
    };
    if (s.role === 'stopped') return { status: 'down', reason: 'stopped', ...base };
    if (s.leaderId === 0) return { status: 'down', reason: 'no_leader', ...base };
    if (applyLag > maxLag) return { status: 'degraded', reason: 'apply_lag', ...base };
    if (options.maxReplicationLag !== undefined && replication.some((r) => r.lag > options.maxReplicationLag!)) {
      return { status: 'degraded', reason: 'replication_lag', ...base };
    }
    return { status: 'up', ...base };
  }
}
