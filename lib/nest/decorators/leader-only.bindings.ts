import type { RaftService } from '../raft.service.js';

/**
 * Which RaftService decides for a `@LeaderOnly()` method, per object: the {@link RaftExplorer} of each
 * application records its own instances at bootstrap. Keyed by instance (not by class, not global),
 * so two applications in one process — each with its own instance of the same class and its own
 * node — never consult each other's node. Weak: a closed application's instances are not kept.
 */
const bindings = new WeakMap<object, RaftService>();

export function bindLeaderOnly(instance: object, raft: RaftService): void {
  bindings.set(instance, raft);
}

export function leaderOnlyBinding(instance: object): RaftService | undefined {
  return bindings.get(instance);
}
