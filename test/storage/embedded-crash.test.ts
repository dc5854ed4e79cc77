import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../lib/storage/embedded/index.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import { TypeOrmStorage, UnsafeDurabilityError } from '../../lib/storage/typeorm/index.js';
import { crashWorkload, embeddedDataDir, noop } from './fixtures.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-raft-crash-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('EmbeddedPostgres, durability', () => {
  it('after SIGKILL, recovers exactly the batches up to one at or after the last acknowledged', async () => {
    const childDir = await embeddedDataDir(path.join(root, 'killed'));
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./embedded-crash-child.ts', import.meta.url)), childDir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // Kill it in the middle of its saves, once it has acknowledged a good number of them.
    let acknowledged = -1;
    let pending = '';
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.stdout!.on('data', (data: Buffer) => {
      const lines = (pending + data.toString()).split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const number = Number(line.split(' ')[1]);
        expect(number).toBe(acknowledged + 1); // acknowledged in call order
        acknowledged = number;
        if (acknowledged === 150) child.kill('SIGKILL');
      }
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000); // never leave a child behind
    expect(await exited).toBe('SIGKILL');
    clearTimeout(guard);
    expect(acknowledged).toBeGreaterThanOrEqual(150);

    // The dead process's lock file is left behind; its PID is gone, so the new server takes over.
    const restarted = await EmbeddedPostgres.start({ dataDir: childDir });
    const recoveredBy = new TypeOrmStorage({ nodeId: 1, ...restarted.storageOptions() });
    try {
      const recovered = await recoveredBy.load(); // a torn or inconsistent store would throw here
      // The recovered state must be what the first n batches leave, for some n past the acknowledged
      // ones: nothing acknowledged lost, no batch half-applied, none out of order.
      const model = new MemoryStorage();
      await model.load();
      const matches: number[] = [];
      let n = 0;
      for (const batch of crashWorkload()) {
        await model.save(batch);
        n++;
        if (isDeepStrictEqual(await model.load(), recovered)) matches.push(n);
        if (n > acknowledged + 50) break;
      }
      expect(matches.length).toBeGreaterThan(0);
      expect(matches.at(-1)!).toBeGreaterThanOrEqual(acknowledged + 1);
    } finally {
      await recoveredBy.close();
      await restarted.stop();
    }
  });

  it('in memory, says it is not durable, and the storage needs the unsafe option spelled out', async () => {
    const inMemory = await EmbeddedPostgres.start({ dataDir: 'memory://' });
    try {
      expect(inMemory.durable).toBe(false);
      const refused = new TypeOrmStorage({ nodeId: 1, dataSourceOptions: inMemory.connectionOptions() });
      await expect(refused.load()).rejects.toBeInstanceOf(UnsafeDurabilityError);
      await expect(refused.load()).rejects.toThrow(/fsync is 'off'/);
      expect(inMemory.storageOptions()).toEqual({ dataSourceOptions: inMemory.connectionOptions(), unsafeAllowAsyncCommit: true });
      const accepted = new TypeOrmStorage({ nodeId: 1, ...inMemory.storageOptions() });
      await accepted.load();
      await accepted.save({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [noop(1, 1)] });
      expect((await accepted.load()).entries).toEqual([noop(1, 1)]);
      await accepted.close();
    } finally {
      await inMemory.stop();
    }
  });
});
