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
  /** Snapshots the leader took in the window (log compaction), how long each took (state machine + save), and the last one's size. */
  readonly snapshotsTaken?: number;
  readonly snapshotP50Ms?: number;
  readonly snapshotMaxMs?: number;
  readonly snapshotBytes?: number;
  /** The in-process leader's event loop delay in the window (monitorEventLoopDelay, 10 ms resolution): p99 and max. */
  readonly eventLoopDelayP99Ms?: number;
  readonly eventLoopDelayMaxMs?: number;
}

/** A node's log in PostgreSQL (raft_log_entries, raft_base_configuration, raft_snapshots). */
export interface StoredLogInfo {
  /** Rows in raft_log_entries for this node. */
  readonly rows: number;
  readonly firstIndex?: number;
  readonly lastIndex?: number;
  /** Every entry up to here was compacted away (0: never compacted). */
  readonly logStartIndex: number;
  readonly snapshotIndex?: number;
  readonly snapshotBytes?: number;
  readonly snapshotChunks?: number;
}

/** A snapshot the leader sent to a node (from RaftNode.events$) and the node installed (its log line). */
export interface InstalledSnapshot {
  readonly index: number;
  readonly bytes: number;
  /** From the start of the measurement (spawn) until the node logged "installed the leader's snapshot". */
  readonly installedAfterSeconds?: number;
  /** The leader's send, reading it from storage to the follower's answer (the last send), and how many sends there were. */
  readonly sendMs?: number;
  readonly sends?: number;
}

/** A node (re)joining the cluster: a follower restarted with its snapshot and log tail, or a new node added to it. */
export interface RejoinResult {
  readonly name: string;
  readonly description: string;
  readonly node: string;
  /** What it held before: its own snapshot and stored log rows (a restart); undefined for a new node. */
  readonly held?: StoredLogInfo;
  /** The leader's commit index it had to apply up to. */
  readonly target: number;
  /** Entries it lacked: target − what it had applied or snapshotted before (its snapshot index, for a restart). */
  readonly entries: number;
  /** From spawning the process until its API answered (GET /cluster). */
  readonly apiSeconds: number;
  /** From spawning until its commitIndex reached the target. */
  readonly commitSeconds: number;
  /** From spawning until it had applied up to the target (a linearizable read answered, or status appliedIndex). */
  readonly appliedSeconds: number;
  readonly appliedBy: 'appliedIndex' | 'linearizable read';
  /** A new node: how long POST /cluster/members took (all attempts), and from sending it until the node had applied the target. */
  readonly addSeconds?: number;
  /** Every POST /cluster/members when more than one was needed (or none succeeded). */
  readonly addAttempts?: { status: number; seconds: number; message?: string }[];
  /** Why it never joined (every POST failed). */
  readonly failed?: string;
  readonly fromAddSeconds?: number;
  /** How it got the state: the leader's snapshot, or entries only (after its own snapshot on restart). */
  readonly via: 'InstallSnapshot' | 'entries';
  /** It restored its own stored snapshot as it started (log line "restored the state machine from the snapshot at N"). */
  readonly restoredOwnSnapshotAt?: number;
  readonly installed?: InstalledSnapshot;
  readonly peakRssMb?: number;
  readonly rssMb?: number;
  /** Start-up timeline from its output, seconds after spawning (see StartupTimeline). */
  readonly startup?: StartupTimeline;
  /** Its stored log once caught up. */
  readonly stored?: StoredLogInfo;
}

/** When a node's output showed each start-up step, seconds after spawning the process. */
export interface StartupTimeline {
  /** Its first line ("Starting Nest application"): Node.js, the modules loaded. */
  readonly firstOutput?: number;
  /** "restored the state machine from the snapshot at N": its storage loaded and its own snapshot restored. */
  readonly restoredOwnSnapshot?: number;
  /** "Raft RPCs listening on …": the node has started (the RPC listener comes up after the Raft node). */
  readonly rpcListening?: number;
  /** "node N listening on …": the public API is up. */
  readonly apiListening?: number;
}

