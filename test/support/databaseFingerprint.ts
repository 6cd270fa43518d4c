// What makes two databases "the same" for restore tests: schema, row counts, and a checksum of
// every table's content.
import type { Client as PgClient } from 'pg';
import { withTarget } from '../../src/shared/postgres/connection';
import { countRows, listTables } from '../../src/shared/postgres/rowCounts';
import type { TargetConfig, WorkerConfig } from '../../src/shared/config';
import { schemaOnly } from './backupFixture';

export interface Fingerprint {
  schema: string;
  rows: Record<string, number>;
  content: Record<string, string>;
}

/** A checksum of every table's rows, in no particular order ("schema.table" -> md5). */
export async function content(c: PgClient): Promise<Record<string, string>> {
  const sums: Record<string, string> = {};
  for (const { schema, name } of await listTables(c)) {
    const table = `${c.escapeIdentifier(schema)}.${c.escapeIdentifier(name)}`;
    const { rows } = await c.query<{ sum: string }>(
      `SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS sum FROM (SELECT md5(t::text) AS h FROM ${table} t) rows`,
    );
    sums[`${schema}.${name}`] = rows[0].sum;
  }
  return sums;
}

export async function fingerprint(config: WorkerConfig, target: TargetConfig): Promise<Fingerprint> {
  const schema = await schemaOnly(config, target);
  return withTarget(target, async (c) => ({ schema, rows: await countRows(c), content: await content(c) }));
}

/** Databases on the target's server whose names match a LIKE pattern. */
export async function databasesLike(target: TargetConfig, pattern: string): Promise<string[]> {
  return withTarget({ ...target, database: 'postgres' }, async (c) =>
    (await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1', [pattern])).rows.map((r) => r.datname),
  );
}

export async function dropDatabase(target: TargetConfig, name: string): Promise<void> {
  await withTarget({ ...target, database: 'postgres' }, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
}
