import type { Configuration, NodeId } from './types.js';

/**
 * The highest index that a majority of `ids` has reached (§5.3/§5.4): sort the match indexes in
 * descending order and take the one at position ⌊n/2⌋. An empty set places no constraint.
 */
export function majorityIndex(ids: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (ids.length === 0) return Number.MAX_SAFE_INTEGER;
  const matches = ids.map(matchOf).sort((a, b) => b - a);
  return matches[Math.floor(ids.length / 2)]!;
}

/** During C_old,new an index is committed only when it has a majority of C_old AND of C_new (§6). */
export function jointMajorityIndex(config: Configuration, matchOf: (id: NodeId) => number): number {
  const incoming = majorityIndex(config.voters, matchOf);
  return config.outgoing ? Math.min(incoming, majorityIndex(config.outgoing, matchOf)) : incoming;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

/** Tally of one voter set: won with a strict majority of grants, lost once that is out of reach. */
export function majorityVote(ids: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  if (ids.length === 0) return 'won';
  let granted = 0;
  let rejected = 0;
  for (const id of ids) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const needed = Math.floor(ids.length / 2) + 1;
  if (granted >= needed) return 'won';
  if (ids.length - rejected < needed) return 'lost';
  return 'pending';
}

/** An election during C_old,new needs a majority of both sets (§6). */
export function jointVote(config: Configuration, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  const incoming = majorityVote(config.voters, votes);
  if (!config.outgoing) return incoming;
  const outgoing = majorityVote(config.outgoing, votes);
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  if (incoming === 'won' && outgoing === 'won') return 'won';
  return 'pending';
}