/** One row of the peak RSS table: a node in one phase, and its stored log at the end of it. */
export interface PeakRssRow {
  readonly node: string;
  readonly phase: string;
  readonly startRssMb?: number;
  readonly peakRssMb: number;
  readonly rssMb: number;
  /** Its commit index at the end (the size of the log it has seen, compacted or not). */
  readonly logEntries: number;
  readonly stored?: StoredLogInfo;
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
  /** From the first answer until it had applied up to the leader's commit index (a linearizable read answered), and the rate that gives. */
  readonly appliedSeconds?: number;
  readonly entriesPerSecondApplied?: number;
  /** How it caught up: the leader's snapshot (InstallSnapshot) then the entries after it, or entries only. */
  readonly via?: 'InstallSnapshot' | 'entries';
  readonly installed?: InstalledSnapshot;
  /** It restored its own stored snapshot as it started. */
  readonly restoredOwnSnapshotAt?: number;
  /** The leader's log start when the follower came back: below it, entries can only come by snapshot. */
  readonly leaderLogStartIndex?: number;
  readonly startup?: StartupTimeline;
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
  /** Peak RSS of each node over the whole run, with its commit index and stored log at the end. */
  readonly peakRss: PeakRssRow[];
  /** Log compaction as configured: a snapshot every `snapshotEvery` entries, `trailingEntries` kept behind it. */
  readonly compaction?: { snapshotEvery: number; trailingEntries: number; storedRowsBound: number };
  /** A follower restarted with its snapshot and log tail, and a new node added through POST /cluster/members, after the big write. */
  readonly rejoins?: RejoinResult[];
  /** Follower processes the benchmark restarted because one had taken the leadership from the in-process node (a loaded machine). */
  readonly leadershipRestarts?: string[];
  /** Each time the in-process node stopped leading: when (s into the run), in which scenario, the new term and leader, and how long before each follower had last answered. */
  readonly leadershipLosses?: {
    at: number;
    during: string;
    term: number;
    leaderTerm?: number;
    commitIndex?: number;
    newLeader: number;
    followers: { node: number; lastAnswerMsAgo: number }[];
    /** The leader's own snapshot nearest in time (its save ended this many ms after the loss; negative: before). */
    nearestLeaderSnapshot?: { index: number; durationMs: number; endedMsAfterLoss: number };
  }[];
  /** Process warnings (MaxListenersExceededWarning …) the node processes printed: how many, the first ones with their stacks. */
  readonly nodeWarnings?: { node: string; pid: number; count: number; first: string[] }[];
  /** --heap-snapshot: each node's memory after the big write — process.memoryUsage() before and after a full GC, and what its live heap holds. */
  readonly heapReadings?: {
    node: string;
    when: string;
    file: string;
    rssMb?: number;
    before?: { rssMb: number; heapTotalMb: number; heapUsedMb: number; externalMb: number; arrayBuffersMb: number };
    afterGc?: { rssMb: number; heapTotalMb: number; heapUsedMb: number; externalMb: number; arrayBuffersMb: number };
    liveHeapMb: number;
    top: { kind: string; count: number; selfMb: number; pct: number }[];
    /** Resident memory by kind of mapping (/proc/<pid>/smaps) before the snapshot. */
    smaps?: { byKind: Record<string, number>; largest: { mapping: string; sizeMb: number; rssMb: number }[] };
  }[];
  readonly targets: TargetCheck[];
  readonly profiles: { scenario: string; process: string; file: string; summary: ProfileSummary }[];
  readonly summary: string;
}

