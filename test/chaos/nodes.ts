/**
 * The sample's nodes as separate processes on loopback: start, kill -9, SIGSTOP/SIGCONT, restart with
 * a fresh store, and a supervisor that restarts what died (a failpoint, a failed start while
 * PostgreSQL is down) or stopped serving (a node whose storage failed stops its engine and answers
 * `role: stopped` until it is restarted).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { request } from './http.js';
import type { ChaosOptions, FailpointName } from './options.js';
import { FAILPOINT_NAMES } from './options.js';
import { freePort, sleep, type PgServer } from './postgres.js';
import type { LinkProxy, Network } from './proxy.js';

export const CLUSTER_ID = 'chaos';

/** What `GET /cluster` answers. */
export interface ClusterView {
  nodeId: number;
  pid: number;
  role: string;
  term: number;
  leaderId: number;
  commitIndex: number;
  members: { id: number; url?: string }[];
  /** The learners (non-voting members) of the node's configuration; newer samples answer it. */
  learners?: { id: number; url?: string }[];
  /** Newer samples also answer these. */
  appliedIndex?: number;
  lastIndex?: number;
  snapshotIndex?: number;
  logStartIndex?: number;
}

/** Which optional environment variables this version of the sample understands (read from its source). */
export interface SampleSupport {
  rpcPort: boolean;
  clusterSecret: boolean;
  /** SNAPSHOT_EVERY (log compaction) */
  snapshotEvery: boolean;
  /** SNAPSHOT_TRAILING_ENTRIES (entries kept before a snapshot) */
  snapshotTrailing: boolean;
  /** ADMIN_TOKEN (membership changes need `authorization: Bearer <token>` when it is set) */
  adminToken: boolean;
  /** APPEND_ENTRIES_ENCODING (binary by default where the sample has it; `json` is what the proxies can read) */
  appendEntriesEncoding: boolean;
  unsafeAsyncCommit?: string;
}

export function detectSampleSupport(root: string): SampleSupport {
  let text = '';
  for (const file of ['sample/src/config.ts', 'sample/src/main.ts', 'sample/src/app.module.ts']) {
    try {
      text += readFileSync(join(root, file), 'utf8');
    } catch {
      // absent in this version
    }
  }
  const unsafe = /\b(RAFT_UNSAFE_ALLOW_ASYNC_COMMIT|UNSAFE_ALLOW_ASYNC_COMMIT)\b/.exec(text)?.[1];
  return {
    rpcPort: /\bRPC_PORT\b/.test(text),
    clusterSecret: /\bRAFT_CLUSTER_SECRET\b/.test(text),
    snapshotEvery: /\bSNAPSHOT_EVERY\b/.test(text),
    snapshotTrailing: /\bSNAPSHOT_TRAILING_ENTRIES\b/.test(text),
    adminToken: /\bADMIN_TOKEN\b/.test(text),
    appendEntriesEncoding: /\bAPPEND_ENTRIES_ENCODING\b/.test(text),
    ...(unsafe ? { unsafeAsyncCommit: unsafe } : {}),
  };
}

/** One incarnation's database and what was seen of it. */
export interface Incarnation {
  nodeId: number;
  number: number;
  database: string;
  /** Highest commit index the node reported while this incarnation ran. */
  maxCommitSeen: number;
  /**
   * Started empty to be added as a learner (the learner fault): from `since` (wall clock, ms) until
   * the harness first asked for its promotion (`promoteRequestedAt`; never: a learner to the end) no
   * configuration makes it a voter, so it must never campaign or lead.
   */
  learner?: { since: number; promoteRequestedAt?: number };
}

export interface NodeExit {
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  failpoint?: FailpointName;
  expected: boolean;
}

