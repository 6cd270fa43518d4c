// What makes two databases "the same" for restore tests: schema, row counts, and a checksum of
// every table's content.
import { withTarget } from '../../src/activities/postgres/connection';
import { countRows, listTables } from '../../src/activities/postgres/rowCounts';
import type { TargetConfig, WorkerConfig } from '../../src/config';
import { schemaOnly } from './backupFixture';

export interface Fingerprint {
  schema: string;
  rows: Record<string, number>;
  content: Record<string, string>;
}

export async function fingerprint(config: WorkerConfig, target: TargetConfig): Promise<Fingerprint> {
  const schema = await schemaOnly(config, target);
  return withTarget(target, async (c) => {
    const content: Record<string, string> = {};
    for (const { schema: s, name } of await listTables(c)) {
      const table = `${c.escapeIdentifier(s)}.${c.escapeIdentifier(name)}`;
      const { rows } = await c.query<{ sum: string }>(
        `SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS sum FROM (SELECT md5(t::text) AS h FROM ${table} t) rows`,
      );
      content[`${s}.${name}`] = rows[0].sum;
    }
    return { schema, rows: await countRows(c), content };
  });
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