const ms = (v: number | undefined) => (v === undefined ? '–' : fmt(v));
/** Bytes as MB (or kB below 1 MB). */
export const mb = (bytes: number | undefined) => (bytes === undefined ? '–' : bytes >= 1e6 ? `${fmt(bytes / 1e6, 2)} MB` : `${fmt(bytes / 1e3, 1)} kB`);
const storedCell = (st: StoredLogInfo | undefined) =>
  st ? `${st.rows.toLocaleString('en')} · ${st.logStartIndex.toLocaleString('en')} · ${st.snapshotIndex !== undefined ? `${st.snapshotIndex.toLocaleString('en')} (${mb(st.snapshotBytes)})` : '–'}` : '–';

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
    if (f.nestRoundTrip) out.push(`| for comparison: a keep-alive GET /cluster to an idle node of the sample (Nest on ${String(r.options.httpPlatform ?? 'fastify')}) | ${fmt(f.nestRoundTrip.p50Ms, 3)} ms | ${fmt(f.nestRoundTrip.p99Ms, 3)} ms | ${fmt(f.nestRoundTrip.meanMs, 3)} ms |`);
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
    const snaps = piped.some((s) => s.pipeline!.snapshotsTaken !== undefined);
    const loop = piped.some((s) => s.pipeline!.eventLoopDelayMaxMs !== undefined);
    out.push(
      `| scenario | throughput | persist batches/s | entries / batch | persist p50 / p99 | AppendEntries/s | of which heartbeats/s | entries / AppendEntries | AppendEntries per command | AppendEntries RTT p50 / p99 |${snaps ? ' snapshots taken: count, p50 / max ms, size |' : ''}${loop ? ' event loop delay p99 / max |' : ''}`,
    );
    out.push(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|${snaps ? '---:|' : ''}${loop ? '---:|' : ''}`);
    for (const s of piped) {
      const p = s.pipeline!;
      const snap = !snaps ? '' : p.snapshotsTaken ? ` ${p.snapshotsTaken}, ${ms(p.snapshotP50Ms)} / ${ms(p.snapshotMaxMs)} ms, ${mb(p.snapshotBytes)} |` : ` ${p.snapshotsTaken ?? '–'} |`;
      const delay = !loop ? '' : ` ${ms(p.eventLoopDelayP99Ms)} / ${ms(p.eventLoopDelayMaxMs)} ms |`;
      out.push(
        `| ${s.name} | ${fmt(s.throughput, 0)} ${s.unit} | ${fmt(p.persistBatches / s.seconds, 0)} | ${fmt(p.entriesPerPersist, 1)} | ${ms(p.persistP50Ms)} / ${ms(p.persistP99Ms)} ms | ${fmt(p.appendEntries / s.seconds, 0)} | ${fmt(p.heartbeats / s.seconds, 0)} | ${fmt(p.entriesPerAppend, 1)} | ${fmt(p.appendsPerCommand, 2)} | ${ms(p.appendRpcP50Ms)} / ${ms(p.appendRpcP99Ms)} ms |${snap}${delay}`,
      );
    }
    out.push('');
    if (loop) out.push("*Event loop delay*: this process's (the in-process leader shares it with the load generator), from `monitorEventLoopDelay`; a stall near the followers' election timeout lets one of them start an election.", '');
    if (snaps) out.push('*Snapshots taken*: the leader\'s own snapshots in the window (`RaftNode.events$`, kind `taken`): state machine `snapshot()` plus saving it and compacting the log in one storage batch.', '');
  }
  const catchUp = r.scenarios.find((s) => s.catchUp);
  if (catchUp?.catchUp) {
    const c = catchUp.catchUp;
    out.push('## Catch-up', '');
    out.push(
      `A follower holding ${c.followerCommitBeforeStop.toLocaleString('en')} entries was stopped (SIGTERM), ${c.entries.toLocaleString('en')} entries were written through the in-process leader, and the follower was restarted. Its API answered ${fmt(c.startupSeconds, 2)} s after the restart, and its commitIndex (GET /cluster, polled every 10 ms) reached the leader's ${c.leaderCommit.toLocaleString('en')} ${fmt(c.catchUpSeconds, 2)} s later: ${c.appliedSeconds === undefined ? `**${fmt(c.entriesPerSecond, 0)} entries/s**` : `${fmt(c.entriesPerSecond, 0)} entries/s by commitIndex`} (${fmt(c.entriesPerSecondFromSpawn, 0)} entries/s counting the restart${c.appliedSeconds !== undefined ? ', until applied' : ''}).`,
      '',
    );
    if (c.via) {
      const how =
        c.via === 'InstallSnapshot'
          ? `It came back **through InstallSnapshot**: the leader's log started at ${c.leaderLogStartIndex?.toLocaleString('en') ?? '?'} (compacted past the follower's ${c.followerCommitBeforeStop.toLocaleString('en')}), so it sent its snapshot at ${c.installed!.index.toLocaleString('en')} (${mb(c.installed!.bytes)}${c.installed!.sendMs !== undefined ? `, sent in ${fmt(c.installed!.sendMs)} ms` : ''}), which the follower installed ${fmt(c.installed!.installedAfterSeconds ?? NaN, 2)} s after its restart, and then the entries after it.`
          : `It came back **through entries only** (no InstallSnapshot: the leader's log still held everything after the follower's${c.leaderLogStartIndex !== undefined ? `; it started at ${c.leaderLogStartIndex.toLocaleString('en')}` : ''}).`;
      const own = c.restoredOwnSnapshotAt !== undefined ? ` On start it restored its own snapshot at ${c.restoredOwnSnapshotAt.toLocaleString('en')}.` : '';
      const applied = c.appliedSeconds !== undefined ? ` It had applied everything (a linearizable read on it answered) ${fmt(c.appliedSeconds, 2)} s after its API answered: **${fmt(c.entriesPerSecondApplied ?? NaN, 0)} entries/s** — the figure the target is checked against.` : '';
      const t = c.startup;
      const timeline = t ? ` Its start-up (from its output, after spawning): first line ${fmt(t.firstOutput ?? NaN, 2)} s, own snapshot restored ${fmt(t.restoredOwnSnapshot ?? NaN, 2)} s, RPC listener ${fmt(t.rpcListening ?? NaN, 2)} s, API listening ${fmt(t.apiListening ?? NaN, 2)} s.` : '';
      out.push(`${how}${own}${applied}${timeline}`, '');
    }
  }
  if (r.rejoins?.length) {
    out.push(`## Restart and a new node after the big write`, '');
    out.push(
      'Both after the log reached its final size, with the cluster idle. *Restart*: a follower process (node 2, or node 3 if node 2 leads by then), which holds its own snapshot and the log tail after it, is stopped with SIGTERM and started again. *New node*: a 4th process with an empty database (no rows for its node id) and no PEERS starts, then `POST /cluster/members {id, url}` on the leader adds it (joint consensus, answered once C_new is committed). Times are from spawning the process; *applied* is when a linearizable read on it (`GET /kv/k0`, ReadIndex: answers once the node has applied all that the leader had committed) answered after its commitIndex had reached the target, or its status appliedIndex where the sample exposes it. *Via* tells whether it got the leader\'s snapshot (InstallSnapshot: its log line "installed the leader\'s snapshot" and the leader\'s `snapshot sent` event) or entries only.',
      '',
    );
    out.push('| what | node | held before | target (leader commit) | entries to catch up | API answers | commit reached | applied | via | stored log after: rows · log start · snapshot | peak RSS |');
    out.push('|---|---|---|---:|---:|---:|---:|---:|---|---|---:|');
    for (const j of r.rejoins) {
      const held = j.held ? `snapshot ${j.held.snapshotIndex?.toLocaleString('en') ?? '–'} (${mb(j.held.snapshotBytes)}), ${j.held.rows.toLocaleString('en')} log rows` : 'nothing (empty database)';
      const via =
        j.via === 'InstallSnapshot'
          ? `InstallSnapshot at ${j.installed!.index.toLocaleString('en')} (${mb(j.installed!.bytes)}${j.installed!.sendMs !== undefined ? `, sent in ${fmt(j.installed!.sendMs)} ms` : ''}${j.installed!.installedAfterSeconds !== undefined ? `, installed at ${fmt(j.installed!.installedAfterSeconds, 2)} s` : ''}) + entries`
          : `entries${j.restoredOwnSnapshotAt !== undefined ? ` after restoring its own snapshot at ${j.restoredOwnSnapshotAt.toLocaleString('en')}` : ''}`;
      const tries = j.addAttempts && j.addAttempts.length > 1 ? `, ${j.addAttempts.length} attempts: ${j.addAttempts.map((a) => `${a.status || 'error'} in ${fmt(a.seconds, 1)} s`).join(', ')}` : '';
      const added = j.failed
        ? ` — **FAILED**: ${j.failed}`
        : j.addSeconds !== undefined
          ? ` (POST /cluster/members took ${fmt(j.addSeconds, 2)} s${tries}; POST → applied ${fmt(j.fromAddSeconds ?? NaN, 2)} s)`
          : '';
      out.push(
        `| ${j.name}: ${j.description}${added} | ${j.node} | ${held} | ${j.target.toLocaleString('en')} | ${j.entries.toLocaleString('en')} | ${fmt(j.apiSeconds, 2)} s | ${fmt(j.commitSeconds, 2)} s | **${fmt(j.appliedSeconds, 2)} s** | ${via} | ${storedCell(j.stored)} | ${j.peakRssMb !== undefined ? `${fmt(j.peakRssMb, 0)} MB` : '–'} |`,
      );
    }
    out.push('');
    const timed = r.rejoins.filter((j) => j.startup);
    if (timed.length) {
      out.push("Start-up timeline of these processes, from their output (seconds after spawning): first line (Node.js and the modules loaded) → own snapshot restored → Raft RPC listener up (the Raft node has started: storage loaded) → public API listening.", '');
      for (const j of timed) {
        const t = j.startup!;
        out.push(`- ${j.name} (${j.node}): first line ${fmt(t.firstOutput ?? NaN, 2)} s → own snapshot restored ${fmt(t.restoredOwnSnapshot ?? NaN, 2)} s → RPC listener ${fmt(t.rpcListening ?? NaN, 2)} s → API listening ${fmt(t.apiListening ?? NaN, 2)} s`);
      }
      out.push('');
    }
  }
  if (r.leadershipLosses?.length) {
    out.push(
      `**Leadership lost:** the in-process node stopped leading ${r.leadershipLosses.length} time(s): ${r.leadershipLosses
        .map(
          (l) =>
            `during ${l.during} at ${fmt(l.at, 0)} s, commit ${l.commitIndex?.toLocaleString('en') ?? '?'} (it led in term ${l.leaderTerm ?? '?'}, then term ${l.term}${l.leaderTerm === l.term ? ', i.e. it stepped down itself' : ''}; followers had last answered ${l.followers.map((f) => `n${f.node} ${f.lastAnswerMsAgo} ms`).join(', ')} before${l.nearestLeaderSnapshot ? `; its own nearest snapshot, at ${l.nearestLeaderSnapshot.index.toLocaleString('en')}, took ${l.nearestLeaderSnapshot.durationMs} ms and ended ${l.nearestLeaderSnapshot.endedMsAfterLoss} ms after` : ''})`,
        )
        .join('; ')}. Stepping down in the same term with no answer from a majority for the leader's election timeout is CheckQuorum; a higher term means a follower's election reached it.`,
      '',
    );
  }
  if (r.leadershipRestarts?.length) {
    out.push(`**Note:** a follower took the leadership from the in-process node during the run; the benchmark restarted the leading process so that node 1 led again: ${r.leadershipRestarts.join('; ')}. Those processes' peak RSS covers only the time since.`, '');
  }
  out.push('## Peak RSS per node', '');
  if (r.compaction) {
    out.push(
      `Log compaction: a snapshot every ${r.compaction.snapshotEvery.toLocaleString('en')} applied entries (SNAPSHOT_EVERY), ${r.compaction.trailingEntries.toLocaleString('en')} entries kept behind it; the stored log of a node should stay under about ${r.compaction.storedRowsBound.toLocaleString('en')} rows (snapshotEvery + trailing entries + 1,024 in flight). *Stored log* is read from PostgreSQL at the end of the phase: rows in raft_log_entries for the node (first–last index), its log start (raft_base_configuration.log_start_index) and its snapshot (raft_snapshots: index and size).`,
      '',
    );
  }
  out.push('| node | phase | RSS once started | peak RSS | RSS at the end | commit index at the end | stored log rows (first–last index) | log start | snapshot index | snapshot size |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const p of r.peakRss) {
    const st = p.stored;
    out.push(
      `| ${p.node} | ${p.phase} | ${p.startRssMb !== undefined ? `${fmt(p.startRssMb, 0)} MB` : '–'} | ${fmt(p.peakRssMb, 0)} MB | ${fmt(p.rssMb, 0)} MB | ${p.logEntries.toLocaleString('en')} | ${st ? `${st.rows.toLocaleString('en')}${st.rows ? ` (${st.firstIndex!.toLocaleString('en')}–${st.lastIndex!.toLocaleString('en')})` : ''}` : '–'} | ${st ? st.logStartIndex.toLocaleString('en') : '–'} | ${st?.snapshotIndex !== undefined ? st.snapshotIndex.toLocaleString('en') : '–'} | ${st ? mb(st.snapshotBytes) : '–'} |`,
    );
  }
  out.push('');
  if (r.heapReadings?.length) {
    out.push('## Memory of each node after the big write (--heap-snapshot)', '');
    out.push('`process.memoryUsage()` when asked, then after the full GC that writing a heap snapshot does, and the live heap\'s biggest kinds of objects (self size).', '');
    out.push('| node | RSS | heap total / used | external (of which ArrayBuffers) | after GC: RSS · heap total / used | live heap | biggest kinds | resident by mapping (smaps) |', '|---|---:|---:|---:|---:|---:|---|---|');
    for (const h of r.heapReadings) {
      const b = h.before;
      const a = h.afterGc;
      out.push(
        `| ${h.node} | ${b ? `${fmt(b.rssMb, 0)} MB` : '–'} | ${b ? `${fmt(b.heapTotalMb, 0)} / ${fmt(b.heapUsedMb, 0)} MB` : '–'} | ${b ? `${fmt(b.externalMb, 0)} (${fmt(b.arrayBuffersMb, 0)}) MB` : '–'} | ${a ? `${fmt(a.rssMb, 0)} MB · ${fmt(a.heapTotalMb, 0)} / ${fmt(a.heapUsedMb, 0)} MB` : '–'} | ${fmt(h.liveHeapMb, 1)} MB | ${h.top.slice(0, 6).map((t) => `${t.kind} ${fmt(t.selfMb, 1)} MB`).join(', ')} | ${h.smaps ? Object.entries(h.smaps.byKind).sort((x, y) => y[1] - x[1]).slice(0, 4).map(([k, v]) => `${k} ${fmt(v, 0)} MB`).join(', ') : '–'} |`,
      );
    }
    out.push('');
  }
  if (r.nodeWarnings?.length) {
    out.push('## Process warnings from the nodes', '');
    out.push('The node processes run with `--trace-warnings`; each process that printed warnings, with the first one and its stack:', '');
    for (const w of r.nodeWarnings) {
      out.push(`- ${w.node} (pid ${w.pid}): ${w.count.toLocaleString('en')} warning(s)`, '', '```', ...(w.first[0] ?? '').split('\n').slice(0, 14), '```', '');
    }
  }
  out.push('## Targets (issues 6 and 7)', '');
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