export class ChaosNode {
  incarnation = 0;
  incarnations: Incarnation[] = [];
  child: ChildProcess | undefined;
  /** Should be running (false while removed from the cluster and not yet restarted, or at the end). */
  wanted = true;
  paused = false;
  starts = 0;
  restartAt = 0;
  stoppedPolls = 0;
  failures = 0;
  /** The last kill was ours (so its exit is expected). */
  killedByUs = false;
  lastView: ClusterView | undefined;
  readonly exits: NodeExit[] = [];
  log: WriteStream | undefined;
  pendingFailpoint: FailpointName | undefined;
  /** Started with RAFT_FAILPOINTS. */
  armed = false;
  /** Between the decision to start and the spawn (counts as running, so nobody starts it twice). */
  spawning = false;
  /** Taken out of the cluster by the membership fault (its store will be replaced): left alone by other faults. */
  busy = false;
  /** "installed the leader's snapshot" lines in its output (every incarnation). */
  installLines = 0;
  /** Its last /cluster request failed (it was answering before). */
  silent = false;
  /** Out of the clients' rotation (`--rolling-drain`: as a load balancer takes a node out before its restart). */
  drained = false;

  constructor(
    readonly id: number,
    readonly apiPort: number,
    readonly rpcPort: number,
    readonly proxy: LinkProxy,
  ) {}

  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }
  get peerUrl(): string {
    return this.proxy.url;
  }
  get running(): boolean {
    return this.spawning || (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null);
  }
  get current(): Incarnation {
    return this.incarnations[this.incarnations.length - 1]!;
  }
}

export interface ClusterHooks {
  /** Before a node process is spawned and once it serves (or died): the async-commit control uses it. */
  onStarting?(): Promise<void>;
  onStarted?(): Promise<void>;
  log(line: string): void;
  now(): number;
}

export class ChaosCluster {
  readonly nodes = new Map<number, ChaosNode>();
  /** term → the nodes that said they lead it (more than one is a violation of Election Safety). */
  readonly leadersByTerm = new Map<number, Set<number>>();
  readonly failpointKills = new Map<FailpointName, number>(FAILPOINT_NAMES.map((f) => [f, 0]));
  private supervisor: NodeJS.Timeout | undefined;
  private supervising = false;
  private pollBusy = false;
  private starting = 0;
  failpointsEnabled = false;
  /** Every change seen in a node's /cluster answers (role, term, leader), and when it stopped answering: for the stall diagnoses. */
  readonly timeline: { at: number; node: number; what: string }[] = [];

  constructor(
    private readonly options: ChaosOptions,
    private readonly pg: PgServer,
    readonly network: Network,
    private readonly runDir: string,
    private readonly command: string[],
    private readonly support: SampleSupport,
    private readonly hooks: ClusterHooks,
    private readonly runId: string,
  ) {}

  /** Allocates ports and proxies, and the first incarnation's database of each node. */
  async init(makeProxy: (id: number, target: () => number) => LinkProxy): Promise<void> {
    for (let id = 1; id <= this.options.nodes; id++) {
      const apiPort = await freePort();
      const rpcPort = this.support.rpcPort ? await freePort() : apiPort;
      const proxy = makeProxy(id, () => rpcPort);
      await proxy.listen();
      const node = new ChaosNode(id, apiPort, rpcPort, proxy);
      node.log = createWriteStream(join(this.runDir, `node-${id}.log`), { flags: 'a' });
      this.nodes.set(id, node);
      await this.newIncarnation(node);
    }
  }

  private async newIncarnation(node: ChaosNode, learner = false): Promise<void> {
    const number = node.incarnations.length;
    const database = `${this.runId}_n${node.id}_i${number}`;
    await this.pg.createNodeDatabase(database);
    node.incarnation = number;
    node.incarnations.push({ nodeId: node.id, number, database, maxCommitSeen: 0, ...(learner ? { learner: { since: Date.now() } } : {}) });
  }

  /** The token every node gets as ADMIN_TOKEN (where the sample has it): membership changes must carry it. */
  get adminToken(): string | undefined {
    return this.support.adminToken ? `chaos-admin-${this.runId}` : undefined;
  }

