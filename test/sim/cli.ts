/**
 * `npm run sim`: runs the deterministic cluster simulator over many seeds and reports violations.
 *
 *   npm run sim -- --seeds 1000 --nodes 5
 *   npm run sim -- --seed 42 --nodes 3 --trace
 *   npm run sim -- --seeds 200 --bug commit-previous-term
 *
 * The last line is always `sim: N seeds, V violations`; the exit code is 1 when V > 0.
 */
import { BUGS, isBugName, type BugName } from './bugs.js';
import { replayCommand, runSeed, type RunResult } from './simulator.js';

interface CliOptions {
  seeds: number;
  from: number;
  seed: number | undefined;
  nodes: number;
  bug: BugName | undefined;
  trace: boolean;
  durationMs: number | undefined;
  quietMs: number | undefined;
  maxEvents: number | undefined;
  stopOnFailure: boolean;
  verbose: boolean;
  classic: boolean;
}

const USAGE = `usage: npm run sim -- [options]
  --seeds N        run seeds from..from+N-1 (default 100)
  --from S         first seed of --seeds (default 1)
  --seed S         run only seed S
  --nodes 3|5|7    initial cluster size (default 3)
  --bug NAME       run with one deliberately broken rule (negative control):
${Object.entries(BUGS)
  .map(([name, what]) => `                     ${name}: ${what}`)
  .join('\n')}
  --trace          print a step-by-step trace of every seed run (use with --seed)
  --duration MS    virtual milliseconds of faults per seed (default 20000)
  --quiet MS       virtual milliseconds of calm before the final checks (default 4000)
  --steps N        stop each seed after N events (skips the final checks)
  --stop           stop at the first failing seed
  --verbose        print one line of statistics per seed
  --classic        check only the cluster-wide invariants (not each server's own promises)`;

function parse(argv: readonly string[]): CliOptions {
  const o: CliOptions = {
    seeds: 100,
    from: 1,
    seed: undefined,
    nodes: 3,
    bug: undefined,
    trace: false,
    durationMs: undefined,
    quietMs: undefined,
    maxEvents: undefined,
    stopOnFailure: false,
    verbose: false,
    classic: false,
  };
  const int = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (value === undefined || !Number.isSafeInteger(n) || n < min) fail(`${flag} needs an integer ≥ ${min}, got ${value ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--seeds':
        o.seeds = int(flag, value(), 1);
        break;
      case '--from':
        o.from = int(flag, value(), 0);
        break;
      case '--seed':
        o.seed = int(flag, value(), 0);
        break;
      case '--nodes':
        o.nodes = int(flag, value(), 1);
        if (![3, 5, 7].includes(o.nodes)) fail('--nodes must be 3, 5 or 7');
        break;
      case '--bug': {
        const name = value() ?? '';
        if (!isBugName(name)) fail(`unknown bug ${JSON.stringify(name)}; known: ${Object.keys(BUGS).join(', ')}`);
        o.bug = name;
        break;
      }
      case '--trace':
        o.trace = true;
        break;
      case '--duration':
        o.durationMs = int(flag, value(), 1);
        break;
      case '--quiet':
        o.quietMs = int(flag, value(), 0);
        break;
      case '--steps':
        o.maxEvents = int(flag, value(), 1);
        break;
      case '--stop':
        o.stopOnFailure = true;
        break;
      case '--verbose':
        o.verbose = true;
        break;
      case '--classic':
        o.classic = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        fail(`unknown option ${arg}`);
    }
  }
  return o;
}

function fail(message: string): never {
  process.stderr.write(`sim: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function main(): void {
  const o = parse(process.argv.slice(2));
  const seeds = o.seed !== undefined ? [o.seed] : Array.from({ length: o.seeds }, (_, i) => o.from + i);
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  const extra =
    `${o.durationMs !== undefined ? ` --duration ${o.durationMs}` : ''}${o.quietMs !== undefined ? ` --quiet ${o.quietMs}` : ''}` +
    `${o.classic ? ' --classic' : ''}`;
  const started = performance.now();
  let violations = 0;
  let failingSeeds = 0;
  let done = 0;
  const progressEvery = Math.max(1, Math.min(100, Math.round(seeds.length / 20)));

  for (const seed of seeds) {
    const result: RunResult = runSeed({
      seed,
      nodes: o.nodes,
      bug: o.bug,
      durationMs: o.durationMs,
      quietMs: o.quietMs,
      maxEvents: o.maxEvents,
      trace: o.trace ? out : undefined,
      promiseChecks: !o.classic,
    });
    done++;
    if (o.verbose) {
      const s = result.stats;
      out(
        `seed ${seed}: ${s.events} events, ${s.virtualMs.toFixed(0)}ms virtual, ${s.leaderTerms} leaders (max term ${s.maxTerm}), ` +
          `${s.crashes} crashes, ${s.networkChanges} network changes, membership ${s.configChangesCommitted}/${s.configChangesProposed} committed ` +
          `(${s.configChangesFailed} failed), ${s.committedEntries} entries committed, snapshots ${s.snapshotsTaken} taken / ${s.snapshotsInstalled} installed, ops ${s.opsOk} ok / ${s.opsFailed} failed / ` +
          `${s.opsUnknown} unknown / ${s.opsRefused} refused, final ${s.finalConfiguration}, digest ${result.digest}, ` +
          `linearizability check ${result.linearizabilityMs.toFixed(1)}ms`,
      );
    }
    if (result.violations.length > 0) {
      violations += result.violations.length;
      failingSeeds++;
      out(`FAIL seed ${seed} (${o.nodes} nodes${o.bug ? `, bug ${o.bug}` : ''}):`);
      for (const v of result.violations) out(`  ${v}`);
      out(`  replay: ${replayCommand(seed, o.nodes, o.bug, extra)}`);
      if (o.stopOnFailure) break;
    }
    if (!o.trace && (done % progressEvery === 0 || done === seeds.length)) {
      const elapsed = (performance.now() - started) / 1000;
      process.stderr.write(
        `sim: ${done}/${seeds.length} seeds, ${failingSeeds} failing, ${elapsed.toFixed(1)}s (${(done / elapsed).toFixed(1)} seeds/s)\n`,
      );
    }
  }
  out(`sim: ${done} seeds, ${violations} violations`);
  process.exitCode = violations > 0 ? 1 : 0;
}

main();
