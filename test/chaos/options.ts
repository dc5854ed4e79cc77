/**
 * Options of a chaos run (`npm run chaos -- --help` prints them).
 */
export type UnsafeMode = 'ack-before-persist' | 'async-commit';
export type FaultKind = 'kill' | 'partition' | 'pause' | 'postgres' | 'membership' | 'learner' | 'links' | 'lag';

export const ALL_FAULTS: readonly FaultKind[] = ['kill', 'partition', 'pause', 'postgres', 'membership', 'learner', 'links', 'lag'];

export const FAILPOINT_NAMES = [
  'after-vote-persist',
  'mid-batch-persist',
  'after-commit-before-apply',
  'during-config-change',
  'after-snapshot-persist',
  'after-snapshot-install',
] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

export interface ChaosOptions {
  seed: number;
  /** Seconds of faults (the workload runs through them and a little after). */
  durationS: number;
  nodes: number;
  clients: number;
  keys: number;
  /** Fault kinds to inject. */
  faults: FaultKind[];
  /** A negative control: a deliberately broken system the run must report as failed. */
  unsafe?: UnsafeMode;
  /** Start the nodes with RAFT_FAILPOINTS and count the kills per failpoint. */
  failpoints: boolean;
  /** Kills wanted per failpoint (the probabilities adapt to reach it). */
  failpointTarget: number;
  electionTimeoutMs: number;
  /** Per-request timeout of the clients; above the node's commandTimeoutMs (10 s) so most answers are definite. */
  clientTimeoutMs: number;
  /** Budget of the linearizability check; running out is a failure. */
  checkTimeoutMs: number;
  /** Where failing (or `--save`d) runs keep their history, faults and node logs. */
  historyDir: string;
  save: boolean;
  /** 'throwaway': initdb a private server (default when initdb exists); 'shared': databases on an existing server. */
  postgres: 'auto' | 'throwaway' | 'shared';
  /** The existing server for 'shared' (and the fallback). */
  sharedUrl: string;
  /** Run the sample through tsx instead of compiling it once (slower node starts). */
  tsx: boolean;
  /** Progress lines every this many ms (0: none). */
  progressMs: number;
  /** Print every fault as it happens. */
  verbose: boolean;
  /** Keep the throwaway PostgreSQL directory. */
  keep: boolean;
  /** Recovery must take at most this long. */
  recoveryLimitS: number;
  /** Optional pause between a client's operations (ms), to lower the rate. */
  thinkMs: number;
  /** The nodes' SNAPSHOT_EVERY (0: no snapshots); undefined: drawn from the seed, 100–300 (10–30 with failpoints). */
  snapshotEvery?: number;
  /**
   * Entries kept before each snapshot (SNAPSHOT_TRAILING_ENTRIES, where the sample has it); undefined:
   * drawn from the seed, 20–100 (the library's default, 1000, would keep a follower that is a few
   * seconds behind away from InstallSnapshot at the harness's write rate).
   */
  snapshotTrailing?: number;
  /**
   * Rolling restarts instead of faults: this many rounds of restarting every node gracefully (SIGTERM,
   * a leader hands over first), one at a time, each started again and caught up before the next; the
   * clients route around refused connections and any other failed request fails the run. 0: off.
   */
  rollingRestarts: number;
  /**
   * Take each node out of the clients' rotation before its SIGTERM, until those under way are answered,
   * and back in once it caught up (what a load balancer does in a rolling deployment). Off: the clients
   * keep sending to the node until it refuses connections.
   */
  rollingDrain: boolean;
}

export function defaultOptions(): ChaosOptions {
  return {
    seed: Math.floor(Math.random() * 2 ** 31),
    durationS: 60,
    nodes: 3,
    clients: 10,
    keys: 20,
    faults: [...ALL_FAULTS],
    failpoints: false,
    failpointTarget: 20,
    electionTimeoutMs: 300,
    clientTimeoutMs: 12_000,
    checkTimeoutMs: 120_000,
    historyDir: 'bench/chaos',
    save: false,
    postgres: 'auto',
    sharedUrl: process.env.RAFT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    tsx: false,
    progressMs: 5_000,
    verbose: false,
    keep: false,
    recoveryLimitS: 10,
    thinkMs: 0,
    rollingRestarts: 0,
    rollingDrain: false,
  };
}

