/**
 * What a V8 heap snapshot holds: the live heap's size and the biggest kinds of objects by self size
 * (constructor name for objects; strings, arrays, code, closures … as groups), from a `.heapsnapshot`
 * written by `v8.writeHeapSnapshot()` (see profile-hook.mjs, `npm run bench -- --heap-snapshot`).
 *
 *   npx tsx test/bench/heap-summary.ts FILE.heapsnapshot [--top 25]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

export interface HeapSummary {
  /** Sum of every node's self size: the live JS heap (V8 collects garbage before it writes a snapshot). */
  readonly totalMb: number;
  readonly objects: number;
  /** Kinds of objects by self size, largest first. */
  readonly top: { kind: string; count: number; selfMb: number; pct: number }[];
}

export function summarizeHeapSnapshot(file: string, top = 20): HeapSummary {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshotFile;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const byKind = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  let objects = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!] ?? '?';
    const size = snap.nodes[i + sizeAt]!;
    total += size;
    objects++;
    let kind: string;
    if (type === 'object' || type === 'native') kind = `${snap.strings[snap.nodes[i + nameAt]!] ?? '?'}${type === 'native' ? ' (native)' : ''}`;
    else if (type === 'string' || type === 'concatenated string' || type === 'sliced string') kind = '(strings)';
    else kind = `(${type})`;
    const k = byKind.get(kind) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += size;
    byKind.set(kind, k);
  }
  return {
    totalMb: total / 1e6,
    objects,
    top: [...byKind]
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .slice(0, top)
      .map(([kind, k]) => ({ kind, count: k.count, selfMb: k.bytes / 1e6, pct: (100 * k.bytes) / Math.max(1, total) })),
  };
}

export function formatHeapSummary(title: string, s: HeapSummary): string {
  const lines = [`${title}: live heap ${s.totalMb.toFixed(1)} MB in ${s.objects.toLocaleString('en')} objects`];
  for (const t of s.top) lines.push(`  ${t.selfMb.toFixed(2).padStart(8)} MB ${t.pct.toFixed(1).padStart(5)} %  ${String(t.count).padStart(9)} × ${t.kind}`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: npx tsx test/bench/heap-summary.ts FILE.heapsnapshot [--top N]');
    process.exit(2);
  }
  const i = process.argv.indexOf('--top');
  console.log(formatHeapSummary(file, summarizeHeapSnapshot(file, i > 0 ? Number(process.argv[i + 1]) : 25)));
}