  /** Headers of a membership request (POST/DELETE /cluster/members, /cluster/learners…). */
  get adminHeaders(): Record<string, string> {
    const token = this.adminToken;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  /** The harness no longer holds `node`'s current incarnation for a learner: its promotion is asked for now. */
  endLearnerPhase(node: ChaosNode): void {
    const l = node.current.learner;
    if (l && l.promoteRequestedAt === undefined) l.promoteRequestedAt = Date.now();
  }

  /**
   * What the polls saw of learners: a learner (by its own configuration, or by the harness's: added as
   * one and its promotion not asked for yet) must never report the role leader, candidate or
   * pre-candidate. `polls` counts the /cluster answers of learners (so a pass is not vacuous).
   */
  readonly learnerPolls = { polls: 0, violations: [] as string[] };

  get list(): ChaosNode[] {
    return [...this.nodes.values()];
  }

  node(id: number): ChaosNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  private peersEnv(): string {
    return this.list.map((n) => `${n.id}=${n.peerUrl}`).join(',');
  }

  private failpointsEnv(): string {
    if (process.env.CHAOS_FAILPOINTS_SPEC) return process.env.CHAOS_FAILPOINTS_SPEC; // for experiments
    // Paired with after-snapshot-persist, after-commit-before-apply (passed on every applied batch)
    // would take most of the phase's kills: a third of its probability.
    const p = (f: FailpointName) => (this.failpointPhase.length > 1 && f === 'after-commit-before-apply' ? ChaosCluster.FAILPOINT_P[f] / 3 : ChaosCluster.FAILPOINT_P[f]);
    return this.failpointPhase.map((f) => `${f}:${p(f)}`).join(',');
  }

  /**
   * The failpoints armed in the nodes that start now. A failpoints run goes through the points in
   * phases of one or two (see FAILPOINT_GROUPS in run.ts): arming all at once lets the frequent ones
   * (every node persists a vote in every election) keep the cluster from electing a leader while the
   * rare ones never fire. Probabilities are per passage: after-commit-before-apply is passed on every
   * applied batch, after-snapshot-persist on every snapshot, the others around elections,
   * truncations, configuration entries and installed snapshots.
   */
  failpointPhase: readonly FailpointName[] = ['after-vote-persist'];
  static readonly FAILPOINT_P: Record<FailpointName, number> = {
    'after-vote-persist': 0.7,
    'mid-batch-persist': 1,
    'after-commit-before-apply': 0.3,
    'during-config-change': 0.6,
    // Every node snapshots at about the same indices (they apply the same log): below 1/2, so that a
    // majority usually survives a snapshot round.
    'after-snapshot-persist': 0.4,
    // Passed only when a follower installs the leader's snapshot (it fell behind the leader's log start).
    'after-snapshot-install': 1,
  };

  /** Restarts every running node (one at a time, each until it serves), e.g. to arm another failpoint. */
  async rollingRestart(): Promise<void> {
    for (const node of this.list) {
      if (node.busy) continue;
      const child = node.child;
      if (child && node.running) {
        this.kill(node, 0);
        await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      }
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && !(node.child && (await this.status(node, 500)))) await sleep(50);
    }
  }

  /**
   * A graceful restart: SIGTERM (a leader hands leadership over first, then the node finishes what is
   * under way and exits), then the same store started again. Resolves with what happened, once the node
   * serves again, or with `exitedBy: 'SIGKILL'` when it did not exit within `graceMs` (then killed).
   */
  async gracefulRestart(
    node: ChaosNode,
    graceMs = 15_000,
  ): Promise<{ stopMs: number; exitCode: number | null; exitedBy: 'SIGTERM' | 'SIGKILL'; startMs: number; leaderAfterExit?: { id: number; term: number; ms: number } }> {
    const child = node.child;
    const t0 = performance.now();
    let exitedBy: 'SIGTERM' | 'SIGKILL' = 'SIGTERM';
    let exitCode: number | null = null;
    if (child && node.running) {
      node.killedByUs = true;
      node.wanted = false; // the supervisor waits for us
      const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        exitedBy = 'SIGKILL';
        child.kill('SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
      exitCode = child.exitCode;
    }
    const stopMs = performance.now() - t0;
    // Meanwhile: the first leader after the exit (another node, or this one once it is back), and how
    // long that took from the exit.
    const exitAt = performance.now();
    const watch = (async () => {
      while (performance.now() - exitAt < 30_000) {
        const views = await Promise.all(this.list.filter((n) => n.running && !n.paused && (n !== node || n.child !== child)).map((n) => this.status(n, 500)));
        const l = views.find((v) => v?.role === 'leader');
        if (l) return { id: l.nodeId, term: l.term, ms: performance.now() - exitAt };
        await sleep(50);
      }
      return undefined;
    })();
    await this.start(node);
    const t1 = performance.now();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !(node.child && (await this.status(node, 500)))) await sleep(50);
    const startMs = performance.now() - t1;
    const leaderAfterExit = await watch;
    return { stopMs, exitCode, exitedBy, startMs, ...(leaderAfterExit ? { leaderAfterExit } : {}) };
  }

