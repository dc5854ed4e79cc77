/**
 * Latency samples and the closed-loop load generator of `npm run bench`.
 *
 * A closed-loop client sends its next request only when the previous one is answered, so
 * `concurrency` clients keep exactly that many requests in flight. A run has a warm-up, then a
 * measured window: only requests that complete inside the window count, and the window's edges are
 * where the caller snapshots CPU counters.
 */

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** Percentiles of `samples` (milliseconds): nearest-rank on the sorted samples. */
export function summarize(samples: readonly number[]): LatencySummary {
  const n = samples.length;
  if (n === 0) return { count: 0, p50Ms: NaN, p90Ms: NaN, p99Ms: NaN, maxMs: NaN, meanMs: NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { count: n, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), maxMs: sorted[n - 1]!, meanMs: sum / n };
}

export interface LoadOptions {
  readonly label: string;
  readonly concurrency: number;
  /** Milliseconds of load before the window opens (not counted). */
  readonly warmupMs: number;
  /** Length of the measured window; or leave out and give `total`. */
  readonly measureMs?: number;
  /** Instead of a time window: issue exactly this many operations, all measured. */
  readonly total?: number;
  /**
   * One operation of client `worker` (its `seq`-th): resolves (with a string: a tag — latencies are
   * also kept per tag, e.g. "leader" / "follower") or rejects (an error, counted and not timed).
   */
  readonly op: (worker: number, seq: number) => Promise<unknown>;
  /** Called as the window opens and as it closes (CPU snapshots). */
  readonly onWindowStart?: () => void;
  readonly onWindowEnd?: () => void;
  /** A progress line every second (to stdout). */
  readonly progress?: boolean;
  /** Unit for the progress line ("w/s", "cmd/s"). */
  readonly unit?: string;
}

export interface LoadResult {
  readonly label: string;
  readonly concurrency: number;
  /** Measured window, seconds. */
  readonly seconds: number;
  readonly completed: number;
  readonly errors: number;
  readonly firstErrors: string[];
  readonly throughput: number;
  readonly latency: LatencySummary;
  readonly latencyByTag: Record<string, LatencySummary>;
}

const MAX_ERRORS_KEPT = 5;

/** Runs `concurrency` closed-loop clients: warm-up, then a measured window (or a fixed total). */
export async function runClosedLoop(options: LoadOptions): Promise<LoadResult> {
  const { concurrency, warmupMs } = options;
  const byCount = options.total !== undefined;
  const samples: number[] = [];
  const tagged = new Map<string, number[]>();
  const firstErrors: string[] = [];
  let errors = 0;
  let completed = 0;
  let issued = 0;
  let windowOpen = false;
  let stopping = false;
  let windowStart = 0;
  let windowEnd = 0;

  // per-second progress
  let tickSamples: number[] = [];
  let tickErrors = 0;

  const openWindow = () => {
    windowOpen = true;
    windowStart = performance.now();
    options.onWindowStart?.();
  };
  const closeWindow = () => {
    if (!windowOpen) return;
    windowOpen = false;
    stopping = true;
    windowEnd = performance.now();
    options.onWindowEnd?.();
  };

  let warmupTimer: NodeJS.Timeout | undefined;
  let endTimer: NodeJS.Timeout | undefined;
  if (byCount) {
    openWindow();
  } else {
    warmupTimer = setTimeout(() => {
      openWindow();
      endTimer = setTimeout(closeWindow, options.measureMs);
    }, warmupMs);
  }

  const progressTimer = options.progress
    ? setInterval(() => {
        const elapsed = (performance.now() - windowStart) / 1000;
        const s = summarize(tickSamples);
        const phase = windowOpen
          ? byCount
            ? `${completed}/${options.total}`
            : `${Math.round(elapsed)}/${((options.measureMs ?? 0) / 1000).toFixed(0)} s`
          : stopping
            ? 'draining'
            : 'warm-up';
        console.log(
          `  [${options.label}] ${phase.padEnd(13)} ${String(tickSamples.length).padStart(6)} ${options.unit ?? 'ops/s'}  p50 ${fmt(s.p50Ms)} ms  p99 ${fmt(s.p99Ms)} ms${tickErrors ? `  errors ${tickErrors}` : ''}`,
        );
        tickSamples = [];
        tickErrors = 0;
      }, 1000)
    : undefined;

  const worker = async (w: number) => {
    for (let seq = 0; ; seq++) {
      if (stopping) return;
      if (byCount) {
        if (issued >= options.total!) return;
        issued++;
      }
      const t0 = performance.now();
      const countedStart = windowOpen;
      try {
        const result = await options.op(w, seq);
        const tag = typeof result === 'string' ? result : undefined;
        const ms = performance.now() - t0;
        tickSamples.push(ms);
        if (windowOpen && countedStart) {
          completed++;
          samples.push(ms);
          if (tag) {
            let list = tagged.get(tag);
            if (!list) tagged.set(tag, (list = []));
            list.push(ms);
          }
        } else if (windowOpen) {
          // started during warm-up, completed in the window: counts toward throughput, not latency
          completed++;
        }
      } catch (error) {
        tickErrors++;
        if (windowOpen) {
          errors++;
          if (firstErrors.length < MAX_ERRORS_KEPT) firstErrors.push(String((error as Error)?.message ?? error));
        }
        // don't spin on a dead target
        await new Promise((r) => setTimeout(r, 10));
      }
      if (byCount && completed + errors >= options.total!) closeWindow();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  closeWindow();
  clearTimeout(warmupTimer);
  clearTimeout(endTimer);
  if (progressTimer) clearInterval(progressTimer);
  const seconds = (windowEnd - windowStart) / 1000;
  const latencyByTag: Record<string, LatencySummary> = {};
  for (const [tag, list] of tagged) latencyByTag[tag] = summarize(list);
  return {
    label: options.label,
    concurrency,
    seconds,
    completed,
    errors,
    firstErrors,
    throughput: completed / seconds,
    latency: summarize(samples),
    latencyByTag,
  };
}

export function fmt(value: number, digits?: number): string {
  if (!Number.isFinite(value)) return '–';
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toFixed(d);
}
