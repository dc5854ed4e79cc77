/**
 * One test per scenario file in test/scenarios/testdata/*.txt (see test/scenarios/interpreter.ts).
 *
 * An intended change of behaviour is accepted by rewriting the expected outputs in place and
 * reviewing the diff:
 *
 *     REWRITE=1 npx vitest run test/scenarios.test.ts
 *
 * The second group runs each scenario once more with the rule it demonstrates broken in the engine
 * (test/scenarios/mutations.ts) and checks that the trace then differs, with the tell-tale line.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runScenario } from './scenarios/interpreter.js';
import { MUTATIONS } from './scenarios/mutations.js';

const dir = fileURLToPath(new URL('./scenarios/testdata/', import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();
const rewrite = process.env['REWRITE'] === '1';

describe('scenarios', () => {
  it('has scenario files', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const text = readFileSync(path, 'utf8');
      const { actual, mismatches } = runScenario(text);
      if (rewrite) {
        if (actual !== text) writeFileSync(path, actual);
        return;
      }
      const where = mismatches.map((m) => `  line ${m.line}: ${m.command}`).join('\n');
      expect(actual, `${file}: output differs in\n${where}\n(run with REWRITE=1 to accept the new output, then review the diff)`).toBe(text);
    });
  }
});

describe('scenarios notice when their rule is broken', () => {
  for (const mutation of MUTATIONS) {
    it(`${mutation.file}: ${mutation.breaks}`, () => {
      expect(files).toContain(mutation.file);
      const text = readFileSync(join(dir, mutation.file), 'utf8');
      const restore = mutation.install();
      let actual: string;
      try {
        actual = runScenario(text).actual;
      } finally {
        restore();
      }
      expect(actual, 'the broken engine produced the expected trace').not.toBe(text);
      expect(actual, `the broken engine's trace lacks the line that shows the breakage`).toContain(mutation.shows);
    });
  }
});
