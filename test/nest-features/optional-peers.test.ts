import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

describe('optional peer dependencies (@nestjs/terminus, prom-client)', () => {
  it('nestjs-raft, its health indicator and its decorators load without them; RaftMetrics says what is missing', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', '--import', './test/nest-features/fixtures/block-optional-peers.mjs', './test/nest-features/fixtures/without-optional-peers.ts'],
      { cwd: root, timeout: 60_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result.blocked).toBe(true); // the child really cannot load them
    expect(result.loaded).toBe(true);
    expect(result.health).toMatchObject({ raft: { status: 'up', role: 'leader', applyLag: 0 } });
    expect(result.metricsError).toMatch(/needs the prom-client package.*npm install prom-client/);
  });
});
