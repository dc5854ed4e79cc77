import type { QueryRunner } from 'typeorm';

/**
 * Where the Raft tables live: the `schema` option of the DataSource when it has one (TypeORM puts
 * the entities there too), otherwise the connection's current schema (the first of `search_path`).
 * The storage, its migrations and its lock all resolve the schema the same way.
 */
export async function resolveRaftSchema(queryRunner: QueryRunner): Promise<string> {
  const configured = (queryRunner.connection.options as { schema?: string }).schema;
  if (configured) return configured;
  const rows = (await queryRunner.query('SELECT current_schema() AS schema')) as Array<{ schema: string | null }>;
  const current = rows[0]?.schema;
  if (!current) throw new Error('the connection has no current schema (search_path names no existing schema); set the `schema` option');
  return current;
}

/** A double-quoted SQL identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."table"`. */
export function qualifiedTable(schema: string, table: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
}
