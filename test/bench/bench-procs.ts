/**
 * Processes of `npm run bench`: the sample's nodes as child processes (compiled JS), CPU and memory
 * counters from /proc, and small HTTP helpers with their own keep-alive agents.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SAMPLE_MAIN = join(REPO_ROOT, 'dist', 'sample', 'src', 'main.js');
export const PROFILE_HOOK = join(REPO_ROOT, 'test', 'bench', 'profile-hook.mjs');

let clockTicks = 100;
try {
  const { execFileSync } = await import('node:child_process');
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  // keep the usual 100
}

/** User + system CPU seconds of a process, from /proc/<pid>/stat (undefined once it is gone). */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces: the fields after it start past the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks; // utime, stime (fields 14, 15)
  } catch {
    return undefined;
  }
}

/** This process's CPU seconds. */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** CPU seconds of the given processes (those still there), by pid. */
export function cpuByPid(pids: Iterable<number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const cpu = procCpuSeconds(pid);
    if (cpu !== undefined) out.set(pid, cpu);
  }
  return out;
}

/**
 * CPU spent between two by-pid readings: a process present in both counts its difference, one that
 * appeared counts all of it, one that ended counts nothing (its last part is unknown).
 */
export function cpuDelta(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let total = 0;
  for (const [pid, cpu] of after) total += cpu - (before.get(pid) ?? 0);
  return total;
}

/** Busy CPU seconds of the whole machine, all cores (from the `cpu` line of /proc/stat). */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return (user! + nice! + system! + irq! + softirq! + steal!) / clockTicks;
  } catch {
    return NaN;
  }
}

/**
 * Busy cores (0 … nproc) over `ms` spent by processes other than this one and `ours` (pids: the
 * nodes and their PostgreSQL backends) — another workload on the machine skews every figure, so the
 * benchmark reports it.
 */
export async function backgroundCores(ours: readonly number[], ms = 1000): Promise<number> {
  const m0 = machineBusySeconds();
  const o0 = cpuByPid(ours);
  const s0 = selfCpuSeconds();
  await sleep(ms);
  const mine = cpuDelta(o0, cpuByPid(ours)) + selfCpuSeconds() - s0;
  return Math.max(0, machineBusySeconds() - m0 - mine) / (ms / 1000);
}

export interface Memory {
  /** Peak resident set (VmHWM), MB. */
  readonly peakRssMb: number;
  /** Current resident set (VmRSS), MB. */
  readonly rssMb: number;
}

/** Peak and current RSS of a process (pid `'self'` for this one). */
export function procMemory(pid: number | 'self'): Memory | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { peakRssMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
  } catch {
    return undefined;
  }
}

/** Where a process's resident memory is, from /proc/<pid>/smaps: totals by kind of mapping and the largest mappings. */
export interface SmapsSummary {
  /** Resident MB by kind: "[heap]" (brk: malloc), "anonymous" (mmap: V8's pages, malloc's big blocks and arenas, thread stacks), "file" (the node binary, libraries), others by name. */
  readonly byKind: Record<string, number>;
  /** The largest mappings by resident size. */
  readonly largest: { mapping: string; sizeMb: number; rssMb: number }[];
}

export function smapsSummary(pid: number | 'self', top = 8): SmapsSummary | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const byKind: Record<string, number> = {};
  const maps: { mapping: string; sizeMb: number; rssMb: number }[] = [];
  let current: { mapping: string; sizeMb: number; rssMb: number } | undefined;
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const size = (parseInt(header[2]!, 16) - parseInt(header[1]!, 16)) / 2 ** 20;
      current = { mapping: header[3] || '(anonymous)', sizeMb: size, rssMb: 0 };
      maps.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && current) current.rssMb = Number(rss[1]) / 1024;
  }
  for (const m of maps) {
    const kind = m.mapping === '(anonymous)' ? 'anonymous' : m.mapping.startsWith('/') ? 'file' : m.mapping;
    byKind[kind] = (byKind[kind] ?? 0) + m.rssMb;
  }
  return { byKind, largest: maps.sort((a, b) => b.rssMb - a.rssMb).slice(0, top) };
}

/** Resets a process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0: `5 > clear_refs`). */
export function resetPeakRss(pid: number | 'self'): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** A free TCP port on `host`. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${(last as Error).message})` : ''}`);
}

const statusAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** GET a JSON document (short timeout; used for /cluster). */
export function getJson<T>(url: string, timeoutMs = 2_000): Promise<T> {
  return new Promise((resolveJson, reject) => {
    const req = http.get(url, { agent: statusAgent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) return reject(new Error(`GET ${url}: ${res.statusCode} ${text.slice(0, 200)}`));
        try {
          resolveJson(JSON.parse(text) as T);
        } catch (error) {
          reject(error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/** The status code and body of a request with a JSON body (membership changes); no keep-alive. */
export function requestJson(
  method: string,
  url: string,
  body: unknown,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolveReq, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent: false,
        timeout: options.timeoutMs ?? 30_000,
        headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}), ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolveReq({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    req.end(payload);
  });
}

const readAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** The status code of a GET (the body is read and dropped); its own keep-alive agent. */
export function getStatusCode(url: string, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolveGet, reject) => {
    const req = http.get(url, { agent: readAgent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolveGet(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/**
 * What the sample answers on GET /cluster. The fields after commitIndex appear only if the sample
 * passes them on from RaftService.status() (it may not: then the benchmark reads them elsewhere).
 */
export interface ClusterView {
  nodeId: number;
  pid: number;
  role: string;
  term: number;
  leaderId: number;
  commitIndex: number;
  appliedIndex?: number;
  lastIndex?: number;
  snapshotIndex?: number;
  logStartIndex?: number;
}

/** A line of a node's output, with when it arrived (performance.now()). */
export interface OutputLine {
  readonly at: number;
  readonly text: string;
}

/** One node's place: id, loopback address, ports, and its public (and RPC) URL. */
export interface NodeSpec {
  readonly id: number;
  readonly host: string;
  /** The public API (PUT /kv/…, GET /cluster). */
  readonly port: number;
  readonly url: string;
  /** Where peers reach the Raft RPCs, when the sample serves them on their own port (RPC_PORT). */
  readonly rpcPort?: number;
  readonly rpcUrl?: string;
}

/** A node of the sample running as a child process (`node dist/sample/src/main.js`). */
export class SampleProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | string>;
  /** When it was spawned (performance.now()). */
  readonly spawnedAt = performance.now();
  /** Lines of its output that mention snapshots (restore, install), with their arrival time; the first 500. */
  readonly snapshotLines: OutputLine[] = [];
  /** The first 400 lines of its output (start-up), with their arrival time. */
  readonly earlyLines: OutputLine[] = [];
  /** Process warnings it printed (run with --trace-warnings): how many, and the first three with their stacks. */
  warningCount = 0;
  readonly firstWarnings: string[] = [];
  private warningOpen = false;
  private tail = '';
  private partial = '';

  constructor(
    readonly spec: NodeSpec,
    env: Record<string, string>,
    options: { profileDir?: string; heapDir?: string; extraNodeArgs?: string[] } = {},
  ) {
    if (!existsSync(SAMPLE_MAIN)) throw new Error(`${SAMPLE_MAIN} is missing: run npm run build:sample (or drop --no-build)`);
    // Stacks for process warnings (MaxListenersExceededWarning …), so that the report can say where they come from.
    const args = ['--trace-warnings', ...(options.extraNodeArgs ?? [])];
    const profileEnv: Record<string, string> = {};
    if (options.profileDir || options.heapDir) {
      args.push('--import', PROFILE_HOOK);
      if (options.profileDir) profileEnv.BENCH_PROFILE_DIR = options.profileDir;
      if (options.heapDir) profileEnv.BENCH_HEAP_DIR = options.heapDir;
      profileEnv.BENCH_PROFILE_NAME = `node${spec.id}`;
    }
    args.push(SAMPLE_MAIN);
    this.child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env, ...profileEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      const text = d.toString();
      this.tail = (this.tail + text).slice(-6000);
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop()!.slice(-4000);
      const at = performance.now();
      for (const line of lines) {
        if (this.earlyLines.length < 400) this.earlyLines.push({ at, text: line });
        if (/^\(node:\d+\) \w*Warning: /.test(line)) {
          this.warningCount++;
          this.warningOpen = this.firstWarnings.length < 3;
          if (this.warningOpen) this.firstWarnings.push(line);
        } else if (this.warningOpen && /^\s+at /.test(line)) {
          this.firstWarnings[this.firstWarnings.length - 1] += `\n${line}`;
        } else {
          this.warningOpen = false;
        }
        if (/snapshot/i.test(line) && this.snapshotLines.length < 500) this.snapshotLines.push({ at, text: line });
      }
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((r) => this.child.once('exit', (code, signal) => r(signal ?? code ?? -1)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first line of its output matching `pattern` (among the first 400 lines and those that mention snapshots). */
  findLine(pattern: RegExp): { line: OutputLine; match: RegExpExecArray } | undefined {
    for (const line of [...this.earlyLines, ...this.snapshotLines]) {
      const match = pattern.exec(line.text);
      if (match) return { line, match };
    }
    return undefined;
  }

  get output(): string {
    return this.tail;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM (graceful: the sample closes Nest, which stops the node), SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
