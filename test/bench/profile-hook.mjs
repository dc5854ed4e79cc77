/**
 * Also, with `--heap-snapshot` (BENCH_HEAP_DIR set): SIGTTIN writes `$BENCH_HEAP_DIR/$BENCH_PROFILE_NAME.memory.json`
 * (process.memoryUsage() and v8 heap statistics before and after a full GC) and then a heap snapshot
 * `$BENCH_PROFILE_NAME.heapsnapshot` (V8 collects garbage first, so it holds what is live).
 * SIGTTIN: Nest's shutdown hooks do not listen to it, and a handler replaces its default (stop).
 *
 * Preloaded into a benchmarked node (`node --import test/bench/profile-hook.mjs …`) when
 * `npm run bench -- --profile <scenario>` asks for CPU profiles: SIGWINCH starts V8's sampling
 * profiler, the next SIGWINCH stops it and writes `$BENCH_PROFILE_DIR/$BENCH_PROFILE_NAME.cpuprofile`
 * (the format of `node --cpu-prof`, readable by Chrome DevTools and test/bench/profile-summary.ts).
 *
 * Unlike `--cpu-prof`, which writes only at a normal exit, this profiles exactly one scenario's
 * window and works for a process that is stopped by a signal. SIGWINCH, because it is ignored by
 * default and Nest's enableShutdownHooks() listens to SIGUSR2 (and would close the app).
 */
import { Session } from 'node:inspector';
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';

const heapDir = process.env.BENCH_HEAP_DIR;
if (heapDir) {
  const label = process.env.BENCH_PROFILE_NAME ?? `pid${process.pid}`;
  process.on('SIGTTIN', () => {
    const reading = () => ({ memoryUsage: process.memoryUsage(), heap: v8.getHeapStatistics(), spaces: v8.getHeapSpaceStatistics() });
    const before = reading();
    const file = join(heapDir, `${label}.heapsnapshot`);
    v8.writeHeapSnapshot(`${file}.tmp`);
    renameSync(`${file}.tmp`, file);
    const after = reading();
    writeFileSync(join(heapDir, `${label}.memory.json`), JSON.stringify({ before, afterSnapshot: after }, null, 1));
  });
}

const dir = process.env.BENCH_PROFILE_DIR;
const name = process.env.BENCH_PROFILE_NAME ?? `pid${process.pid}`;
if (dir) {
  const session = new Session();
  session.connect();
  let profiling = false;
  session.post('Profiler.enable');
  process.on('SIGWINCH', () => {
    if (!profiling) {
      profiling = true;
      session.post('Profiler.setSamplingInterval', { interval: 500 }, () => session.post('Profiler.start'));
      return;
    }
    profiling = false;
    session.post('Profiler.stop', (error, result) => {
      if (error) return console.error(`profile-hook: ${error.message}`);
      const file = join(dir, `${name}.cpuprofile`);
      writeFileSync(`${file}.tmp`, JSON.stringify(result.profile));
      renameSync(`${file}.tmp`, file);
    });
  });
}
