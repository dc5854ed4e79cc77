import type { QueryRunner } from 'typeorm';
import { StorageLockedError } from './errors.js';

/**
 * The text whose 64-bit hash (`hashtextextended`) is the advisory-lock key of one node: the same
 * (schema, cluster, node) that keys its rows, so two deployments in two schemas never block each other.
 */
export function nodeLockName(schema: string, clusterId: string, nodeId: number): string {
  return `nestjs-raft:${schema}:${clusterId}:${nodeId}`;
}

/**
 * Takes the session-level advisory lock of one node on `queryRunner`'s connection, which the storage
 * then holds until it closes: every write of the node goes through that same connection, so a write
 * can never happen without the lock (if the connection drops, the lock goes with it and the next
 * write fails, instead of going on unlocked on another pooled connection).
 *
 * @throws StorageLockedError when another session holds it, naming that session when PostgreSQL says.
 */
export async function acquireNodeLock(queryRunner: QueryRunner, schema: string, clusterId: string, nodeId: number): Promise<void> {
  const name = nodeLockName(schema, clusterId, nodeId);
  const rows = (await queryRunner.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked', [name])) as Array<{ locked: boolean }>;
  if (rows[0]?.locked) return;
  throw new StorageLockedError(
    `node ${nodeId} of cluster '${clusterId}' is already running elsewhere: another session holds its lock in schema "${schema}"` +
      (await describeHolder(queryRunner, name)),
  );
}

/** Releases the lock taken by {@link acquireNodeLock}. */
export async function releaseNodeLock(queryRunner: QueryRunner, schema: string, clusterId: string, nodeId: number): Promise<void> {
  await queryRunner.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [nodeLockName(schema, clusterId, nodeId)]);
}

/** Best effort: who holds the lock, from pg_locks and pg_stat_activity (may be hidden from a non-superuser). */
async function describeHolder(queryRunner: QueryRunner, name: string): Promise<string> {
  try {
    const rows = (await queryRunner.query(
      `SELECT a.pid, a.client_addr::text AS client, a.application_name AS application
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid,
              (SELECT hashtextextended($1, 0) AS key) k
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid`,
      [name],
    )) as Array<{ pid: number; client: string | null; application: string | null }>;
    const holder = rows[0];
    if (!holder) return '';
    const parts = [`backend pid ${holder.pid}`];
    if (holder.client) parts.push(`client ${holder.client}`);
    if (holder.application) parts.push(`application '${holder.application}'`);
    return ` (${parts.join(', ')})`;
  } catch {
    return '';
  }
}
