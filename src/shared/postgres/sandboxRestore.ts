// A guarded restore's staging copy and the nightly backup's test restore both run as a role of
// their own that cannot leave the database server's sandbox:
// no superuser, no pg_execute_server_program / pg_read_server_files / pg_write_server_files, so
// an archive that tries COPY … TO PROGRAM (or reads a server file) fails on permissions, even an
// authentic one. The few things of an archive that need a superuser are done by pgops itself,
// from statements taken out of the archive and checked to be nothing else:
//   - extensions: CREATE EXTENSION, before the restore (the sandbox could not create them)
//   - ownership: the sandbox restores with --no-owner; afterwards each ALTER … OWNER TO of the
//     archive is run as the superuser, so every object ends with the owner it had
//   - default privileges FOR ROLE another role
// The role is created per restore and named like its database (pgops_restore_<id>, or the test
// restore's pgops_verify_<backup id>); it is dropped when that database is done or dropped. A test
// restore needs only the extensions: its database is dropped once counted, owners and all.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import type { WorkerConfig } from '../config';
import type { BackupManifest } from '../../backup/manifest';
import { runPgTool } from './pgTools';
import { IDENT, splitStatements, unquote } from './dumpedSql';

/** Archive entries pgops runs itself: extensions (and their comments, which come from the extension), default privileges. */
const EXTENSION_ENTRY = /^\d+; \d+ \d+ (EXTENSION |COMMENT - EXTENSION )/;
const DEFAULT_ACL_ENTRY = /^\d+; \d+ \d+ DEFAULT ACL /;
/** Entries that are rows: no owner change among them, and too big to read twice. */
const ROWS_ENTRY = /^\d+; \d+ \d+ (TABLE DATA|BLOBS) /;

