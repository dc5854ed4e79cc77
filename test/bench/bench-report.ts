/**
 * The results of `npm run bench`: their shape (written as JSON), a Markdown report, and a
 * latency-vs-throughput plot as a hand-written SVG.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FloorResult } from './bench-floor.js';
import { fmt, type LatencySummary } from './bench-stats.js';
import type { ProfileSummary } from './profile-summary.js';

export interface NodeCost {
  /** "node1", "node2", "node3", "postgres", "bench client". */
  readonly name: string;
  /** "leader", "follower", "in-process leader + load generator", … */
  readonly role: string;
  readonly cpuSeconds: number;
  readonly cpuSecondsPer1k: number;
  readonly peakRssMb?: number;
  readonly rssMb?: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly kind: 'http' | 'inproc' | 'write' | 'catchup';
  readonly description: string;
  readonly concurrency: number;
  readonly seconds: number;
  readonly completed: number;
  readonly errors: number;
  readonly firstErrors: string[];
  readonly throughput: number;
  readonly unit: string;
  readonly latency?: LatencySummary;
  readonly latencyByTag?: Record<string, LatencySummary>;
  readonly nodes: NodeCost[];
  readonly leaderId: number;
  /** Term at the window's start and end: a change means an election happened during the run. */
  readonly terms: [number, number];
  readonly catchUp?: CatchUpDetails;
  /** With --repeat: every attempt; the result is the one with the least load from other processes. */
  readonly attempts?: { throughput: number; p50Ms: number; p99Ms: number; backgroundCores: number }[];
  /** The in-process leader's pipeline in the window, from `RaftNode.events$`. */
  readonly pipeline?: PipelineStats;
}

export interface PipelineStats {
  /** Storage batches made durable on the leader, and their entries. */
  readonly persistBatches: number;
  readonly entriesPerPersist: number;
  readonly persistP50Ms: number;
  readonly persistP99Ms: number;
  /** AppendEntries sent to the followers (all of them), of which heartbeats (no entries). */
  readonly appendEntries: number;
  readonly heartbeats: number;
  /** Entries per non-empty AppendEntries. */
  readonly entriesPerAppend: number;
  /** AppendEntries per command (all followers together). */
  readonly appendsPerCommand: number;
  /** Round trip of an AppendEntries (sent → answered), all followers. */
  readonly appendRpcP50Ms: number;
  readonly appendRpcP99Ms: number;
}

export interface CatchUpDetails {
  readonly entries: number;
  /** The follower's commitIndex just before it was stopped (it held at least these entries). */
  readonly followerCommitBeforeStop: number;
  /** What it reported when it answered again after the restart (commitIndex is volatile). */
  readonly followerCommitAtRestart: number;
  readonly leaderCommit: number;
  /** From the restart (spawn) until the follower's API answered. */
  readonly startupSeconds: number;
  /** From the first answer until its commitIndex reached the leader's. */
  readonly catchUpSeconds: number;
  readonly entriesPerSecond: number;
  /** Including startup: entries / (spawn → caught up). */
  readonly entriesPerSecondFromSpawn: number;
}

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: Record<string, string | number>;
  readonly options: Record<string, unknown>;
  readonly floor?: FloorResult;
  readonly scenarios: ScenarioResult[];
  /** Peak RSS of each node over the whole run, with how many log entries it held at the end. */
  readonly peakRss: { node: string; phase: string; startRssMb?: number; peakRssMb: number; rssMb: number; logEntries: number }[];
  readonly targets: TargetCheck[];
  readonly profiles: { scenario: string; process: string; file: string; summary: ProfileSummary }[];
  readonly summary: string;
}

const ms = (v: number | undefined) => (v === undefined ? '–' : fmt(v));

