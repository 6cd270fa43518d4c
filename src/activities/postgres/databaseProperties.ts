// The database's own properties (owner, connection limit, ALTER DATABASE ... SET, per-role
// settings in it, its ACL and comment) as pg_dump recorded them in the archive. pg_restore emits
// them only with --create, for a database of the original name; here they are taken from
// pg_restore's output, checked to be nothing else, and pointed at the database being restored.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../config';
import { runPgTool } from './pgTools';

const IDENT = String.raw`("(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)`;
/** Archive entries of the database itself (pg_restore --create -l). */
const DATABASE_ENTRY = /^\d+; \d+ \d+ (DATABASE - |COMMENT - DATABASE |ACL - DATABASE |DATABASE PROPERTIES - )/;
/** The statements carried, each with the database's identifier as its capture group 2. */
const CARRIED = [
  new RegExp(String.raw`^(ALTER DATABASE )${IDENT}( (OWNER TO|CONNECTION LIMIT|SET|RESET) )`, 's'),
  new RegExp(String.raw`^(ALTER ROLE ${IDENT} IN DATABASE )${IDENT}( SET )`, 's'),
  new RegExp(String.raw`^(COMMENT ON DATABASE )${IDENT}( IS )`, 's'),
  new RegExp(String.raw`^((?:GRANT|REVOKE) [A-Z, ]+ ON DATABASE )${IDENT}( (?:TO|FROM) )`, 's'),
];
/** What pg_restore writes around them: session settings, the CREATE DATABASE we replace with our own. */
const SKIPPED = /^(SET |SELECT pg_catalog\.set_config|CREATE DATABASE |ALTER DATABASE \S+ (IS_TEMPLATE|ALLOW_CONNECTIONS))/s;

function unquote(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident.toLowerCase();
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Splits pg_restore's SQL output into statements; psql meta-commands (\connect, \restrict) and comments dropped. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let quoteChar: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (quoteChar) {
      current += ch;
      if (ch === quoteChar) quoteChar = undefined; // a doubled quote reopens on the next character
      continue;
    }
    const atStart = current.trim() === '';
    if (atStart && (ch === '\\' || (ch === '-' && sql[i + 1] === '-'))) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      current = '';
      continue;
    }
    if (ch === "'" || ch === '"') quoteChar = ch;
    if (ch === ';') {
      statements.push(current.trim());
      current = '';
      continue;
    }
    current += ch;
  }
  if (current.trim() !== '') statements.push(current.trim());
  return statements;
}

/**
 * The archive's database-level statements for `sourceDatabase`, rewritten to apply to
 * `database`. Anything else in that part of the archive is refused, not run.
 */
export function carriedStatements(statements: string[], sourceDatabase: string, database: string): string[] {
  const carried: string[] = [];
  for (const statement of statements) {
    if (SKIPPED.test(statement)) continue;
    const pattern = CARRIED.find((p) => p.test(statement));
    const match = pattern?.exec(statement);
    const dbIdent = match?.[pattern === CARRIED[1] ? 3 : 2];
    if (!match || !dbIdent || unquote(dbIdent) !== sourceDatabase) {
      throw ApplicationFailure.nonRetryable(
        `unexpected statement among the database properties of the backup (refused, not run): ${statement.slice(0, 200)}`,
        'BackupUnexpected',
      );
    }
    const before = match[1];
    carried.push(`${before}${quote(database)}${statement.slice(before.length + dbIdent.length)}`);
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
