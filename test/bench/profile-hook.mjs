/**
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
