/**
 * Rewrites a benchmark's Markdown report and plot from its JSON, without running it again (after a
 * change to the report's layout):
 *
 *   npx tsx test/bench/render-report.ts [bench/results/latest.json]
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeReportFiles, type BenchReport } from './bench-report.js';

const file = process.argv[2] ?? 'bench/results/latest.json';
const dir = dirname(file);
const written = writeReportFiles(JSON.parse(readFileSync(file, 'utf8')) as BenchReport, dir, false);
console.log(`rewrote ${written.map((f) => join(dir, f)).join(', ')}`);
