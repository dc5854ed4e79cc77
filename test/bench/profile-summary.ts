/**
 * Where a CPU profile's time goes: self time per function and per group (JSON/base64 encoding,
 * validation, pg, TypeORM, HTTP, Nest, the engine, the driver, GC …), from a `.cpuprofile` written by
 * `node --cpu-prof` or by test/bench/profile-hook.mjs.
 *
 *   npx tsx test/bench/profile-summary.ts FILE.cpuprofile [--top 25]
 *
 * A native frame without a script (a builtin, a syscall wrapper) is charged to the group of the
 * JavaScript that called it, except JSON.parse/stringify and base64, which count as encoding wherever
 * they are called from (the caller's group is shown in the function list).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionCost {
  readonly name: string;
  readonly location: string;
  readonly group: string;
  /** For a native frame, the group of its JavaScript caller. */
  readonly calledFrom?: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time. */
  readonly pct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly groups: { group: string; selfMs: number; pct: number }[];
  readonly functions: FunctionCost[];
}

const ENCODING = 'JSON/base64/text encoding';

function groupOfUrl(url: string): string | undefined {
  if (!url) return undefined;
  const u = url.replace(/\\/g, '/');
  if (/\/node_modules\/(pg|pg-protocol|pg-pool|pg-types|pg-connection-string|pgpass|postgres-[a-z]+)\//.test(u)) return 'pg (node-postgres)';
  if (u.includes('/node_modules/typeorm/')) return 'TypeORM';
  if (/\/node_modules\/(class-validator|class-transformer|validator|libphonenumber-js)\//.test(u) || u.includes('/lib/nest/dto/')) return 'validation (class-validator/DTOs)';
  if (u.includes('/lib/transport/wire') || u === 'node:internal/encoding') return ENCODING;
  if (u.includes('/lib/transport/auth') || u.includes('/lib/nest/security/') || u.startsWith('node:internal/crypto') || u === 'node:crypto') return 'auth (HMAC, replay cache)';
  if (u === 'node:buffer') return 'Buffer copies (node:buffer)';
  if (u.includes('/node_modules/@nestjs/')) return 'Nest (routing, pipes, DI)';
  if (
    /\/node_modules\/(express|body-parser|router|raw-body|send|finalhandler|on-finished|iconv-lite|type-is|content-type|qs|path-to-regexp|accepts|negotiator|mime-types|mime-db|media-typer|statuses|http-errors|depd|debug|ms|vary|etag|fresh|parseurl|cookie|proxy-addr|forwarded|ipaddr\.js|encodeurl|escape-html|serve-static|utils-merge|merge-descriptors|cors|object-assign|safe-buffer|setprototypeof|inherits|bytes|unpipe|ee-first|destroy|toidentifier|methods|range-parser|content-disposition|array-flatten|call-bind|get-intrinsic|side-channel|has-symbols|function-bind|es-errors|object-inspect|hasown|gopd|dunder-proto|math-intrinsics|es-object-atoms|call-bound|side-channel-[a-z]+|call-bind-apply-helpers|get-proto|es-define-property|once|wrappy|router|is-promise)\//.test(
      u,
    )
  )
    return 'HTTP server (express, body parsing)';
  if (/^node:(_http|http|https|net|stream|_stream|internal\/(http|streams|stream_base|net|dns|url|tls|js_stream))/.test(u) || u === 'node:internal/url') return 'HTTP/net (node core)';
  if (u.includes('/node_modules/rxjs/')) return 'rxjs';
  if (u.includes('/lib/core/')) return 'engine (lib/core)';
  if (u.includes('/lib/node/')) return 'driver (lib/node)';
  if (u.includes('/lib/storage/')) return 'storage codec (lib/storage)';
  if (u.includes('/lib/transport/')) return 'transport client (lib/transport)';
  if (u.includes('/lib/nest/')) return 'lib/nest (controller, body)';
  if (u.includes('/lib/')) return 'lib (other)';
  if (u.includes('/sample/')) return 'sample (KV controller, state machine)';
  if (u.includes('/test/bench/')) return 'bench client';
  if (u.includes('/node_modules/tsx/') || u.includes('/node_modules/esbuild/')) return 'tsx loader';
  if (u.startsWith('node:internal/process/task_queues') || u.startsWith('node:internal/timers') || u.startsWith('node:internal/async_hooks') || u.startsWith('node:timers')) return 'node runtime (promises, timers)';
  if (u.startsWith('node:')) return 'node runtime (other)';
  if (u.includes('/node_modules/')) return `other package (${/\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? '?'})`;
  return 'other';
}

function groupOfNative(name: string): string | undefined {
  switch (name) {
    case '(garbage collector)':
      return 'GC';
    case '(idle)':
      return '(idle)';
    case '(program)':
      return '(program: VM, native outside JS)';
    case 'stringify':
    case 'parse':
    case 'JSONParse':
    case 'JSONStringify':
    case 'base64Slice':
    case 'base64Write':
    case 'base64ByteLength':
    case 'btoa':
    case 'atob':
      return ENCODING;
    default:
      return undefined;
  }
}

/** Self time per function and per group; `top` functions listed. */
export function summarizeProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Self microseconds per node: a sample lasts until the next one (the last one: the mean interval).
  const self = new Map<number, number>();
  const { samples, timeDeltas } = profile;
  const mean = samples.length > 1 ? (profile.endTime - profile.startTime) / samples.length : 0;
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1]! : mean;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }

  const jsGroup = new Map<number, string>();
  const jsGroupOf = (id: number): string => {
    const cached = jsGroup.get(id);
    if (cached) return cached;
    const node = byId.get(id)!;
    const fromUrl = groupOfUrl(node.callFrame.url);
    const p = parent.get(id);
    const g = fromUrl ?? (p !== undefined && byId.get(p)!.callFrame.functionName !== '(root)' ? jsGroupOf(p) : 'native (no JS caller)');
    jsGroup.set(id, g);
    return g;
  };

  const groups = new Map<string, number>();
  const functions = new Map<string, { name: string; location: string; group: string; calledFrom?: string; us: number }>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of self) {
    total += us;
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const native = groupOfNative(functionName);
    const group = native ?? jsGroupOf(id);
    if (group === '(idle)') {
      idle += us;
      continue;
    }
    groups.set(group, (groups.get(group) ?? 0) + us);
    const short = url ? url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(dist|work\/[^/]+)\//, '') : '(native)';
    const location = url ? `${short}:${lineNumber + 1}` : '(native)';
    const calledFrom = !url && native !== undefined ? (parent.get(id) !== undefined ? jsGroupOf(parent.get(id)!) : undefined) : !url ? group : undefined;
    const key = `${functionName || '(anonymous)'} ${location} ${calledFrom ?? ''}`;
    const entry = functions.get(key) ?? { name: functionName || '(anonymous)', location, group, ...(calledFrom ? { calledFrom } : {}), us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const busy = total - idle;
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0);
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    groups: [...groups].map(([group, us]) => ({ group, selfMs: us / 1000, pct: pct(us) })).sort((a, b) => b.selfMs - a.selfMs),
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, location: f.location, group: f.group, ...(f.calledFrom ? { calledFrom: f.calledFrom } : {}), selfMs: f.us / 1000, pct: pct(f.us) })),
  };
}

