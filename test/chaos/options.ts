/**
 * Options of a chaos run (`npm run chaos -- --help` prints them).
 */
export type UnsafeMode = 'ack-before-persist' | 'async-commit';
export type FaultKind = 'kill' | 'partition' | 'pause' | 'postgres' | 'membership' | 'links';

export const ALL_FAULTS: readonly FaultKind[] = ['kill', 'partition', 'pause', 'postgres', 'membership', 'links'];

export const FAILPOINT_NAMES = ['after-vote-persist', 'mid-batch-persist', 'after-commit-before-apply', 'during-config-change'] as const;
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
  };
}

export const USAGE = `usage: npm run chaos -- [options]

  --seed N                 random seed of the fault schedule and the workload (default: random, printed)
  --duration S             seconds of faults (default 60; with --failpoints the limit, default 300)
  --nodes N                cluster size (default 3)
  --clients N              concurrent clients (default 10)
  --keys N                 keys (default 20)
  --faults a,b,…           ${ALL_FAULTS.join(',')} (default: all)
  --unsafe MODE            negative control, must FAIL:
                             ack-before-persist  the proxies acknowledge AppendEntries for the follower before it has stored them
                             async-commit        PostgreSQL with synchronous_commit=off, stopped with -m immediate
  --failpoints             start the nodes with RAFT_FAILPOINTS (crash points) and check "one vote per term" too
  --failpoint-target N     kills wanted per failpoint (default 20)
  --election-timeout MS    the nodes' ELECTION_TIMEOUT_MS (default 300)
  --client-timeout MS      client request timeout (default 12000)
  --check-timeout MS       linearizability check budget, exceeding it fails the run (default 120000)
  --think MS               pause between a client's operations (default 0)
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
  if (o.failpoints && !durationGiven) o.durationS = 300;
  return o;
}

export class HelpRequested extends Error {
  constructor() {
    super('help');
  }
}