/** What pg_restore writes around the statements: session settings. */
const SESSION = /^(SET |SELECT pg_catalog\.set_config\()/s;

const CREATE_EXTENSION = new RegExp(String.raw`^CREATE EXTENSION IF NOT EXISTS ${IDENT}(?: WITH SCHEMA ${IDENT})?$`, 's');
const COMMENT_ON_EXTENSION = new RegExp(String.raw`^COMMENT ON EXTENSION ${IDENT} IS '(?:[^']|'')*'$`, 's');

/** An object's name as pg_restore writes it: identifiers, dots, a signature's parentheses and commas; no literal, no dollar quote, no semicolon. */
const OBJECT_NAME = String.raw`(?:"(?:[^"]|"")*"|[^;'"$])+?`;
const OWNED_KINDS = [
  'TABLE', 'SEQUENCE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE', 'SCHEMA', 'TYPE', 'DOMAIN', 'FUNCTION', 'PROCEDURE', 'AGGREGATE',
  'COLLATION', 'CONVERSION', 'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'OPERATOR', 'OPERATOR CLASS', 'OPERATOR FAMILY',
  'LARGE OBJECT', 'STATISTICS', 'PUBLICATION', 'FOREIGN DATA WRAPPER', 'SERVER',
];
const ALTER_OWNER = new RegExp(String.raw`^ALTER (${OWNED_KINDS.join('|')}) ${OBJECT_NAME} OWNER TO ${IDENT}$`, 's');
const LOOKS_LIKE_OWNER_CHANGE = /^ALTER .* OWNER TO /s;

const GRANTEES = String.raw`(?:${IDENT}|PUBLIC)(?:, (?:${IDENT}|PUBLIC))*`;
const DEFAULT_ACL = new RegExp(
  String.raw`^ALTER DEFAULT PRIVILEGES FOR ROLE ${IDENT}(?: IN SCHEMA ${IDENT})? (?:GRANT|REVOKE) [A-Z ,]+ ON (?:TABLES|SEQUENCES|FUNCTIONS|TYPES|SCHEMAS|LARGE OBJECTS) (?:TO|FROM) ${GRANTEES}(?: WITH GRANT OPTION)?$`,
  's',
);

/** The per-restore role: its database's name (roles and databases have separate namespaces). */
export function restoreRoleName(database: string): string {
  return database;
}

/**
 * Creates the restore's role afresh (a leftover of a killed attempt goes first) and returns its
 * password. NOINHERIT and no memberships: it holds nothing but what it creates.
 */
export async function createRestoreRole(c: Client, role: string): Promise<string> {
  const password = randomBytes(24).toString('base64url');
  const validUntil = new Date(Date.now() + 7 * 86_400_000).toISOString();
  await dropRestoreRole(c, role);
  await c.query(
    `CREATE ROLE ${c.escapeIdentifier(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT ` +
      `PASSWORD ${c.escapeLiteral(password)} VALID UNTIL ${c.escapeLiteral(validUntil)}`,
  );
  const { rows } = await c.query<{ risky: string[] }>(
    `SELECT array_remove(ARRAY[
       CASE WHEN rolsuper THEN 'superuser' END,
       CASE WHEN pg_has_role(oid, 'pg_execute_server_program', 'USAGE') THEN 'pg_execute_server_program' END,
       CASE WHEN pg_has_role(oid, 'pg_read_server_files', 'USAGE') THEN 'pg_read_server_files' END,
       CASE WHEN pg_has_role(oid, 'pg_write_server_files', 'USAGE') THEN 'pg_write_server_files' END], NULL) AS risky
       FROM pg_roles WHERE rolname = $1`,
    [role],
  );
  if (rows[0].risky.length > 0) {
    throw ApplicationFailure.nonRetryable(`restore role ${role} came out with ${rows[0].risky.join(', ')} (granted to PUBLIC?); refusing to restore as it`, 'SandboxUnsafe');
  }
  return password;
}

/** Drops the restore's role, if it is there (its database must be gone, or its objects reassigned, first). */
export async function dropRestoreRole(c: Client, role: string): Promise<void> {
  await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(role)}`);
}

export interface SandboxedArchive {
  /** The archive's list without the entries pgops runs itself: what pg_restore --use-list reads. */
  listFile: string;
  /** Run as the superuser in the restore's database before the restore. */
  extensions: string[];
  /** Run as the superuser in the restore's database after it: owners, then default privileges. */
  afterwards: string[];
}

/** Splits the archive into what the sandbox restores and what pgops runs itself, checking the latter statement by statement. */
export async function sandboxArchive(config: WorkerConfig, dumpPath: string, workspace: string, manifest: BackupManifest): Promise<SandboxedArchive> {
  const list = (await runPgTool(config, 'pg_restore', ['--list', dumpPath])).stdout.split('\n');
  const extensionLines = list.filter((line) => EXTENSION_ENTRY.test(line));
  const defaultAclLines = list.filter((line) => DEFAULT_ACL_ENTRY.test(line));
  const listFile = path.join(workspace, 'sandbox.list');
  await writeFile(listFile, `${list.filter((line) => !EXTENSION_ENTRY.test(line) && !DEFAULT_ACL_ENTRY.test(line)).join('\n')}\n`, { mode: 0o600 });
  const sqlOf = async (name: string, lines: string[], extra: string[] = []) => {
    if (lines.length === 0) return [];
    const file = path.join(workspace, name);
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    const { stdout } = await runPgTool(config, 'pg_restore', [...extra, `--use-list=${file}`, '--file=-', dumpPath]);
    return splitStatements(stdout).filter((statement) => !SESSION.test(statement));
  };
  const allowed = manifest.requires ? new Set(manifest.requires.extensions.map((e) => e.name)) : undefined;
  const extensions = (await sqlOf('extensions.list', extensionLines)).flatMap((statement) => {
    if (COMMENT_ON_EXTENSION.test(statement)) return []; // CREATE EXTENSION sets the extension's own comment
    const match = CREATE_EXTENSION.exec(statement);
    if (!match || (allowed && !allowed.has(unquote(match[1])))) throw refused('among the extensions', statement);
    return [statement];
  });
  // The sandbox's own statements stay with it; only the owner changes are taken, each checked.
  // Every entry but the rows themselves (large objects' metadata, with their owners, sits in the data section).
  const definitions = list.filter((line) => /^\d+;/.test(line) && !EXTENSION_ENTRY.test(line) && !ROWS_ENTRY.test(line));
  const owners = (await sqlOf('definitions.list', definitions)).filter((statement) => {
    if (!LOOKS_LIKE_OWNER_CHANGE.test(statement)) return false;
    if (!ALTER_OWNER.test(statement)) throw refused('among the owner changes', statement);
    return true;
  });
  const defaultAcls = (await sqlOf('default-acl.list', defaultAclLines)).map((statement) => {
    if (!DEFAULT_ACL.test(statement)) throw refused('among the default privileges', statement);
    return statement;
  });
  return { listFile, extensions, afterwards: [...owners, ...defaultAcls] };
}

function refused(where: string, statement: string) {
  return ApplicationFailure.nonRetryable(
    `unexpected statement ${where} of the backup, which pgops would have to run as a superuser (refused, not run): ${statement.slice(0, 200)}`,
    'BackupUnexpected',
  );
}
