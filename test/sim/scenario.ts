import type { BugName } from './bugs.js';
import type { NetworkConditions } from './network.js';
import type { Prng } from './prng.js';
import type { ClientParams } from './workload.js';

/** One tick of the engines' logical clock, in virtual µs. */
export const TICK_US = 5_000;

/**
 * Everything that shapes one simulated run. Each seed draws its own scenario (how lossy the network,
 * how often servers crash, how large a batch may be, …) so that many seeds explore many regimes.
 */
export interface Scenario {
  readonly nodes: number;
  /** Virtual time with faults, then virtual time of calm at the end (µs). */
  readonly durationUs: number;
  readonly quietUs: number;
  readonly engine: {
    readonly electionTimeoutTicks: number;
    readonly heartbeatTicks: number;
    readonly preVote: boolean;
    readonly checkQuorum: boolean;
    readonly maxEntriesPerAppend: number;
    readonly maxBytesPerAppend: number;
    readonly maxInflightAppends: number;
    /** Leaders serve lease reads (thesis §6.4.1) besides ReadIndex: reads within the lease skip the round. */
    readonly leaseReads: boolean;
  };
  readonly network: NetworkConditions;
  /** How often the network changes: partitions, isolating the leader, one-way cuts, healing. */
  readonly partitions: { readonly meanIntervalUs: number };
  /** A save to disk takes this long (a Ready without writes costs nothing). */
  readonly persist: { readonly minUs: number; readonly maxUs: number };
  readonly crashes: {
    /** Mean time between two crashes anywhere in the cluster. */
    readonly meanIntervalUs: number;
    readonly minDownUs: number;
    readonly maxDownUs: number;
    /** Probability that a crash targets the current leader. */
    readonly leaderBias: number;
    /** Probability of crashing right after a save, before its messages leave. */
    readonly afterSaveRate: number;
    /** Probability that a newly elected leader is crashed or cut off, within `newLeaderDelayUs`. */
    readonly newLeaderRate: number;
    readonly newLeaderDelayUs: number;
  };
  readonly membership: {
    readonly meanIntervalUs: number;
    /** Voter sets stay within [minVoters, maxVoters]; new servers get ids above the initial ones. */
    readonly minVoters: number;
    readonly maxVoters: number;
    /** Probability that one change adds or removes two servers at once (joint consensus allows it). */
    readonly multiRate: number;
    /** Probability that a removal removes the leader. */
    readonly removeLeaderRate: number;
    /** Probability that a change is followed by a partition of the leader and the joining servers from the rest. */
    readonly partitionRate: number;
  };
  readonly clients: ClientParams;
  /** Share of reads served by ReadIndex (thesis §6.4) instead of through the log. */
  readonly readIndexRatio: number;
  /** Mean time between two leadership transfers (thesis §3.10) started by the nemesis. */
  readonly transferMeanIntervalUs: number;
  /** Log compaction: each server snapshots its state machine every `every` applied entries (0: never). */
  readonly snapshots: {
    readonly every: number;
    /** Entries kept before the snapshot's index, for followers only a little behind. */
    readonly trailing: number;
    /** Probability of crashing while a snapshot is being saved (before, or right after, it is durable). */
    readonly crashRate: number;
    /** Probability that a lost InstallSnapshot is reported to the leader (the transport saw it fail). */
    readonly reportFailureRate: number;
  };
}

export interface ScenarioOptions {
  readonly nodes: number;
  readonly durationMs: number;
  readonly quietMs: number;
  readonly bug?: BugName | undefined;
}

