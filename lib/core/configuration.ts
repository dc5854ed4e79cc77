import type { Configuration, NodeId } from './types.js';

/** Sorted, de-duplicated copy of a set of ids. */
export function normalizeIds(ids: Iterable<NodeId>): NodeId[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** True while C_old,new is in effect (thesis §4.3 / §6 of the paper). */
export function isJoint(config: Configuration): boolean {
  return config.outgoing !== undefined;
}

/** Every server whose vote counts in `config`: C_new ∪ C_old during a joint configuration. */
export function votersOf(config: Configuration): NodeId[] {
  return config.outgoing ? normalizeIds([...config.voters, ...config.outgoing]) : [...config.voters];
}

/** Every server the leader replicates to under `config`: the voters of both sets and the learners. */
export function membersOf(config: Configuration): NodeId[] {
  return config.outgoing || config.learners?.length ? normalizeIds([...config.voters, ...(config.outgoing ?? []), ...(config.learners ?? [])]) : [...config.voters];
}

/** Whether `id` is a learner (a non-voting member) under `config`. */
export function isLearner(config: Configuration | undefined, id: NodeId): boolean {
  return config?.learners?.includes(id) ?? false;
}

/** Whether `id` may vote (and so campaign) under `config`. */
export function isVoter(config: Configuration | undefined, id: NodeId): boolean {
  if (!config) return false;
  return config.voters.includes(id) || (config.outgoing?.includes(id) ?? false);
}

export function sameIds(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** A short, stable text form, for traces and error messages: `[1,2,3]` or `[1,2,4]+old[1,2,3]`. */
export function formatConfiguration(config: Configuration | undefined): string {
  if (!config) return 'none';
  const main = `[${config.voters.join(',')}]`;
  const learners = config.learners?.length ? `+learners[${config.learners.join(',')}]` : '';
  return (config.outgoing ? `${main}+old[${config.outgoing.join(',')}]` : main) + learners;
}

/** Checks that `ids` is a usable voter set: non-empty, positive safe integers. Returns a problem or undefined. */
export function validateVoterIds(ids: readonly NodeId[], learners: readonly NodeId[] = []): string | undefined {
  if (ids.length === 0) return 'a configuration needs at least one voter';
  for (const id of ids) {
    if (!Number.isSafeInteger(id) || id <= 0) return `node id ${String(id)} is not a positive integer`;
  }
  if (new Set(ids).size !== ids.length) return 'node ids must be unique';
  for (const id of learners) {
    if (!Number.isSafeInteger(id) || id <= 0) return `learner id ${String(id)} is not a positive integer`;
    if (ids.includes(id)) return `node ${id} cannot be both a voter and a learner`;
  }
  if (new Set(learners).size !== learners.length) return 'learner ids must be unique';
  return undefined;
}
