import type { QueryRunner } from 'typeorm';
import { RaftError } from '../../core/errors.js';
import { RAFT_MIGRATIONS, RAFT_MIGRATIONS_TABLE } from './raft-schema.js';
import { qualifiedTable, quoteIdentifier } from './schema-name.js';

/** The timestamp TypeORM derives from a migration's name (its last 13 digits). */
function timestampOf(name: string): number {
  const digits = /(\d{13})$/.exec(name)?.[1];
  if (!digits) throw new Error(`migration ${name} does not end with a 13-digit timestamp`);
  return Number(digits);
}

/**
 * Brings the Raft tables in `schema` up to date, on the storage's own connection, in one transaction.
 *
 * The storage runs this itself rather than through `DataSource.runMigrations()`, because it must also
 * work on a DataSource the application owns (with its own migrations and migrations table), and on a
 * single-connection pool whose one connection the storage already holds. The history goes into
 * {@link RAFT_MIGRATIONS_TABLE} in TypeORM's format, so `dataSource.showMigrations()` on a DataSource
 * that registers {@link RAFT_MIGRATIONS} under that table name agrees with it.
 *
 * A transaction-scoped advisory lock serializes nodes that start together on one fresh database:
 * without it, two of them could both see no table and both try to create it.
 *
 * @returns the names of the migrations that ran.
 */
export async function runRaftMigrations(queryRunner: QueryRunner, schema: string): Promise<string[]> {
  const table = qualifiedTable(schema, RAFT_MIGRATIONS_TABLE);
  const ran: string[] = [];
  await queryRunner.startTransaction();
  try {
    await queryRunner.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`nestjs-raft:migrations:${schema}`]);
    const exists = (await queryRunner.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])) as unknown[];
    if (exists.length === 0) await queryRunner.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
    await queryRunner.query(
      `CREATE TABLE IF NOT EXISTS ${table} ("id" SERIAL NOT NULL, "timestamp" bigint NOT NULL, "name" character varying NOT NULL, ` +
        `CONSTRAINT ${quoteIdentifier(`${RAFT_MIGRATIONS_TABLE}_pkey`)} PRIMARY KEY ("id"))`,
    );
    const done = new Set(((await queryRunner.query(`SELECT "name" FROM ${table}`)) as Array<{ name: string }>).map((row) => row.name));
    const known = new Set(RAFT_MIGRATIONS.map((Migration) => new Migration().name));
    const unknown = [...done].filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new RaftError(
        `the Raft tables in schema "${schema}" were migrated by a newer version of nestjs-raft (${unknown.join(', ')}); ` +
          'upgrade this node rather than run an older version on a newer schema',
      );
    }
    for (const Migration of RAFT_MIGRATIONS) {
      const migration = new Migration();
      if (done.has(migration.name)) continue;
      await migration.up(queryRunner);
      await queryRunner.query(`INSERT INTO ${table} ("timestamp", "name") VALUES ($1, $2)`, [timestampOf(migration.name), migration.name]);
      ran.push(migration.name);
    }
    await queryRunner.commitTransaction();
  } catch (error) {
    if (queryRunner.isTransactionActive) await queryRunner.rollbackTransaction().catch(() => undefined);
    throw error;
  }
  return ran;
}
