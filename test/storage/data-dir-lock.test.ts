import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { DataDirectoryLock } from '../../lib/storage/embedded/index.js';
import { StorageLockedError } from '../../lib/storage/typeorm/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-raft-lock-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let n = 0;
const directory = () => path.join(root, `node-${++n}`);
const lockFile = (dir: string) => path.join(dir, 'embedded-postgres.lock');
function writeOwner(dir: string, owner: { pid: number; hostname: string }, ageMs = 0): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(lockFile(dir), JSON.stringify({ ...owner, since: new Date().toISOString() }));
  const when = new Date(Date.now() - ageMs);
  fs.utimesSync(lockFile(dir), when, when);
}

it('creates the directory, and keeps a second holder out until released', () => {
  const dir = directory();
  const lock = DataDirectoryLock.acquire(dir);
  expect(fs.existsSync(lockFile(dir))).toBe(true);
  expect(() => DataDirectoryLock.acquire(dir)).toThrow(StorageLockedError);
  lock.release();
  lock.release(); // idempotent
  expect(fs.existsSync(lockFile(dir))).toBe(false);
  DataDirectoryLock.acquire(dir).release();
});

it('refuses a live process on this host, naming it', () => {
  const dir = directory();
  writeOwner(dir, { pid: process.ppid, hostname: os.hostname() });
  expect(() => DataDirectoryLock.acquire(dir)).toThrow(new RegExp(`in use by process ${process.ppid} on ${os.hostname()}.*delete .*embedded-postgres\\.lock`));
});

it('takes over from a dead process, or from our own PID when this process does not hold it (a restarted container)', () => {
  for (const pid of [2 ** 22 + 12345, process.pid]) {
    const dir = directory();
    writeOwner(dir, { pid, hostname: os.hostname() });
    const lock = DataDirectoryLock.acquire(dir);
    expect(JSON.parse(fs.readFileSync(lockFile(dir), 'utf8'))).toMatchObject({ pid: process.pid, hostname: os.hostname() });
    lock.release();
  }
});

it('on another host, trusts the lock while its owner refreshes it, and takes over once it is 30 s stale', () => {
  const dir = directory();
  writeOwner(dir, { pid: 1, hostname: 'elsewhere' }, 5_000);
  expect(() => DataDirectoryLock.acquire(dir)).toThrow(/in use by process 1 on elsewhere/);
  writeOwner(dir, { pid: 1, hostname: 'elsewhere' }, 31_000);
  DataDirectoryLock.acquire(dir).release();
});

it('takes over a half-written lock file', () => {
  const dir = directory();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(lockFile(dir), '{"pid": 12');
  DataDirectoryLock.acquire(dir).release();
});
