// What a database needs of the server it is restored on: the roles it refers to and the
// extensions it uses, read from the catalogs at dump time, and checked against a target's server
// by the restore plan before anything is created there.
import type { Client } from 'pg';
import type { BackupManifest, DatabaseRequirements } from '../manifest';
import type { ServerLacks } from '../../restore/contract';

/**
 * pg_shdepend holds every owner and grantee of the database and its objects, except the
 * bootstrap superuser (pinned, never recorded): schema and relation owners and the database's
 * own owner and per-role settings are added for it.
 */
const REFERENCED_ROLES_SQL = `
  WITH db AS (SELECT oid, datdba FROM pg_database WHERE datname = current_database()),
  user_ns AS (SELECT oid, nspowner FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema')
  SELECT rolname FROM pg_roles WHERE oid IN (
    SELECT refobjid FROM pg_shdepend, db
     WHERE refclassid = 'pg_authid'::regclass
       AND (dbid = db.oid OR (dbid = 0 AND classid = 'pg_database'::regclass AND objid = db.oid))
    UNION SELECT datdba FROM db
    UNION SELECT setrole FROM pg_db_role_setting, db WHERE setdatabase = db.oid AND setrole <> 0
    UNION SELECT nspowner FROM user_ns
    UNION SELECT relowner FROM pg_class WHERE relnamespace IN (SELECT oid FROM user_ns)
  ) ORDER BY 1`;

export async function readRequirements(client: Client): Promise<DatabaseRequirements> {
  const roles = await client.query<{ rolname: string }>(REFERENCED_ROLES_SQL);
  const extensions = await client.query<{ name: string; version: string }>('SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY 1');
  return { roles: roles.rows.map((r) => r.rolname), extensions: extensions.rows };
}

function majorOf(version: string): number {
  return parseInt(version, 10);
}

/** Compares a backup's requirements with the server `client` is connected to. */
export async function serverLacks(client: Client, manifest: BackupManifest): Promise<ServerLacks> {
  const lacks: ServerLacks = { missingRoles: [], refusals: [], notes: [] };
  const { rows: server } = await client.query<{ version: string }>(`SELECT current_setting('server_version') AS version`);
  if (majorOf(server[0].version) < majorOf(manifest.serverVersion)) {
    lacks.refusals.push(`the server runs PostgreSQL ${server[0].version}, older than the backup's ${manifest.serverVersion}: restore onto PostgreSQL ${majorOf(manifest.serverVersion)} or later`);
  }
  if (!manifest.requires) {
    lacks.notes.push(`backup ${manifest.backupId} predates recorded requirements: roles and extensions were not checked`);
    return lacks;
  }
  const { rows: present } = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [manifest.requires.roles]);
  const have = new Set(present.map((r) => r.rolname));
  lacks.missingRoles = manifest.requires.roles.filter((role) => !have.has(role));
  const names = manifest.requires.extensions.map((e) => e.name);
  const { rows: available } = await client.query<{ name: string; versions: string[] }>(
    'SELECT name, array_agg(version ORDER BY version) AS versions FROM pg_available_extension_versions WHERE name = ANY($1) GROUP BY name',
    [names],
  );
  const versions = new Map(available.map((a) => [a.name, a.versions]));
  for (const { name, version } of manifest.requires.extensions) {
    const offered = versions.get(name);
    if (!offered) lacks.refusals.push(`extension ${name} ${version} is not available on the server (install its package for PostgreSQL ${majorOf(server[0].version)})`);
    else if (!offered.includes(version)) lacks.notes.push(`extension ${name}: the backup has ${version}, the server offers ${offered.join(', ')}`);
  }
  return lacks;
}