  /** Spawns the node's process (its current incarnation). */
  async start(node: ChaosNode): Promise<void> {
    if (node.running) return;
    node.wanted = true;
    node.paused = false;
    node.stoppedPolls = 0;
    node.killedByUs = false;
    node.pendingFailpoint = undefined;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('RAFT_') && k !== 'NODE_OPTIONS' && k !== 'ADMIN_TOKEN') env[k] = v;
    Object.assign(env, {
      NODE_ID: String(node.id),
      HOST: '127.0.0.1',
      PORT: String(node.apiPort),
      PUBLIC_URL: node.peerUrl,
      DATABASE_URL: this.pg.urlFor(node.current.database, `raft-node-${node.id}`),
      CLUSTER_ID: CLUSTER_ID,
      ELECTION_TIMEOUT_MS: String(this.options.electionTimeoutMs),
      NODE_ENV: 'production',
    });
    // The first incarnation bootstraps the cluster; a re-added one must start empty and wait to be contacted.
    if (node.incarnation === 0) env.PEERS = this.peersEnv();
    if (this.support.rpcPort) env.RPC_PORT = String(node.rpcPort);
    if (this.support.clusterSecret) env.RAFT_CLUSTER_SECRET = `chaos-secret-${this.runId}`;
    if (this.adminToken) env.ADMIN_TOKEN = this.adminToken;
    if (this.support.snapshotEvery && this.options.snapshotEvery !== undefined) env.SNAPSHOT_EVERY = String(this.options.snapshotEvery);
    if (this.support.snapshotTrailing && this.options.snapshotTrailing !== undefined) env.SNAPSHOT_TRAILING_ENTRIES = String(this.options.snapshotTrailing);
    // The ack-before-persist proxies read an AppendEntries' term and entries from its JSON body.
    if (this.network.forgeAcks && this.support.appendEntriesEncoding) env.APPEND_ENTRIES_ENCODING = 'json';
    if (this.options.unsafe === 'async-commit' && this.support.unsafeAsyncCommit) env[this.support.unsafeAsyncCommit] = '1';
    if (this.failpointsEnabled) env.RAFT_FAILPOINTS = this.failpointsEnv();
    node.armed = this.failpointsEnabled;
    this.starting++;
    node.spawning = true;
    try {
      await this.hooks.onStarting?.();
    } catch (error) {
      this.hooks.log(`node ${node.id}: before start: ${(error as Error).message}`);
    } finally {
      node.spawning = false;
    }
    node.starts++;
    const child = spawn(this.command[0]!, [...this.command.slice(1)], { env, cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    node.child = child;
    node.log?.write(`\n==== ${new Date().toISOString()} start #${node.starts} (incarnation ${node.incarnation}, pid ${child.pid})${env.RAFT_FAILPOINTS ? ` RAFT_FAILPOINTS=${env.RAFT_FAILPOINTS}` : ''}${env.SNAPSHOT_EVERY ? ` SNAPSHOT_EVERY=${env.SNAPSHOT_EVERY}` : ''}${env.SNAPSHOT_TRAILING_ENTRIES ? ` SNAPSHOT_TRAILING_ENTRIES=${env.SNAPSHOT_TRAILING_ENTRIES}` : ''}\n`);
    child.stdout!.on('data', (d: Buffer) => {
      node.log?.write(d);
      const text = d.toString();
      if (text.includes("installed the leader's snapshot")) node.installLines += text.split("installed the leader's snapshot").length - 1;
    });
    child.stderr!.on('data', (d: Buffer) => {
      node.log?.write(d);
      const m = /failpoint ([a-z-]+): killing process/.exec(d.toString());
      if (m) node.pendingFailpoint = m[1] as FailpointName;
    });
    let served = false;
    const startedOnce = async () => {
      if (served) return;
      served = true;
      this.starting--;
      if (this.starting === 0) await this.hooks.onStarted?.().catch(() => undefined);
    };
    child.on('exit', (code, signal) => {
      const exit: NodeExit = { at: this.hooks.now(), code, signal, expected: node.killedByUs, ...(node.pendingFailpoint ? { failpoint: node.pendingFailpoint } : {}) };
      node.exits.push(exit);
      if (exit.failpoint) this.failpointKills.set(exit.failpoint, this.failpointKills.get(exit.failpoint)! + 1);
      node.log?.write(`==== exit code=${code} signal=${signal}${exit.failpoint ? ` failpoint=${exit.failpoint}` : ''}\n`);
      if (node.child === child) node.child = undefined;
      node.paused = false;
      if (!node.killedByUs) {
        node.failures++;
        node.restartAt = Date.now() + Math.min(2_000, 150 * 2 ** Math.min(4, node.failures - 1));
      }
      void startedOnce();
    });
    // Served = answers /cluster (its store is loaded: the durability check has run).
    void (async () => {
      const deadline = Date.now() + 30_000;
      while (!served && node.child === child && Date.now() < deadline) {
        const view = await this.status(node, 500);
        if (view) {
          node.failures = 0;
          break;
        }
        await sleep(50);
      }
      await startedOnce();
    })();
  }

  /** With failpoints off, restarts the nodes still armed with them, one at a time, each until it serves. */
  async disarmFailpoints(): Promise<void> {
    this.failpointsEnabled = false;
    if (this.list.some((n) => n.armed)) await this.rollingRestart();
  }

  /** kill -9; `restartInMs` undefined leaves it down. */
  kill(node: ChaosNode, restartInMs?: number): boolean {
    if (!node.running || !node.child) return false;
    node.killedByUs = true;
    node.child!.kill('SIGKILL');
    node.paused = false;
    if (restartInMs !== undefined) node.restartAt = Date.now() + restartInMs;
    else node.wanted = false;
    return true;
  }

  pause(node: ChaosNode): boolean {
    if (!node.running || !node.child || node.paused) return false;
    node.child!.kill('SIGSTOP');
    node.paused = true;
    return true;
  }

  resume(node: ChaosNode): void {
    if (node.paused) node.child?.kill('SIGCONT');
    node.paused = false;
  }

  /** Kills the node, gives it an empty store (a new database), and starts it with no PEERS; `learner`: to be added as a learner. */
  async restartEmpty(node: ChaosNode, learner = false): Promise<void> {
    node.wanted = false;
    while (node.spawning) await sleep(10);
    const child = node.child;
    if (child && node.running) {
      this.kill(node);
      await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    }
    await this.newIncarnation(node, learner);
    await this.start(node);
  }

  async status(node: ChaosNode, timeoutMs = 1_000): Promise<ClusterView | undefined> {
    const pid = node.child?.pid;
    try {
      const answer = await request('GET', `${node.apiUrl}/cluster`, undefined, timeoutMs);
      if (answer.status !== 200) return undefined;
      const view = answer.body as ClusterView;
      const last = node.lastView;
      if (!last || node.silent || last.pid !== view.pid || last.role !== view.role || last.term !== view.term || last.leaderId !== view.leaderId) {
        this.timeline.push({ at: this.hooks.now(), node: node.id, what: `pid ${view.pid} ${view.role} term ${view.term} leader ${view.leaderId} commit ${view.commitIndex}` });
      }
      node.silent = false;
      node.lastView = view;
      if (view.commitIndex > node.current.maxCommitSeen && view.pid === node.child?.pid) node.current.maxCommitSeen = view.commitIndex;
      if (view.pid === node.child?.pid) this.watchLearner(node, view);
      if (view.role === 'leader') {
        let set = this.leadersByTerm.get(view.term);
        if (!set) this.leadersByTerm.set(view.term, (set = new Set()));
        set.add(view.nodeId);
      }
      return view;
    } catch (error) {
      if (!node.silent && node.running && !node.paused && node.child?.pid === pid && node.lastView?.pid === pid) {
        node.silent = true;
        this.timeline.push({ at: this.hooks.now(), node: node.id, what: `no answer to /cluster within ${timeoutMs} ms (${(error as Error).message.slice(0, 60)})` });
      }
      return undefined;
    }
  }

  private watchLearner(node: ChaosNode, view: ClusterView): void {
    const own = view.learners?.some((m) => m.id === view.nodeId) ?? false;
    const inc = node.current;
    const held = inc.learner !== undefined && inc.learner.promoteRequestedAt === undefined;
    if (!own && !held) return;
    this.learnerPolls.polls++;
    // A learner added empty may for a while hold an older configuration (from the snapshot or the
    // entries it got so far) in which it is still a voter: a pre-vote from it then is Raft as written,
    // and harmless (its log ends before the change that made it a learner, so no one grants it). It
    // must never get further: a real campaign, or a lead. Knowing itself a learner, not even a pre-vote.
    const staleVoter = !own && view.members.some((m) => m.id === view.nodeId);
    if (view.role === 'leader' || view.role === 'candidate' || (view.role === 'pre-candidate' && !staleVoter)) {
      this.learnerPolls.violations.push(
        `at ${(this.hooks.now() / 1000).toFixed(2)} s node ${node.id} (incarnation ${inc.number}, pid ${view.pid}) reported role ${view.role} in term ${view.term} while ${
          own ? 'its own configuration lists it as a learner' : 'a learner (added as one, its promotion not asked for yet)'
        }`,
      );
    }
  }

  /** The leader's view, asked of every running node (the highest term wins when two claim it). */
  async leader(timeoutMs = 800): Promise<ClusterView | undefined> {
    const views = await Promise.all(this.list.filter((n) => n.running && !n.paused).map((n) => this.status(n, timeoutMs)));
    const leaders = views.filter((v): v is ClusterView => v?.role === 'leader').sort((a, b) => b.term - a.term);
    return leaders[0];
  }

  startSupervisor(): void {
    this.supervising = true;
    const loop = async () => {
      if (!this.supervising) return;
      for (const node of this.list) {
        if (!node.wanted || node.running || Date.now() < node.restartAt) continue;
        await this.start(node).catch((e: unknown) => this.hooks.log(`node ${node.id}: start failed: ${(e as Error).message}`));
      }
      if (!this.pollBusy) {
        this.pollBusy = true;
        void Promise.all(
          this.list
            .filter((n) => n.running && !n.paused)
            .map(async (n) => {
              const pid = n.child?.pid;
              const view = await this.status(n, 700);
              if (!view || view.pid !== pid || n.paused) return;
              // A node whose storage failed (PostgreSQL went away) stops its engine and stays up: restart it.
              if (view.role === 'stopped') {
                if (++n.stoppedPolls >= 2 && n.running) {
                  this.hooks.log(`node ${n.id}: engine stopped (storage failure?), restarting`);
                  this.kill(n, 100);
                }
              } else n.stoppedPolls = 0;
            }),
        ).finally(() => (this.pollBusy = false));
      }
      if (this.supervising) this.supervisor = setTimeout(() => void loop(), 150);
    };
    void loop();
  }

  stopSupervisor(): void {
    this.supervising = false;
    clearTimeout(this.supervisor);
  }

  /** Stops every node: SIGCONT, then SIGTERM (a clean close), then SIGKILL after a grace period. */
  async stopAll(graceMs = 3_000): Promise<void> {
    this.stopSupervisor();
    await Promise.all(
      this.list.map(async (node) => {
        node.wanted = false;
        const child = node.child;
        if (!child || !node.running) return;
        node.killedByUs = true;
        if (node.paused) child.kill('SIGCONT');
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    for (const node of this.list) node.log?.end();
  }

  /** Synchronous last resort when the harness is interrupted: kill -9 every node process. */
  killAllNow(): void {
    for (const node of this.list) {
      if (node.paused) node.child?.kill('SIGCONT');
      node.child?.kill('SIGKILL');
    }
  }

  async closeProxies(): Promise<void> {
    await Promise.all(this.list.map((n) => n.proxy.close()));
  }
}
