/**
 * The faults, each kind on its own schedule drawn from the run's seed (so a seed names a schedule;
 * what the nodes do in between is real time and not replayable):
 *
 * - kill: kill -9 of a random node every 2 ± 0.5 s, restarted 0.1–0.8 s later;
 * - partition: every 3–8 s, for 2–5 s: the leader isolated, a random split, or one node cut off;
 * - pause: every 4–9 s, SIGSTOP of a node (the leader 40 % of the time) for 1–5 s, then SIGCONT;
 * - postgres: every 10–20 s (5–10 s in the async-commit control) an abrupt stop of PostgreSQL, down 0.5–3 s;
 * - membership: every 8–12 s a member (the leader 40 % of the time) is removed, its store replaced by
 *   an empty one, restarted with no PEERS and added back (POST /cluster/members);
 * - links: every 1–3 s one directed link gets delay 75 ± 50 ms, drop, duplicate or blackhole for 1–4 s;
 * - learner: 2–4 s after the start, then every 12–18 s, a voter (the leader 30 % of the time) is
 *   removed, restarted with an empty store and added back as a learner (POST /cluster/learners); it
 *   must catch up (through InstallSnapshot once the leader has compacted) within 30 s, and is then
 *   promoted (POST /cluster/learners/:id/promote). In turn, the learner is removed (DELETE
 *   /cluster/members/:id) once caught up; not removed; removed while it catches up — when removed, it
 *   is added again with the store it has. Other faults may kill, pause or cut off the learner meanwhile.
 *   Membership and learner changes take turns (one configuration change at a time).
 * - lag: every 6–12 s a follower is killed (or cut off from everyone: always with failpoints) and kept
 *   out until the leader's log starts past the follower's last stored entry (its snapshot and
 *   compaction, read from PostgreSQL; at most 20 s), so that it comes back through InstallSnapshot;
 *   meanwhile bursts of writes to keys outside the clients' (`filler-*`) make the log grow faster.
 */
import { request } from './http.js';
import { CLUSTER_ID, type ChaosCluster, type ChaosNode, type ClusterView } from './nodes.js';
import type { ChaosOptions, FailpointName, FaultKind } from './options.js';
import type { PgServer } from './postgres.js';
import { sleep } from './postgres.js';
import type { LinkMode, Network } from './proxy.js';
import type { Prng } from '../sim/prng.js';

/** What the learner fault did, and what it saw wrong. */
export interface LearnerReport {
  /** Confirmed (200) additions of a learner, re-additions included. */
  added: number;
  /** Confirmed promotions to voter. */
  promoted: number;
  /** Confirmed removals of a learner. */
  removed: number;
  /** Additions after which the learner reached the leader's commit index (as of the addition) within the bound. */
  caughtUp: number;
  /** Of those, by an empty learner with a snapshot installed (its log starts past 0) while the leader had compacted. */
  viaSnapshot: number;
  /** The slowest catch-up (s). */
  slowestCatchUpS: number;
  /** One line per learner addition: how it went. */
  lines: string[];
  /** A learner that did not catch up within the bound; a promotion or removal never confirmed. */
  problems: string[];
}

/** A learner must reach the leader's commit index within this long of its addition. */
export const LEARNER_CATCH_UP_LIMIT_MS = 30_000;

export interface FaultEvent {
  at: number;
  end?: number;
  kind: FaultKind | 'heal' | 'failpoint';
  detail: string;
}

export class Nemesis {
  readonly events: FaultEvent[] = [];
  readonly counts = new Map<string, number>();
  private active = false;
  private healing = false;
  private loops: Promise<void>[] = [];
  private wake: Array<() => void> = [];
  private membershipTask: Promise<void> | undefined;
  private readonly paused = new Set<ChaosNode>();
  readonly learners: LearnerReport = { added: 0, promoted: 0, removed: 0, caughtUp: 0, viaSnapshot: 0, slowestCatchUpS: 0, lines: [], problems: [] };
  /** One configuration change at a time: membership and learner changes take turns. */
  private configLock: Promise<void> = Promise.resolve();
  private lastConfigEnd = 0;
  private lastLearnerStart = 0;
  private learnerCycles = 0;

  constructor(
    private readonly options: ChaosOptions,
    private readonly cluster: ChaosCluster,
    private readonly pg: PgServer,
    private readonly network: Network,
    private readonly rng: Prng,
    private readonly now: () => number,
    private readonly log: (line: string) => void,
  ) {}