/** Draws a scenario for one seed. */
export function drawScenario(rng: Prng, options: ScenarioOptions): Scenario {
  const n = options.nodes;
  const ms = 1000;
  const preVote = rng.chance(0.9);
  const base: Omit<Scenario, 'snapshots'> = {
    nodes: n,
    durationUs: options.durationMs * ms,
    quietUs: options.quietMs * ms,
    engine: {
      electionTimeoutTicks: 50,
      heartbeatTicks: 5,
      // Both off is a setting where a removed server is known to disrupt the cluster (thesis §4.2.3).
      preVote,
      checkQuorum: !preVote || rng.chance(0.9),
      maxEntriesPerAppend: rng.pick([1, 2, 3, 8, 64, 512]),
      maxBytesPerAppend: rng.pick([64, 1024, 1024 * 1024]),
      maxInflightAppends: rng.pick([1, 2, 8, 32]),
      leaseReads: false, // drawn below, from a stream of its own
    },
    network: {
      lossRate: rng.uniform(0, 0.3),
      duplicateRate: rng.uniform(0, 0.1),
      minDelayUs: rng.between(100, 500),
      maxDelayUs: rng.between(1_000, 8_000),
      reorderRate: rng.uniform(0, 0.25),
      maxReorderDelayUs: rng.between(5_000, 80_000),
    },
    partitions: { meanIntervalUs: rng.between(300, 1_500) * ms },
    persist: { minUs: 500, maxUs: 3_000 },
    crashes: {
      meanIntervalUs: rng.between(300, 1_500) * ms,
      minDownUs: 5 * ms,
      maxDownUs: rng.between(200, 1_500) * ms,
      leaderBias: 0.3,
      afterSaveRate: 0.01,
      newLeaderRate: rng.uniform(0, 0.2),
      newLeaderDelayUs: 20 * ms,
    },
    membership: {
      meanIntervalUs: rng.between(300, 1_500) * ms,
      minVoters: Math.max(2, n - 2),
      maxVoters: n + 2,
      multiRate: 0.35,
      removeLeaderRate: 0.3,
      partitionRate: rng.uniform(0, 0.3),
    },
    clients: {
      clients: 5,
      keys: rng.between(3, 5),
      readRatio: 0.35,
      casRatio: 0.25,
      thinkMinUs: 0,
      thinkMaxUs: rng.between(5, 40) * ms,
      timeoutUs: rng.between(300, 1_000) * ms,
    },
    readIndexRatio: 0.5,
    transferMeanIntervalUs: 2_000 * ms,
  };
  // Lease reads need CheckQuorum; drawn from a stream of their own so the draws above stay as they were.
  const lease = rng.fork(10);
  const withLease = { ...base, engine: { ...base.engine, leaseReads: base.engine.checkQuorum && lease.chance(0.3) } };
  const tuned = tuneForBug(rng, withLease, options.bug);
  // Drawn from a stream of its own, last, so that the draws above stay what they were for every seed.
  const snap = rng.fork(9);
  return {
    ...tuned,
    snapshots: {
      every: options.bug === 'snapshot-keeps-conflicting-log' ? 3 : snap.pick([0, 5, 20, 50, 200]),
      trailing: options.bug === 'snapshot-keeps-conflicting-log' ? 0 : snap.pick([0, 0, 3, 30]),
      crashRate: 0.03,
      reportFailureRate: 0.5,
    },
  };
}

/**
 * Each negative control needs a particular interleaving to show; these settings make it frequent
 * (the checkers are the same as for every other run).
 */
function tuneForBug(rng: Prng, s: Omit<Scenario, 'snapshots'>, bug: BugName | undefined): Omit<Scenario, 'snapshots'> {
  const ms = 1000;
  switch (bug) {
    case undefined:
      return s;
    case 'commit-previous-term':
      // Figure 8: an old-term entry must reach a majority before the new leader's no-op does, and
      // the leader must then fail; so replicate one entry per round trip, keep clients busy (long
      // unreplicated tails), strike every new leader within its first round trips, and leave out
      // the other faults, which mostly interrupt that sequence.
      return {
        ...s,
        engine: { ...s.engine, maxEntriesPerAppend: 1, maxInflightAppends: 1 },
        crashes: { ...s.crashes, meanIntervalUs: 6_000 * ms, maxDownUs: 150 * ms, newLeaderRate: 1, newLeaderDelayUs: 80 * ms },
        partitions: { meanIntervalUs: 3_000 * ms },
        membership: { ...s.membership, meanIntervalUs: 3_600_000 * ms },
        clients: { ...s.clients, thinkMaxUs: 5 * ms },
      };
    case 'forget-vote-on-restart':
      // Contested elections and restarts right after voting.
      return {
        ...s,
        engine: { ...s.engine, preVote: false, checkQuorum: false },
        crashes: { ...s.crashes, meanIntervalUs: rng.between(50, 200) * ms, maxDownUs: 100 * ms, leaderBias: 0.5 },
      };
    case 'truncate-after-prev':
      return {
        ...s,
        engine: { ...s.engine, maxInflightAppends: 8 },
        network: { ...s.network, reorderRate: 0.3, duplicateRate: 0.1 },
      };
    case 'reply-before-persist':
      // A long write window, so that crashes land between sending and saving.
      return {
        ...s,
        persist: { minUs: 2_000, maxUs: 10_000 },
        crashes: { ...s.crashes, meanIntervalUs: rng.between(50, 200) * ms, maxDownUs: 100 * ms },
      };
    case 'read-without-quorum':
      // Reads mostly through ReadIndex, and new leaders often cut off: a deposed leader that still
      // believes it leads is where a read without a quorum round goes stale.
      // Without CheckQuorum the cut-off leader keeps believing it leads for the whole partition.
      return {
        ...s,
        engine: { ...s.engine, checkQuorum: false },
        readIndexRatio: 1,
        clients: { ...s.clients, readRatio: 0.6 },
        crashes: { ...s.crashes, newLeaderRate: 0.8 },
      };
    case 'snapshot-keeps-conflicting-log':
      // Followers left with entries of a deposed leader, then brought back by snapshots: busy clients
      // (long unreplicated tails), leaders struck soon after election, partitions.
      return {
        ...s,
        crashes: { ...s.crashes, newLeaderRate: 0.6, newLeaderDelayUs: 60 * ms },
        clients: { ...s.clients, thinkMaxUs: 5 * ms },
        partitions: { meanIntervalUs: rng.between(200, 500) * ms },
      };
    case 'no-joint-majority':
      // Changes that replace a majority at once, during partitions.
      return {
        ...s,
        membership: { ...s.membership, meanIntervalUs: rng.between(200, 600) * ms, multiRate: 1, removeLeaderRate: 0.2, partitionRate: 0.8 },
        partitions: { meanIntervalUs: rng.between(100, 400) * ms },
      };
  }
}