export function markdownReport(r: BenchReport): string {
  const out: string[] = [];
  out.push('# nestjs-raft cluster benchmark (`npm run bench`)', '');
  out.push(`${r.startedAt}, ${fmt(r.durationSeconds / 60, 1)} min. Machine: ${Object.entries(r.machine).map(([k, v]) => `${k} ${v}`).join('; ')}.`, '');
  out.push(
    `Options: ${Object.entries(r.options)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
      .join(', ')}.`,
    '',
  );
  if (r.floor) {
    const f = r.floor;
    out.push('## The floor on this machine', '');
    out.push('| what | p50 | p99 | mean |', '|---|---:|---:|---:|');
    out.push(`| one durable PostgreSQL commit (INSERT of 100 B, autocommit, node-postgres) | ${fmt(f.pgCommit.p50Ms, 3)} ms | ${fmt(f.pgCommit.p99Ms, 3)} ms | ${fmt(f.pgCommit.meanMs, 3)} ms |`);
    out.push(`| one commit of a 256-row batch (BEGIN; INSERT 256 × 100 B; COMMIT) | ${fmt(f.pgBatch256.p50Ms, 3)} ms | ${fmt(f.pgBatch256.p99Ms, 3)} ms | ${fmt(f.pgBatch256.meanMs, 3)} ms |`);
    out.push(`| one keep-alive HTTP round trip between two Node processes (POST 100 B) | ${fmt(f.httpRoundTrip.p50Ms, 3)} ms | ${fmt(f.httpRoundTrip.p99Ms, 3)} ms | ${fmt(f.httpRoundTrip.meanMs, 3)} ms |`);
    out.push(`| **one unbatched replicated write** (commit + round trip + commit) | **${fmt(f.replicatedWriteFloorMs, 2)} ms** | | |`);
    if (f.storageSave1) out.push(`| for comparison: the library's TypeOrmStorage.save(), hard state + 1 entry (idle process) | ${fmt(f.storageSave1.p50Ms, 3)} ms | ${fmt(f.storageSave1.p99Ms, 3)} ms | ${fmt(f.storageSave1.meanMs, 3)} ms |`);
    if (f.storageSave256) out.push(`| for comparison: TypeOrmStorage.save(), hard state + 256 entries | ${fmt(f.storageSave256.p50Ms, 3)} ms | ${fmt(f.storageSave256.p99Ms, 3)} ms | ${fmt(f.storageSave256.meanMs, 3)} ms |`);
    if (f.nestRoundTrip) out.push(`| for comparison: a keep-alive GET /cluster to an idle node of the sample (Nest on express) | ${fmt(f.nestRoundTrip.p50Ms, 3)} ms | ${fmt(f.nestRoundTrip.p99Ms, 3)} ms | ${fmt(f.nestRoundTrip.meanMs, 3)} ms |`);
    out.push('');
  }
  out.push('## Results', '');
  out.push(
    'CPU is user + system seconds per 1,000 commands in the measured window (node processes from /proc/<pid>/stat, the in-process node from process.cpuUsage — it includes the load generator); `pg` is the PostgreSQL backends of the nodes (found by their application_name) with the WAL writer, checkpointer and background writer. Peak RSS is VmHWM at the end of the scenario. *Other load* is the CPU that the rest of the machine used meanwhile (from /proc/stat), in cores: anything above ~0.1 skews the figures on a 2-core machine.',
    '',
  );
  out.push('| scenario | in flight | throughput | p50 | p99 | max | errors | CPU s / 1k: n1 · n2 · n3 · pg · client | peak RSS MB: n1 · n2 · n3 | leader | other load |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|');
  for (const s of r.scenarios) {
    const cpu = ['node1', 'node2', 'node3', 'postgres', 'bench client'].map((n) => {
      const c = s.nodes.find((x) => x.name === n);
      return c ? fmt(c.cpuSecondsPer1k, 3) : '–';
    });
    const rss = ['node1', 'node2', 'node3'].map((n) => {
      const c = s.nodes.find((x) => x.name === n);
      return c?.peakRssMb !== undefined ? fmt(c.peakRssMb, 0) : '–';
    });
    const elections = s.terms[1] !== s.terms[0] ? ` (term ${s.terms[0]}→${s.terms[1]})` : '';
    const other = s.nodes.find((x) => x.name === 'other processes');
    const background = other && s.seconds > 0 ? `${fmt(other.cpuSeconds / s.seconds, 2)} cores` : '–';
    out.push(
      `| ${s.name}: ${s.description}${s.attempts ? ` (quietest of ${s.attempts.length} runs: ${s.attempts.map((a) => fmt(a.throughput, 0)).join(' / ')} ${s.unit})` : ''} | ${s.concurrency || '–'} | ${fmt(s.throughput, 0)} ${s.unit} | ${ms(s.latency?.p50Ms)} ms | ${ms(s.latency?.p99Ms)} ms | ${ms(s.latency?.maxMs)} ms | ${s.errors} | ${cpu.join(' · ')} | ${rss.join(' · ')} | n${s.leaderId}${elections} | ${background} |`,
    );
  }
  out.push('');
  const http = r.scenarios.filter((s) => s.kind === 'http' && s.latencyByTag);
  if (http.length) {
    out.push('HTTP latency by the node a request went to (a follower forwards it to the leader: one more round trip):', '');
    out.push('| scenario | via leader p50 / p99 | via a follower p50 / p99 |', '|---|---:|---:|');
    for (const s of http) {
      const l = s.latencyByTag!.leader;
      const f = s.latencyByTag!.follower;
      out.push(`| ${s.name} | ${ms(l?.p50Ms)} / ${ms(l?.p99Ms)} ms | ${ms(f?.p50Ms)} / ${ms(f?.p99Ms)} ms |`);
    }
    out.push('');
  }
  const piped = r.scenarios.filter((s) => s.pipeline);
  if (piped.length) {
    out.push("The in-process leader's pipeline during each window (from `RaftNode.events$`): storage batches (group commit) and AppendEntries to the two followers.", '');
    out.push('| scenario | throughput | persist batches/s | entries / batch | persist p50 / p99 | AppendEntries/s | of which heartbeats/s | entries / AppendEntries | AppendEntries per command | AppendEntries RTT p50 / p99 |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const s of piped) {
      const p = s.pipeline!;
      out.push(
        `| ${s.name} | ${fmt(s.throughput, 0)} ${s.unit} | ${fmt(p.persistBatches / s.seconds, 0)} | ${fmt(p.entriesPerPersist, 1)} | ${ms(p.persistP50Ms)} / ${ms(p.persistP99Ms)} ms | ${fmt(p.appendEntries / s.seconds, 0)} | ${fmt(p.heartbeats / s.seconds, 0)} | ${fmt(p.entriesPerAppend, 1)} | ${fmt(p.appendsPerCommand, 2)} | ${ms(p.appendRpcP50Ms)} / ${ms(p.appendRpcP99Ms)} ms |`,
      );
    }
    out.push('');
  }
  const catchUp = r.scenarios.find((s) => s.catchUp);
  if (catchUp?.catchUp) {
    const c = catchUp.catchUp;
    out.push('## Catch-up', '');
    out.push(
      `A follower holding ${c.followerCommitBeforeStop.toLocaleString('en')} entries was stopped (SIGTERM), ${c.entries.toLocaleString('en')} entries were written through the in-process leader, and the follower was restarted. Its API answered ${fmt(c.startupSeconds, 2)} s after the restart, and its commitIndex (GET /cluster, polled every 10 ms) reached the leader's ${c.leaderCommit.toLocaleString('en')} ${fmt(c.catchUpSeconds, 2)} s later: **${fmt(c.entriesPerSecond, 0)} entries/s** (${fmt(c.entriesPerSecondFromSpawn, 0)} entries/s counting the restart).`,
      '',
    );
  }
  out.push('## Peak RSS per node', '');
  out.push('| node | phase | RSS once started | peak RSS | RSS at the end | log entries at the end |', '|---|---|---:|---:|---:|---:|');
  for (const p of r.peakRss) out.push(`| ${p.node} | ${p.phase} | ${p.startRssMb !== undefined ? `${fmt(p.startRssMb, 0)} MB` : '–'} | ${fmt(p.peakRssMb, 0)} MB | ${fmt(p.rssMb, 0)} MB | ${p.logEntries.toLocaleString('en')} |`);
  out.push('');
  out.push('## Targets (issue 6)', '');
  out.push('| target | measured | met |', '|---|---|---|');
  for (const t of r.targets) out.push(`| ${t.target} | ${t.measured} | ${t.met === undefined ? 'not measured' : t.met ? 'yes' : '**no**'} |`);
  out.push('');
  if (r.profiles.length) {
    out.push('## CPU profiles', '');
    for (const p of r.profiles) {
      out.push(`### ${p.scenario}, ${p.process} (\`${p.file}\`)`, '');
      out.push(`busy ${fmt(p.summary.busyMs / 1000, 2)} s of ${fmt(p.summary.totalMs / 1000, 2)} s sampled`, '');
      out.push('| group | share of busy |', '|---|---:|');
      for (const g of p.summary.groups.filter((g) => g.pct >= 1)) out.push(`| ${g.group} | ${fmt(g.pct, 1)} % |`);
      out.push('', '| function (self time) | where | group | share |', '|---|---|---|---:|');
      for (const f of p.summary.functions.slice(0, 15)) out.push(`| \`${f.name}\` | ${f.location} | ${f.group}${f.calledFrom && f.calledFrom !== f.group ? ` (from ${f.calledFrom})` : ''} | ${fmt(f.pct, 1)} % |`);
      out.push('');
    }
  }
  out.push('![latency vs throughput](latency-vs-throughput.svg)', '');
  out.push(r.summary, '');
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------ the plot

export interface PlotPoint {
  readonly label: string;
  /** Points are joined in this order (client count), so a curve that bends back shows it. */
  readonly concurrency: number;
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round tick step giving about `count` ticks up to `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/**
 * p50 and p99 latency (log scale) against throughput (linear) for the HTTP client counts, with
 * etcd's figures from issue 6, the 64-client target region and the measured floor for reference.
 */
export function latencyPlotSvg(points: readonly PlotPoint[], options: { title: string; subtitle: string; floorMs?: number }): string {
  const W = 800;
  const H = 500;
  const m = { left: 80, right: 180, top: 64, bottom: 64 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const etcd = [
    { label: 'etcd 1 client', throughput: 560, p50Ms: 1.7 },
    { label: 'etcd 64 clients', throughput: 2000, p50Ms: 28, p99Ms: 83 },
  ];
  const step = niceStep(Math.max(4500, ...points.map((p) => p.throughput)) * 1.08, 8);
  const maxX = step * Math.ceil((Math.max(4500, ...points.map((p) => p.throughput)) * 1.08) / step);
  const allY = [...points.flatMap((p) => [p.p50Ms, p.p99Ms]), 83, 1.7, options.floorMs ?? 1].filter((v) => Number.isFinite(v) && v > 0);
  const minY = 10 ** Math.floor(Math.log10(Math.min(...allY) * 0.8));
  const maxY = 10 ** Math.ceil(Math.log10(Math.max(...allY) * 1.25));
  const x = (v: number) => m.left + (v / maxX) * pw;
  const y = (v: number) => m.top + ph - ((Math.log10(v) - Math.log10(minY)) / (Math.log10(maxY) - Math.log10(minY))) * ph;
  const s: string[] = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  s.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  s.push(`<text x="${m.left}" y="26" font-size="16" font-weight="bold">${esc(options.title)}</text>`);
  s.push(`<text x="${m.left}" y="46" fill="#555555">${esc(options.subtitle)}</text>`);
  // target region: ≥ 4,000 writes/s with p99 ≤ 40 ms
  if (4000 < maxX && 40 > minY) {
    const top = Math.max(m.top, y(Math.min(40, maxY)));
    s.push(`<rect x="${x(4000).toFixed(1)}" y="${top.toFixed(1)}" width="${(x(maxX) - x(4000)).toFixed(1)}" height="${(m.top + ph - top).toFixed(1)}" fill="#2ca02c" fill-opacity="0.08" stroke="#2ca02c" stroke-dasharray="4 3"/>`);
    s.push(`<text x="${(x(4000) + 6).toFixed(1)}" y="${(top + 16).toFixed(1)}" fill="#2ca02c">target, 64 clients:</text>`);
    s.push(`<text x="${(x(4000) + 6).toFixed(1)}" y="${(top + 31).toFixed(1)}" fill="#2ca02c">≥ 4,000 w/s, p99 ≤ 40 ms</text>`);
  }
  // grid and axes
  for (let t = 0; t <= maxX + 1e-9; t += step) {
    s.push(`<line x1="${x(t).toFixed(1)}" y1="${m.top}" x2="${x(t).toFixed(1)}" y2="${m.top + ph}" stroke="#e5e5e5"/>`);
    s.push(`<text x="${x(t).toFixed(1)}" y="${m.top + ph + 18}" text-anchor="middle">${Math.round(t).toLocaleString('en')}</text>`);
  }
  for (let decade = minY; decade <= maxY * 1.0001; decade *= 10) {
    for (const k of [1, 2, 5]) {
      const v = decade * k;
      if (v > maxY * 1.0001) break;
      s.push(`<line x1="${m.left}" y1="${y(v).toFixed(1)}" x2="${m.left + pw}" y2="${y(v).toFixed(1)}" stroke="${k === 1 ? '#d0d0d0' : '#eeeeee'}"/>`);
      s.push(`<text x="${m.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1 ? v : v.toPrecision(1)}</text>`);
    }
  }
  s.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333333"/>`);
  s.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333333"/>`);
  s.push(`<text x="${m.left + pw / 2}" y="${H - 20}" text-anchor="middle" font-size="13">throughput (writes/s, PUT /kv/:key over HTTP, 100-byte values)</text>`);
  s.push(`<text x="22" y="${m.top + ph / 2}" text-anchor="middle" font-size="13" transform="rotate(-90 22 ${m.top + ph / 2})">latency (ms, log scale)</text>`);
  if (options.floorMs && options.floorMs > minY) {
    s.push(`<line x1="${m.left}" y1="${y(options.floorMs).toFixed(1)}" x2="${m.left + pw}" y2="${y(options.floorMs).toFixed(1)}" stroke="#7f7f7f" stroke-dasharray="2 3"/>`);
    s.push(`<text x="${m.left + pw - 4}" y="${(y(options.floorMs) + 14).toFixed(1)}" text-anchor="end" fill="#7f7f7f">floor: one replicated write ≈ ${fmt(options.floorMs, 2)} ms</text>`);
  }
  // etcd reference
  for (const e of etcd) {
    s.push(`<circle cx="${x(e.throughput).toFixed(1)}" cy="${y(e.p50Ms).toFixed(1)}" r="5" fill="none" stroke="#1f77b4" stroke-dasharray="2 1.5"/>`);
    if (e.p99Ms) s.push(`<rect x="${(x(e.throughput) - 4.5).toFixed(1)}" y="${(y(e.p99Ms) - 4.5).toFixed(1)}" width="9" height="9" fill="none" stroke="#d62728" stroke-dasharray="2 1.5"/>`);
    s.push(`<text x="${(x(e.throughput) + 8).toFixed(1)}" y="${(y(e.p99Ms ?? e.p50Ms) - 8).toFixed(1)}" fill="#777777">${esc(e.label)}</text>`);
  }
  // measured series
  const sorted = [...points].sort((a, b) => a.concurrency - b.concurrency);
  for (const [key, color] of [
    ['p50Ms', '#1f77b4'],
    ['p99Ms', '#d62728'],
  ] as const) {
    const pts = sorted.filter((p) => Number.isFinite(p[key]) && p[key] > 0);
    if (pts.length > 1) s.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${x(p.throughput).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) {
      if (key === 'p50Ms') s.push(`<circle cx="${x(p.throughput).toFixed(1)}" cy="${y(p[key]).toFixed(1)}" r="5" fill="${color}"/>`);
      else s.push(`<rect x="${(x(p.throughput) - 4.5).toFixed(1)}" y="${(y(p[key]) - 4.5).toFixed(1)}" width="9" height="9" fill="${color}"/>`);
    }
  }
  for (const p of sorted) {
    if (!Number.isFinite(p.p99Ms)) continue;
    s.push(`<text x="${(x(p.throughput) + 8).toFixed(1)}" y="${(y(p.p99Ms) - 8).toFixed(1)}" font-weight="bold">${esc(p.label)}</text>`);
  }
  // legend
  const lx = m.left + pw + 20;
  let ly = m.top + 10;
  const legend = (shape: string, text: string) => {
    s.push(shape.replace(/LX/g, String(lx)).replace(/LY/g, String(ly)));
    s.push(`<text x="${lx + 16}" y="${ly + 4}">${esc(text)}</text>`);
    ly += 22;
  };
  legend(`<circle cx="${lx + 5}" cy="${ly}" r="5" fill="#1f77b4"/>`, 'p50 (measured)');
  legend(`<rect x="${lx + 0.5}" y="${ly - 4.5}" width="9" height="9" fill="#d62728"/>`, 'p99 (measured)');
  legend(`<circle cx="${lx + 5}" cy="${ly}" r="5" fill="none" stroke="#1f77b4" stroke-dasharray="2 1.5"/>`, 'etcd 3.4 p50 (issue 6)');
  legend(`<rect x="${lx + 0.5}" y="${ly - 4.5}" width="9" height="9" fill="none" stroke="#d62728" stroke-dasharray="2 1.5"/>`, 'etcd 3.4 p99 (issue 6)');
  s.push(`<text x="${lx}" y="${ly + 8}" fill="#555555">labels: concurrent</text>`);
  s.push(`<text x="${lx}" y="${ly + 24}" fill="#555555">closed-loop clients</text>`);
  s.push('</svg>');
  return s.join('\n') + '\n';
}