  private count(kind: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  private event(kind: FaultEvent['kind'], detail: string): FaultEvent {
    const e: FaultEvent = { at: this.now(), kind, detail };
    this.events.push(e);
    this.count(kind === 'partition' || kind === 'links' ? `${kind}:${detail.split(' ')[0]}` : kind);
    if (this.options.verbose) this.log(`${(e.at / 1000).toFixed(1)}s ${kind} ${detail}`);
    return e;
  }

  /** Sleeps, waking early when the faults stop; returns false then. */
  private async wait(ms: number): Promise<boolean> {
    if (!this.active) return false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake.push(done);
    });
    return this.active;
  }

  start(): void {
    this.active = true;
    this.lastMembershipStart = this.now();
    this.lastLearnerStart = this.now();
    const on = (k: FaultKind) => this.options.faults.includes(k);
    const loop = (stream: number, body: (rng: Prng) => Promise<void>) => {
      const rng = this.rng.fork(stream);
      this.loops.push(
        (async () => {
          while (this.active) {
            try {
              await body(rng);
            } catch (error) {
              this.log(`nemesis: ${(error as Error).message}`);
              await this.wait(500);
            }
          }
        })(),
      );
    };
    // With failpoints the nodes kill themselves (at the crash points); outside kills would only cut
    // the armed periods short.
    // (and pauses and PostgreSQL stops would mostly keep the cluster from reaching the crash points).
    const fpRun = this.options.failpoints;
    // In the async-commit control every node start switches synchronous_commit on for a moment (the
    // nodes refuse it off at start), so outside kills would shrink the window it is meant to show.
    if (on('kill') && !fpRun && this.options.unsafe !== 'async-commit') loop(1, (rng) => this.killOnce(rng));
    if (on('partition')) loop(2, (rng) => this.partitionOnce(rng));
    if (on('pause') && !fpRun) loop(3, (rng) => this.pauseOnce(rng));
    if (on('postgres') && !fpRun) loop(4, (rng) => this.postgresOnce(rng));
    if (on('membership')) loop(5, (rng) => this.membershipOnce(rng));
    // Not with failpoints: their phases are tuned to the other faults (membership changes included).
    if (this.learnersOn) loop(8, (rng) => this.learnerOnce(rng));
    if (on('links')) loop(6, (rng) => this.linksOnce(rng));
    if (on('lag') && this.options.unsafe !== 'async-commit') loop(7, (rng) => this.lagOnce(rng));
  }

  /** Whether this run has the learner fault (not with failpoints). */
  get learnersOn(): boolean {
    return this.options.faults.includes('learner') && !this.options.failpoints;
  }

  private candidates(): ChaosNode[] {
    return this.cluster.list.filter((n) => n.running && !n.busy);
  }

  /** In a failpoints run: the failpoint armed now (the faults that lead to it are made more frequent). */
  focus: readonly FailpointName[] = [];

  private focused(f: FailpointName): boolean {
    return this.focus.includes(f);
  }

  private get fp(): boolean {
    return this.focused('after-vote-persist') || this.focused('mid-batch-persist');
  }

  private async killOnce(rng: Prng): Promise<void> {
    if (!(await this.wait(rng.uniform(1500, 2500)))) return;
    const nodes = this.candidates();
    if (nodes.length === 0) return;
    const node = rng.pick(nodes);
    this.paused.delete(node);
    if (this.cluster.kill(node, rng.uniform(100, 800))) this.event('kill', `node ${node.id}`);
  }

  private async partitionOnce(rng: Prng): Promise<void> {
    // With failpoints: shorter, more frequent isolations of the leader, which make elections (votes to
    // persist) and divergent suffixes (truncations persisted together with new entries).
    if (!(await this.wait(this.fp ? rng.uniform(1500, 3000) : rng.uniform(3000, 8000)))) return;
    const ids = this.cluster.list.map((n) => n.id);
    const r = this.fp ? rng.next() * 0.6 : rng.next();
    let groups: number[][];
    let what: string;
    if (r < 0.4) {
      const leader = await this.cluster.leader();
      const isolated = leader?.nodeId ?? rng.pick(ids);
      groups = [[isolated], ids.filter((i) => i !== isolated)];
      what = `leader-isolated ${isolated}${leader ? '' : ' (no leader known: random)'}`;
    } else if (r < 0.8) {
      const shuffled = rng.shuffle([...ids]);
      const cut = rng.between(1, Math.max(1, Math.floor(ids.length / 2)));
      groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
      what = `split ${groups.map((g) => `[${g.join(',')}]`).join(' | ')}`;
    } else {
      const isolated = rng.pick(ids);
      groups = [[isolated], ids.filter((i) => i !== isolated)];
      what = `node-isolated ${isolated}`;
    }
    this.network.partition(groups);
    const e = this.event('partition', what);
    await this.wait(this.fp ? rng.uniform(1000, 2000) : rng.uniform(2000, 5000));
    this.network.clearPartition();
    e.end = this.now();
  }

  private async pauseOnce(rng: Prng): Promise<void> {
    if (!(await this.wait(this.options.failpoints ? rng.uniform(6000, 12000) : rng.uniform(4000, 9000)))) return;
    let node: ChaosNode | undefined;
    if (rng.chance(0.4)) {
      const leader = await this.cluster.leader();
      node = leader ? this.cluster.nodes.get(leader.nodeId) : undefined;
    }
    node ??= this.candidates().length > 0 ? rng.pick(this.candidates()) : undefined;
    if (!node || node.busy || !this.cluster.pause(node)) return;
    this.paused.add(node);
    const pid = node.child?.pid;
    const e = this.event('pause', `node ${node.id}`);
    await this.wait(rng.uniform(1000, 5000));
    if (node.child?.pid === pid) this.cluster.resume(node);
    this.paused.delete(node);
    e.end = this.now();
  }

  private async postgresOnce(rng: Prng): Promise<void> {
    const gap = this.options.unsafe === 'async-commit' ? rng.uniform(5000, 10000) : this.options.failpoints ? rng.uniform(20000, 30000) : rng.uniform(10000, 20000);
    if (!(await this.wait(gap))) return;
    const e = this.event('postgres', 'stop -m immediate');
    await this.pg.stopAbruptly();
    await this.wait(rng.uniform(500, 3000));
    await this.pg.start();
    e.end = this.now();
  }

  private async linksOnce(rng: Prng): Promise<void> {
    if (!(await this.wait(rng.uniform(1000, 3000)))) return;
    const ids = this.cluster.list.map((n) => n.id);
    if (ids.length < 2) return;
    const from = rng.pick(ids);
    const to = rng.pick(ids.filter((i) => i !== from));
    const r = rng.next();
    const mode: LinkMode =
      r < 0.35 ? { kind: 'delay' } : r < 0.6 ? { kind: 'drop', p: rng.uniform(0.1, 0.5) } : r < 0.8 ? { kind: 'duplicate', p: rng.uniform(0.2, 0.5) } : r < 0.9 ? { kind: 'blackhole' } : { kind: 'clean' };
    this.network.setLink(from, to, mode);
    const e = this.event('links', `${mode.kind} ${from}->${to}${'p' in mode ? ` p=${mode.p.toFixed(2)}` : ''}`);
    const hold = rng.uniform(1000, 4000);
    // Not awaited: several links can be faulty at once.
    void sleep(hold).then(() => {
      const current = this.network.linkMode(from, to);
      if (current === mode || JSON.stringify(current) === JSON.stringify(mode)) this.network.setLink(from, to, { kind: 'clean' });
      e.end = this.now();
    });
  }

  /** The index of the last entry `node` stores (its log start if it stores none); undefined if unknown. */
  private async lastStored(node: ChaosNode): Promise<number | undefined> {
    try {
      const rows = await this.pg.query<{ last: string | null }>(
        node.current.database,
        `SELECT coalesce((SELECT max("index") FROM raft_log_entries WHERE cluster_id = $1 AND node_id = $2),
                         (SELECT log_start_index FROM raft_base_configuration WHERE cluster_id = $1 AND node_id = $2), 0)::text AS last`,
        [CLUSTER_ID, node.id],
      );
      return rows[0]?.last != null ? Number(rows[0].last) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Where `node`'s stored log starts (entries up to there are compacted); undefined if unknown. */
  private async logStart(node: ChaosNode): Promise<number | undefined> {
    try {
      const rows = await this.pg.query<{ s: string }>(node.current.database, `SELECT log_start_index::text AS s FROM raft_base_configuration WHERE cluster_id = $1 AND node_id = $2`, [
        CLUSTER_ID,
        node.id,
      ]);
      return rows[0] ? Number(rows[0].s) : undefined;
    } catch {
      return undefined;
    }
  }

  private fillerSeq = 0;

  /** `count` writes of filler keys through `node`, 8 at a time; resolves with how many succeeded. */
  private async fill(node: ChaosNode, count: number): Promise<number> {
    let ok = 0;
    let next = 0;
    const worker = async () => {
      while (next < count && this.active) {
        next++;
        const n = ++this.fillerSeq;
        try {
          const answer = await request('PUT', `${node.apiUrl}/kv/filler-${n % 10}`, { value: `f${n}` }, 3_000);
          if (answer.status === 200) ok++;
          else return; // not the leader any more, or not serving: the caller looks again
        } catch {
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    return ok;
  }

  private async lagOnce(rng: Prng): Promise<void> {
    // With failpoints only in the phase of after-snapshot-install (where it is what leads there), back to back.
    const focused = this.focused('after-snapshot-install');
    if (this.options.failpoints && !focused) {
      await this.wait(1000);
      return;
    }
    if (!(await this.wait(focused ? rng.uniform(300, 1000) : rng.uniform(6000, 12000)))) return;
    // Not while a membership change is under way in that phase (the two together leave no quorum):
    // after it, and the next one waits for this one.
    if (focused && this.membershipTask) await this.membershipTask.catch(() => undefined);
    if (!this.active) return;
    const leader = await this.cluster.leader();
    // Only a follower that is caught up, and only if the others still make a quorum without it (else
    // the log would not grow and nothing would be learned).
    const views = leader ? await Promise.all(this.candidates().filter((n) => n.id !== leader.nodeId && !n.paused).map(async (n) => ({ n, v: await this.cluster.status(n, 700) }))) : [];
    const followers = views
      .filter(({ n, v }) => v && v.leaderId === leader!.nodeId && v.commitIndex + 100 >= leader!.commitIndex && leader!.members.some((m) => m.id === n.id))
      .map(({ n }) => n);
    const quorum = leader ? Math.floor(leader.members.length / 2) + 1 : 0;
    if (!leader || followers.length === 0 || followers.length < quorum) {
      if (this.options.verbose) this.log(`lag: ${leader ? `${followers.length} caught-up followers, ${quorum} needed besides the one cut off` : 'no leader'}, skipped`);
      return;
    }
    const victim = rng.pick(followers);
    const how = this.options.failpoints || rng.chance(0.5) ? 'isolate' : 'kill';
    victim.busy = true;
    if (how === 'kill') this.cluster.kill(victim);
    else this.network.isolate(victim.id);
    const e = this.event('lag', `${how} ${victim.id}`);
    try {
      const last = await this.lastStored(victim);
      if (last === undefined) {
        e.detail += ' (its store is unreadable: released)';
        return;
      }
      e.detail += ` until the leader's log starts past ${last}`;
      const deadline = this.now() + 20_000;
      let fillers = 0;
      for (;;) {
        const l = await this.cluster.leader();
        const start = l && l.nodeId !== victim.id ? (l.logStartIndex ?? (await this.logStart(this.cluster.node(l.nodeId)))) : undefined;
        if (start !== undefined && start > last) {
          e.detail += ` (leader ${l!.nodeId}'s starts after ${start})`;
          break;
        }
        if (this.now() > deadline) {
          e.detail += ' — not reached within 20 s';
          break;
        }
        // Help the log grow past it: a burst of writes to keys of their own (outside the checked
        // history; they are in the committed log, the replay and the snapshots like any other).
        if (l && l.nodeId !== victim.id) fillers += await this.fill(this.cluster.node(l.nodeId), 40);
        if (!(await this.wait(100))) break;
      }
      if (fillers > 0) e.detail += `, ${fillers} filler writes`;
    } finally {
      if (how === 'kill') {
        victim.restartAt = 0;
        victim.wanted = true; // the supervisor starts it
      } else this.network.unisolate(victim.id);
      victim.busy = false;
      e.end = this.now();
    }
  }

  private lastMembershipStart = 0;

  private async membershipOnce(rng: Prng): Promise<void> {
    // Every 10 ± 2 s from the start of the previous change (a change itself can take several seconds).
    const gap = this.focused('during-config-change') || this.focused('after-snapshot-install') ? rng.uniform(1000, 2000) : rng.uniform(8000, 12000);
    if (!(await this.wait(Math.max(500, this.lastMembershipStart + gap - this.now())))) return;
    if (this.focused('after-snapshot-install') && this.cluster.list.some((n) => n.busy)) return; // a lag under way
    await this.withConfigLock(async () => {
      // After a learner change, a little calm first (as the learner fault does after any change).
      const calm = this.learnersOn ? this.lastConfigEnd + 2000 - this.now() : 0;
      if (!this.active || (calm > 0 && !(await this.wait(calm)))) return;
      this.lastMembershipStart = this.now();
      this.membershipTask = this.removeAndReadd(rng);
      await this.membershipTask;
      this.membershipTask = undefined;
    });
  }

  /** Runs `body` when no other configuration change (membership, learner) is under way. */
  private async withConfigLock(body: () => Promise<void>): Promise<void> {
    const before = this.configLock;
    let release!: () => void;
    this.configLock = new Promise<void>((resolve) => (release = resolve));
    await before;
    try {
      await body();
    } finally {
      this.lastConfigEnd = this.now();
      release();
    }
  }

  /** Retries `attempt` until it succeeds; gives up when the faults have stopped for more than `graceMs`. */
  private async retry(what: string, attempt: () => Promise<boolean>, limitMs: number): Promise<boolean> {
    const deadline = this.now() + limitMs;
    while (this.now() < deadline) {
      if (await attempt()) return true;
      await sleep(250);
    }
    this.log(`membership: gave up: ${what}`);
    return false;
  }

  private async leaderView(): Promise<ClusterView | undefined> {
    return this.cluster.leader();
  }

  private async removeAndReadd(rng: Prng): Promise<void> {
    const leader = await this.leaderView();
    if (!leader) {
      if (this.options.verbose) this.log('membership: no leader, skipped');
      return;
    }
    const missing = this.cluster.list.filter((n) => !leader.members.some((m) => m.id === n.id));
    if (missing.length > 0) {
      // A node left out by an earlier change that did not finish: bring it back first.
      for (const node of missing) await this.readd(node, 30_000);
      return;
    }
    if (leader.members.length < 2) return;
    const others = leader.members.map((m) => m.id).filter((id) => id !== leader.nodeId && !this.cluster.nodes.get(id)?.busy);
    const victimId = rng.chance(0.4) || others.length === 0 ? leader.nodeId : rng.pick(others);
    const victim = this.cluster.node(victimId);
    const e = this.event('membership', `remove ${victimId}${victimId === leader.nodeId ? ' (the leader)' : ''} and re-add it empty`);
    victim.busy = true;
    this.resumeIfPaused(victim);
    try {
      // Wipe the store only once C_new without the victim is committed: a 200 from the leader says so.
      // (A retry after an unclear answer asks again; "already out" answers 200 once that is committed.)
      const removed = await this.retry(
        `remove ${victimId}`,
        async () => {
          const l = await this.leaderView();
          if (!l) return false;
          try {
            const answer = await request('DELETE', `${this.cluster.node(l.nodeId).apiUrl}/cluster/members/${victimId}`, undefined, 12_000, this.cluster.adminHeaders);
            return answer.status === 200;
          } catch {
            return false;
          }
        },
        30_000,
      );
      if (!removed) {
        e.detail += ' — removal not confirmed, store kept';
        return;
      }
      if (this.options.verbose) this.log(`membership: ${victimId} removed (C_new committed); restarting it with an empty store`);
      await this.cluster.restartEmpty(victim);
      const added = await this.readd(victim, 60_000);
      if (this.options.verbose) this.log(`membership: ${victimId} ${added ? 're-added' : 'NOT re-added yet'}`);
      if (!added) e.detail += ' — re-add not confirmed';
    } finally {
      victim.busy = false;
      e.end = this.now();
    }
  }

  private learnerTask: Promise<void> | undefined;
  private learnerRetry = false;

  private async learnerOnce(rng: Prng): Promise<void> {
    // The first soon after the start (a short run gets one), then every 12–18 s from the previous start;
    // one that found no leader (or no voter to spare) is tried again 0.5–1 s later.
    const gap = this.learnerRetry ? rng.uniform(500, 1000) : this.learnerCycles === 0 ? rng.uniform(2000, 4000) : rng.uniform(12000, 18000);
    if (!(await this.wait(Math.max(500, this.lastLearnerStart + gap - this.now())))) return;
    await this.withConfigLock(async () => {
      // A little calm after the previous configuration change (the cluster had one voter less during it).
      const calm = this.lastConfigEnd + 2000 - this.now();
      if (!this.active || (calm > 0 && !(await this.wait(calm)))) return;
      const start = this.now();
      const task = this.learnerCycle(rng);
      this.learnerTask = task.then(
        () => undefined,
        () => undefined,
      );
      try {
        this.learnerRetry = !(await task);
      } finally {
        this.learnerTask = undefined;
      }
      if (this.learnerRetry) return;
      this.lastLearnerStart = start;
      this.learnerCycles++;
    });
  }

  /** One membership request to the leader (with the admin token); its answer, or undefined (no leader, no answer). */
  private async configRequest(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown } | undefined> {
    const l = await this.leaderView();
    if (!l) return undefined;
    try {
      return await request(method, `${this.cluster.node(l.nodeId).apiUrl}${path}`, body, 12_000, this.cluster.adminHeaders);
    } catch {
      return undefined;
    }
  }

  /**
   * A voter out, back in empty as a learner, caught up, (perhaps removed as a learner and added again
   * with its store,) promoted: see the file comment.
   */
  private async learnerCycle(rng: Prng): Promise<boolean> {
    // Every choice drawn first, so that the seed fixes them whatever the timing.
    const leaderFirst = rng.chance(0.3);
    const pick = rng.next();
    // In turn, so that even a short run (one change) sees a learner added, caught up, removed and
    // promoted: removed once caught up (and added again), not removed, removed while catching up.
    const removal = (['caught-up', 'none', 'catching-up'] as const)[this.learnerCycles % 3]!;
    const removeAfterMs = rng.uniform(0, 1500);
    const readdAfterMs = rng.uniform(500, 2000);
    const leader = await this.waitForLeader(5_000);
    if (!leader) {
      if (this.options.verbose) this.log('learner: no leader for 5 s, tried again soon');
      return false;
    }
    const missing = this.cluster.list.filter((n) => !leader.members.some((m) => m.id === n.id));
    if (missing.length > 0) {
      // A node left out (or left a learner) by an earlier change that did not finish: bring it back first.
      for (const node of missing) await this.readd(node, 30_000);
      return false;
    }
    if (leader.members.length < 2) return false;
    const others = leader.members.map((m) => m.id).filter((id) => id !== leader.nodeId && !this.cluster.nodes.get(id)?.busy);
    const victimId = leaderFirst || others.length === 0 ? leader.nodeId : others[Math.min(others.length - 1, Math.floor(pick * others.length))]!;
    const victim = this.cluster.node(victimId);
    if (victim.busy) return false;
    const e = this.event(
      'learner',
      `remove ${victimId}${victimId === leader.nodeId ? ' (the leader)' : ''}, add it back empty as a learner${
        removal === 'none' ? '' : `, remove the learner ${removal === 'catching-up' ? 'while it catches up' : 'once caught up'} and add it again with its store`
      }, promote it`,
    );
    victim.busy = true;
    this.resumeIfPaused(victim);
    try {
      // Wipe the store only once C_new without it is committed (a 200 from the leader says so).
      const out = await this.retry(`remove ${victimId}`, async () => (await this.configRequest('DELETE', `/cluster/members/${victimId}`))?.status === 200, 30_000);
      if (!out) {
        e.detail += ' — removal not confirmed, store kept';
        return true;
      }
      if (this.options.verbose) this.log(`learner: ${victimId} removed (C_new committed); restarting it with an empty store`);
      await this.cluster.restartEmpty(victim, true);
      // From here the other faults may kill, pause or cut off the learner like any node.
      victim.busy = false;
      let added = await this.addLearner(victim);
      if (!added) {
        e.detail += ' — learner addition not confirmed';
        return true;
      }
      if (removal !== 'none') {
        if (removal === 'caught-up') await this.catchUp(victim, added, 'empty store');
        else await sleep(removeAfterMs);
        const seen = await this.cluster.status(victim, 700);
        const gone = await this.retry(`remove learner ${victimId}`, async () => (await this.configRequest('DELETE', `/cluster/members/${victimId}`))?.status === 200, 60_000);
        if (this.options.verbose) this.log(`learner: ${victimId} ${gone ? 'removed as a learner' : 'NOT removed as a learner'}`);
        if (!gone) {
          e.detail += ' — learner removal not confirmed';
          this.learners.lines.push(`node ${victimId} (incarnation ${victim.current.number}): its removal as a learner was not confirmed within 60 s`);
        } else {
          this.learners.removed++;
          if (removal === 'catching-up') {
            this.learners.lines.push(
              `node ${victimId} (incarnation ${victim.current.number}, empty store): added as a learner at ${(added.at / 1000).toFixed(1)} s and removed ${((this.now() - added.at) / 1000).toFixed(1)} s later while catching up (${seen ? `commit ${seen.commitIndex} of ${added.target}` : 'not answering'})`,
            );
          }
        }
        await sleep(readdAfterMs);
        added = await this.addLearner(victim);
        if (!added) {
          e.detail += ' — learner re-addition not confirmed';
          return true;
        }
        await this.catchUp(victim, added, 'its own store');
      } else await this.catchUp(victim, added, 'empty store');
      this.cluster.endLearnerPhase(victim);
      const promoted = await this.retry(
        `promote ${victimId}`,
        async () => {
          const l = await this.leaderView();
          if (!l) return false;
          // Promoted already by an attempt whose answer was lost (or the change is under way): the same
          // voter set answers 200 once committed. Neither voter nor learner: added as a voter.
          const asLearner = l.learners?.some((m) => m.id === victimId) ?? true;
          const path = asLearner ? `/cluster/learners/${victimId}/promote` : '/cluster/members';
          try {
            const answer = await request('POST', `${this.cluster.node(l.nodeId).apiUrl}${path}`, asLearner ? undefined : { id: victimId, url: victim.peerUrl }, 12_000, this.cluster.adminHeaders);
            return answer.status === 200;
          } catch {
            return false;
          }
        },
        60_000,
      );
      if (this.options.verbose) this.log(`learner: ${victimId} ${promoted ? 'promoted' : 'NOT promoted'}`);
      if (promoted) {
        this.learners.promoted++;
        e.detail += ' — promoted';
      } else e.detail += ' — promotion not confirmed';
      return true;
    } finally {
      victim.busy = false;
      e.end = this.now();
    }
  }

  /**
   * Adds `node` as a learner (running with an empty or its own store); resolves, once confirmed, with
   * the mark it must reach: the leader's commit index then (it includes the entry that added it).
   */
  private async addLearner(node: ChaosNode): Promise<{ at: number; target: number; leaderId: number; leaderLogStart: number } | undefined> {
    node.wanted = true;
    let before: ClusterView | undefined;
    const ok = await this.retry(
      `add learner ${node.id}`,
      async () => {
        before = (await this.leaderView()) ?? before;
        return (await this.configRequest('POST', '/cluster/learners', { id: node.id, url: node.peerUrl }))?.status === 200;
      },
      60_000,
    );
    if (!ok) return undefined;
    this.learners.added++;
    if (this.options.verbose) this.log(`learner: ${node.id} added as a learner`);
    const at = this.now();
    let l: ClusterView | undefined;
    for (const until = at + 10_000; !l && this.now() < until; ) {
      l = await this.leaderView();
      if (!l) await sleep(100);
    }
    l ??= before;
    return { at, target: l?.commitIndex ?? 0, leaderId: l?.nodeId ?? 0, leaderLogStart: l?.logStartIndex ?? 0 };
  }

  /** Waits until the learner `node` reaches `added.target` (at most LEARNER_CATCH_UP_LIMIT_MS from its addition); records how. */
  private async catchUp(node: ChaosNode, added: { at: number; target: number; leaderId: number; leaderLogStart: number }, store: 'empty store' | 'its own store'): Promise<boolean> {
    const deadline = added.at + LEARNER_CATCH_UP_LIMIT_MS;
    const who = `node ${node.id} (incarnation ${node.current.number}, ${store})`;
    const mark = `commit index ${added.target} (leader ${added.leaderId}'s at the addition, its log starting after ${added.leaderLogStart})`;
    let last: ClusterView | undefined;
    for (;;) {
      const v = node.running && !node.paused ? await this.cluster.status(node, 700) : undefined;
      if (v && v.pid === node.child?.pid) {
        last = v;
        if (v.commitIndex >= added.target) {
          const s = (this.now() - added.at) / 1000;
          this.learners.caughtUp++;
          this.learners.slowestCatchUpS = Math.max(this.learners.slowestCatchUpS, s);
          const installed = store === 'empty store' && ((v.logStartIndex ?? 0) > 0 || (v.snapshotIndex ?? 0) > 0);
          if (installed && added.leaderLogStart > 0) this.learners.viaSnapshot++;
          if (this.options.verbose) this.log(`learner: ${node.id} caught up in ${s.toFixed(2)} s (commit ${v.commitIndex} ≥ ${added.target}, log start ${v.logStartIndex ?? '?'})`);
          this.learners.lines.push(
            `${who}: added as a learner at ${(added.at / 1000).toFixed(1)} s, reached ${mark} ${s.toFixed(2)} s later: commit ${v.commitIndex}, applied ${v.appliedIndex ?? '?'}, its log starting after ${v.logStartIndex ?? '?'}${installed ? ' (InstallSnapshot)' : ''}; role ${v.role}`,
          );
          return true;
        }
      }
      if (this.now() >= deadline) break;
      await sleep(100);
    }
    const problem = `learner ${who} did not reach ${mark} within ${LEARNER_CATCH_UP_LIMIT_MS / 1000} s of its addition; last seen: ${
      last ? `${last.role} term ${last.term} leader ${last.leaderId} commit ${last.commitIndex} log start ${last.logStartIndex ?? '?'}` : 'no answer'
    }`;
    this.learners.problems.push(problem);
    this.learners.lines.push(problem);
    return false;
  }

  private resumeIfPaused(node: ChaosNode): void {
    if (node.paused) this.cluster.resume(node);
    this.paused.delete(node);
  }

  /** Adds `node` (running with an empty or its own store) back to the cluster (a learner named here is promoted). */
  private async readd(node: ChaosNode, limitMs: number): Promise<boolean> {
    node.wanted = true;
    this.cluster.endLearnerPhase(node);
    return this.retry(
      `re-add ${node.id}`,
      async () => {
        if (!node.running) return false;
        const l = await this.leaderView();
        if (!l) return false;
        // Already in? The same-set change then answers 200 only once that configuration is committed.
        try {
          const answer = await request('POST', `${this.cluster.node(l.nodeId).apiUrl}/cluster/members`, { id: node.id, url: node.peerUrl }, 12_000, this.cluster.adminHeaders);
          return answer.status === 200;
        } catch {
          return false;
        }
      },
      limitMs,
    );
  }

  /** Stops injecting faults and undoes the lasting ones; membership changes under way are finished. */
  async stop(): Promise<void> {
    this.active = false;
    for (const w of this.wake.splice(0)) w();
    this.healing = true;
    this.network.heal();
    for (const node of this.cluster.list) this.cluster.resume(node);
    this.paused.clear();
    if (!this.pg.isUp) await this.pg.start().catch((e: unknown) => this.log(`postgres restart: ${(e as Error).message}`));
    this.events.push({ at: this.now(), kind: 'heal', detail: 'faults stop: network healed, nodes resumed, PostgreSQL up' });
  }

  /** Waits for the fault loops (and a membership change under way) to end, then puts every node back in the cluster. */
  async settle(): Promise<void> {
    await Promise.all(this.loops);
    if (this.membershipTask) await this.membershipTask;
    if (this.learnerTask) await this.learnerTask;
    for (const node of this.cluster.list) if (!node.busy) node.wanted = true;
    // Anyone still outside the configuration (a change that gave up) goes back in.
    for (let round = 0; round < 3; round++) {
      const leader = await this.waitForLeader(20_000);
      if (!leader) return;
      const missing = this.cluster.list.filter((n) => !leader.members.some((m) => m.id === n.id));
      if (missing.length === 0) return;
      for (const node of missing) await this.readd(node, 30_000);
    }
  }

  async waitForLeader(limitMs: number): Promise<ClusterView | undefined> {
    const deadline = this.now() + limitMs;
    while (this.now() < deadline) {
      const l = await this.leaderView();
      if (l) return l;
      await sleep(100);
    }
    return undefined;
  }

  get isHealing(): boolean {
    return this.healing;
  }
}
