import type { QueryRunner } from 'typeorm';
import { UnsafeDurabilityError } from './errors.js';

/**
 * Checks that a COMMIT on this connection is on disk when it returns, as Raft needs of the term, the
 * vote and the log (§5, Figure 2). Both settings can differ per session, role or database, so they
 * are read on the storage's own connection.
 *
 * - `fsync` must be `on`: with it off, PostgreSQL never forces anything to disk.
 * - `synchronous_commit` must be `on`, `remote_write` or `remote_apply`. `off` acknowledges a commit
 *   before its WAL is flushed; `local` waits for the local flush but not for a synchronous standby,
 *   so after a failover to that standby an acknowledged vote or entry could be gone.
 *
 * @throws UnsafeDurabilityError naming the setting, unless `allowUnsafe`.
 */
export async function checkDurability(queryRunner: QueryRunner, allowUnsafe: boolean): Promise<void> {
  const fsync = await show(queryRunner, 'fsync');
  const synchronousCommit = await show(queryRunner, 'synchronous_commit');
  if (allowUnsafe) return;
  if (fsync !== 'on') {
    throw new UnsafeDurabilityError('fsync', fsync, 'PostgreSQL does not force commits to disk, so a crash can lose acknowledged votes and log entries. Turn fsync on, or pass unsafeAllowAsyncCommit: true to accept that risk');
  }
  if (synchronousCommit === 'off' || synchronousCommit === 'local') {
    throw new UnsafeDurabilityError(
      'synchronous_commit',
      synchronousCommit,
      synchronousCommit === 'off'
        ? 'commits are acknowledged before they are on disk, so a crash can lose acknowledged votes and log entries. Use synchronous_commit = on for this role or database, or pass unsafeAllowAsyncCommit: true to accept that risk'
        : 'commits do not wait for a synchronous standby, so a failover can lose acknowledged votes and log entries. Use synchronous_commit = on, or pass unsafeAllowAsyncCommit: true to accept that risk',
    );
  }
}

async function show(queryRunner: QueryRunner, setting: 'fsync' | 'synchronous_commit'): Promise<string> {
  const rows = (await queryRunner.query(`SHOW ${setting}`)) as Array<Record<string, string>>;
  return String(rows[0]?.[setting] ?? '').toLowerCase();
}