/** Writes latest.json, latest.md and (with HTTP scenarios) latency-vs-throughput.svg into `dir`; returns the file names. */
export function writeReportFiles(report: BenchReport, dir: string, json = true): string[] {
  const files: string[] = [];
  if (json) {
    writeFileSync(join(dir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
    files.push('latest.json');
  }
  writeFileSync(join(dir, 'latest.md'), markdownReport(report));
  files.push('latest.md');
  const points = report.scenarios
    .filter((s) => s.kind === 'http' && s.latency)
    .map((s) => ({ label: `${s.concurrency}`, concurrency: s.concurrency, throughput: s.throughput, p50Ms: s.latency!.p50Ms, p99Ms: s.latency!.p99Ms }));
  if (points.length) {
    writeFileSync(
      join(dir, 'latency-vs-throughput.svg'),
      latencyPlotSvg(points, {
        title: 'nestjs-raft: PUT /kv/:key latency vs throughput (3 nodes, PostgreSQL)',
        subtitle: `${report.machine.cpu}; ${report.startedAt.slice(0, 10)}; ${String(report.options.seconds)} s per point; commit ${report.machine.commit}`,
        ...(report.floor ? { floorMs: report.floor.replicatedWriteFloorMs } : {}),
      }),
    );
    files.push('latency-vs-throughput.svg');
  }
  return files;
}