export const USAGE = `usage: npm run chaos -- [options]

  --seed N                 random seed of the fault schedule and the workload (default: random, printed)
  --duration S             seconds of faults (default 60; with --failpoints the limit, default 400)
  --nodes N                cluster size (default 3)
  --clients N              concurrent clients (default 10)
  --keys N                 keys (default 20)
  --faults a,b,…           ${ALL_FAULTS.join(',')} (default: all; learner is left out with --failpoints)
  --unsafe MODE            negative control, must FAIL:
                             ack-before-persist  the proxies acknowledge AppendEntries for the follower before it has stored them
                             async-commit        PostgreSQL with synchronous_commit=off, stopped with -m immediate
  --failpoints             start the nodes with RAFT_FAILPOINTS (crash points) and check "one vote per term" too
  --failpoint-target N     kills wanted per failpoint (default 20; with --duration, 20 per 400 s, at least 2)
  --election-timeout MS    the nodes' ELECTION_TIMEOUT_MS (default 300)
  --client-timeout MS      client request timeout (default 12000)
  --check-timeout MS       linearizability check budget, exceeding it fails the run (default 120000)
  --think MS               pause between a client's operations (default 0)
  --snapshot-every N       the nodes' SNAPSHOT_EVERY (default: drawn from the seed, 100-300, 10-30 with
                           --failpoints; 0: no snapshots)
  --snapshot-trailing N    entries kept before a snapshot, SNAPSHOT_TRAILING_ENTRIES if the sample has it
                           (default: drawn from the seed, 20-100; else the library's 1000)
  --rolling-restart [N]    no faults: N rounds (default 2) of graceful restarts of every node, one at a
                           time, under the workload; any failed client request fails the run
  --rolling-drain          with --rolling-restart: take each node out of the clients' rotation (and wait
                           for its requests under way) before its SIGTERM, as a load balancer would
  --postgres auto|throwaway|shared   (default auto: a private initdb server if possible)
  --history-dir DIR        where failing runs are saved (default bench/chaos)
  --save                   save the history of a passing run too
  --tsx                    run the sample with tsx instead of compiling it once
  --keep                   keep the throwaway PostgreSQL directory
  --verbose                print every fault
  --quiet                  no progress lines
`;

export function parseArgs(argv: readonly string[]): ChaosOptions {
  const o = defaultOptions();
  let durationGiven = false;
  let faultsGiven = false;
  let targetGiven = false;
  const args = [...argv];
  const value = (flag: string): string => {
    const v = args.shift();
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const int = (flag: string, min: number): number => {
    const v = Number(value(flag));
    if (!Number.isSafeInteger(v) || v < min) throw new Error(`${flag} must be an integer >= ${min}`);
    return v;
  };
  while (args.length > 0) {
    const arg = args.shift()!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (inline !== undefined) args.unshift(inline);
    switch (flag) {
      case '--seed':
        o.seed = int(flag, 0);
        break;
      case '--duration':
        o.durationS = int(flag, 1);
        durationGiven = true;
        break;
      case '--nodes':
        o.nodes = int(flag, 1);
        break;
      case '--clients':
        o.clients = int(flag, 1);
        break;
      case '--keys':
        o.keys = int(flag, 1);
        break;
      case '--faults': {
        const list = value(flag)
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        for (const f of list) if (!ALL_FAULTS.includes(f as FaultKind) && f !== 'none') throw new Error(`unknown fault ${f} (known: ${ALL_FAULTS.join(', ')}, none)`);
        o.faults = list.filter((f) => f !== 'none') as FaultKind[];
        faultsGiven = true;
        break;
      }
      case '--unsafe': {
        const mode = value(flag);
        if (mode !== 'ack-before-persist' && mode !== 'async-commit') throw new Error(`--unsafe must be ack-before-persist or async-commit`);
        o.unsafe = mode;
        break;
      }
      case '--failpoints':
        o.failpoints = true;
        break;
      case '--failpoint-target':
        o.failpointTarget = int(flag, 0);
        targetGiven = true;
        break;
      case '--election-timeout':
        o.electionTimeoutMs = int(flag, 50);
        break;
      case '--client-timeout':
        o.clientTimeoutMs = int(flag, 100);
        break;
      case '--check-timeout':
        o.checkTimeoutMs = int(flag, 1);
        break;
      case '--think':
        o.thinkMs = int(flag, 0);
        break;
      case '--snapshot-every':
        o.snapshotEvery = int(flag, 0);
        break;
      case '--snapshot-trailing':
        o.snapshotTrailing = int(flag, 0);
        break;
      case '--rolling-drain':
        o.rollingDrain = true;
        break;
      case '--rolling-restart':
        o.rollingRestarts = args[0] !== undefined && /^\d+$/.test(args[0]) ? int(flag, 1) : 2;
        break;
      case '--postgres': {
        const mode = value(flag);
        if (mode !== 'auto' && mode !== 'throwaway' && mode !== 'shared') throw new Error('--postgres must be auto, throwaway or shared');
        o.postgres = mode;
        break;
      }
      case '--shared-url':
        o.sharedUrl = value(flag);
        break;
      case '--history-dir':
        o.historyDir = value(flag);
        break;
      case '--save':
        o.save = true;
        break;
      case '--tsx':
        o.tsx = true;
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--verbose':
        o.verbose = true;
        break;
      case '--quiet':
        o.progressMs = 0;
        break;
      case '--help':
      case '-h':
        throw new HelpRequested();
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  // A failpoints run ends as soon as every point has its kills; the duration is only its limit.
  if (o.failpoints && !durationGiven) o.durationS = 400;
  // A shorter failpoints run wants proportionally fewer kills (at least 2 each): 3 in 60 s.
  if (o.failpoints && durationGiven && !targetGiven) o.failpointTarget = Math.max(2, Math.round((20 * o.durationS) / 400));
  if (o.rollingDrain && o.rollingRestarts === 0) o.rollingRestarts = 2;
  if (o.rollingRestarts > 0 && (o.failpoints || o.unsafe)) throw new Error('--rolling-restart does not go with --failpoints or --unsafe');
  // A rolling restart alone is a run without faults: the restarts follow a short calm start. With
  // --faults or --duration it is a phase after the faults (once the cluster has recovered).
  if (o.rollingRestarts > 0 && !faultsGiven && !durationGiven) {
    o.faults = [];
    o.durationS = 0;
  }
  return o;
}

export class HelpRequested extends Error {
  constructor() {
    super('help');
  }
}
