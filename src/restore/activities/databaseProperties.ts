// The database's own properties (owner, connection limit, ALTER DATABASE ... SET, per-role
// settings in it, its ACL and comment) as pg_dump recorded them in the archive. pg_restore emits
// them only with --create, for a database of the original name; here they are taken from
// pg_restore's output, checked to be nothing else, and pointed at the database being restored.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { escapeIdentifier } from 'pg';
import type { WorkerConfig } from '../../shared/config';
import { IDENT, splitStatements, unquote } from '../../shared/postgres/dumpedSql';
import { runPgTool } from '../../shared/postgres/pgTools';

/** Archive entries of the database itself (pg_restore --create -l). */
const DATABASE_ENTRY = /^\d+; \d+ \d+ (DATABASE - |COMMENT - DATABASE |ACL - DATABASE |DATABASE PROPERTIES - )/;
/** The statements carried: what precedes the database's identifier, and the identifier (`db`). */
const CARRIED = [
  String.raw`^(?<before>ALTER DATABASE )(?<db>${IDENT}) (OWNER TO|CONNECTION LIMIT|SET|RESET) `,
  String.raw`^(?<before>ALTER ROLE ${IDENT} IN DATABASE )(?<db>${IDENT}) SET `,
  String.raw`^(?<before>COMMENT ON DATABASE )(?<db>${IDENT}) IS `,
  String.raw`^(?<before>(?:GRANT|REVOKE) [A-Z, ]+ ON DATABASE )(?<db>${IDENT}) (?:TO|FROM) `,
].map((pattern) => new RegExp(pattern, 's'));
/** What pg_restore writes around them: session settings, the CREATE DATABASE we replace with our own. */
const SKIPPED = /^(SET |SELECT pg_catalog\.set_config|CREATE DATABASE |ALTER DATABASE \S+ (IS_TEMPLATE|ALLOW_CONNECTIONS))/s;

/**
 * The archive's database-level statements for `sourceDatabase`, rewritten to apply to
 * `database`. Anything else in that part of the archive is refused, not run.
 */
export function carriedStatements(statements: string[], sourceDatabase: string, database: string): string[] {
  const carried: string[] = [];
  for (const statement of statements) {
    if (SKIPPED.test(statement)) continue;
    const match = CARRIED.map((p) => p.exec(statement)).find((m) => m !== null);
    const { before, db } = match?.groups ?? {};
    if (!match || !db || unquote(db) !== sourceDatabase) {
      throw ApplicationFailure.nonRetryable(
        `unexpected statement among the database properties of the backup (refused, not run): ${statement.slice(0, 200)}`,
        'BackupUnexpected',
      );
    }
    carried.push(`${before}${escapeIdentifier(database)}${statement.slice(before.length + db.length)}`);
  }
  return carried;
}

/** Reads the database-level statements of a dump (custom file or directory) for `database`. */
export async function databasePropertyStatements(config: WorkerConfig, dumpPath: string, sourceDatabase: string, database: string): Promise<string[]> {
  const list = await runPgTool(config, 'pg_restore', ['--create', '--list', dumpPath]);
  const entries = list.stdout.split('\n').filter((line) => DATABASE_ENTRY.test(line));
  if (entries.length === 0) return [];
  const dir = await mkdtemp(path.join(tmpdir(), 'pgops-dbprops-'));
  try {
    const listFile = path.join(dir, 'database.list');
    await writeFile(listFile, `${entries.join('\n')}\n`, { flag: 'wx', mode: 0o600 });
    const sql = await runPgTool(config, 'pg_restore', ['--create', `--use-list=${listFile}`, '--file=-', dumpPath]);
    return carriedStatements(splitStatements(sql.stdout), sourceDatabase, database);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
