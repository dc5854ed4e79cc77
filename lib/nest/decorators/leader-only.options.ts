import type { NodeId } from '../../core/types.js';

/** Metadata key of `@LeaderOnly()` (its {@link LeaderOnlyOptions}), on the decorated method. */
export const LEADER_ONLY_METADATA = 'nestjs-raft:leader-only';

/**
 * Optional provider of a {@link LeaderUrlResolver} for the whole application, used by every
 * `@LeaderOnly()` route without its own `leaderUrl`:
 * `{ provide: RAFT_LEADER_URL, useValue: ({ id }) => \`https://node-${id}.example.com\` }`.
 */
export const RAFT_LEADER_URL = Symbol('RAFT_LEADER_URL');

/** The leader as `@LeaderOnly()` knows it, to map to the URL clients should use. */
export interface LeaderAddress {
  readonly id: NodeId;
  /** Where the other nodes reach the leader's Raft endpoints (its `url` option), if known. */
  readonly raftUrl?: string;
}

/** Maps the leader to the public base URL clients should be sent to (`undefined`: not known). */
export type LeaderUrlResolver = (leader: LeaderAddress) => string | undefined;

export interface LeaderOnlyOptions {
  /**
   * HTTP routes only: answer a request that reaches a follower with `307 Temporary Redirect` to the
   * same path on the leader (method and body preserved) instead of `421 Misdirected Request`. Falls
   * back to 421 while no leader, or no URL for it, is known.
   */
  readonly redirect?: boolean;
  /**
   * The leader's public base URL, for the redirect and the 421 body's `leader_url`. Default: the
   * application-wide {@link RAFT_LEADER_URL} provider if there is one; else, when the RPC endpoints
   * are served by the application itself, the leader's Raft `url` (right when clients reach each node
   * at the address its peers use; wrong behind a load balancer — give a resolver then); else (the
   * RPCs on their own listener, module extra `rpcListener`) none: 421 with `leader_id` only.
   */
  readonly leaderUrl?: LeaderUrlResolver;
}