/** The summary as text (Markdown-friendly). */
export function formatProfileSummary(title: string, s: ProfileSummary): string {
  const lines = [
    `### ${title}`,
    '',
    `sampled ${(s.totalMs / 1000).toFixed(1)} s, busy ${(s.busyMs / 1000).toFixed(1)} s (${s.totalMs > 0 ? ((100 * s.busyMs) / s.totalMs).toFixed(0) : 0} %), idle ${(s.idleMs / 1000).toFixed(1)} s`,
    '',
    '| group | self time | share of busy |',
    '|---|---:|---:|',
    ...s.groups.filter((g) => g.pct >= 0.5).map((g) => `| ${g.group} | ${(g.selfMs / 1000).toFixed(2)} s | ${g.pct.toFixed(1)} % |`),
    '',
    '| function | where | group | self | share |',
    '|---|---|---|---:|---:|',
    ...s.functions.map(
      (f) => `| \`${f.name}\` | ${f.location} | ${f.group}${f.calledFrom && f.calledFrom !== f.group ? ` (from ${f.calledFrom})` : ''} | ${f.selfMs.toFixed(0)} ms | ${f.pct.toFixed(1)} % |`,
    ),
    '',
  ];
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--top');
  const topIndex = process.argv.indexOf('--top');
  const top = topIndex >= 0 ? Number(process.argv[topIndex + 1]) : 25;
  if (files.length === 0) {
    console.error('usage: tsx test/bench/profile-summary.ts FILE.cpuprofile … [--top N]');
    process.exit(2);
  }
  for (const file of files) console.log(formatProfileSummary(file, summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top)));
}
