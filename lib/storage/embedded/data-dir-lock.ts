import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StorageLockedError } from '../typeorm/errors.js';

/** What a lock file says about its holder. */
interface LockOwner {
  readonly pid: number;
  readonly hostname: string;
  readonly since: string;
}

/** The holder refreshes the lock file's mtime this often... */
const HEARTBEAT_MS = 5_000;
/** ...so a lock file not refreshed for this long is abandoned, whoever wrote it. */
const ABANDONED_AFTER_MS = 30_000;

/** Lock files held by this process (a PID check cannot tell a live one of ours from a stale one). */
const heldInThisProcess = new Set<string>();

/**
 * Keeps a second process (or a second server in this process) from opening a PGlite data directory
 * that is in use. PGlite runs PostgreSQL in single-user mode inside the process, with no postmaster
 * to refuse a second instance: two of them on one directory would corrupt it, and, through two socket
 * servers, would let two processes act as the same Raft node.
 *
 * The lock is a file created exclusively (`O_EXCL`), holding the owner's PID and host name, whose
 * mtime the owner refreshes every few seconds. A lock file is taken over when its owner is gone: on
 * this host, when no process has its PID (or the PID is ours but this process does not hold it, as
 * after a container restart where the node is PID 1 again); on any host, when it has not been
 * refreshed for 30 s.
 */
export class DataDirectoryLock {
  private heartbeat: NodeJS.Timeout | undefined;
  private released = false;

  private constructor(readonly file: string) {
    heldInThisProcess.add(file);
    this.heartbeat = setInterval(() => {
      try {
        const now = new Date();
        fs.utimesSync(file, now, now);
      } catch {
        // The directory went away; nothing left to protect.
      }
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** @throws StorageLockedError when a live owner holds the directory. */
  static acquire(directory: string): DataDirectoryLock {
    fs.mkdirSync(directory, { recursive: true });
    const file = path.resolve(directory, 'embedded-postgres.lock');
    const owner: LockOwner = { pid: process.pid, hostname: os.hostname(), since: new Date().toISOString() };
    for (let attempt = 0; ; attempt++) {
      try {
        fs.writeFileSync(file, `${JSON.stringify(owner)}\n`, { flag: 'wx' });
        return new DataDirectoryLock(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      }
      const held = DataDirectoryLock.liveOwner(file);
      if (held) {
        throw new StorageLockedError(
          `the embedded PostgreSQL data directory ${directory} is in use by process ${held.pid} on ${held.hostname} (since ${held.since}); ` +
            `if that process is gone, delete ${file}`,
        );
      }
      fs.rmSync(file, { force: true });
    }
  }

  /** The owner of an existing lock file if it is still alive, or undefined if the lock is abandoned. */
  private static liveOwner(file: string): LockOwner | undefined {
    let owner: LockOwner;
    let mtimeMs: number;
    try {
      owner = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
      mtimeMs = fs.statSync(file).mtimeMs;
    } catch {
      return undefined; // unreadable or half-written: its writer died before finishing it
    }
    if (heldInThisProcess.has(file)) return owner;
    if (Date.now() - mtimeMs > ABANDONED_AFTER_MS) return undefined;
    if (owner.hostname !== os.hostname()) return owner;
    if (owner.pid === process.pid) return undefined;
    try {
      process.kill(owner.pid, 0);
      return owner;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? owner : undefined;
    }
  }

  /** Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.heartbeat);
    heldInThisProcess.delete(this.file);
    fs.rmSync(this.file, { force: true });
  }
}
