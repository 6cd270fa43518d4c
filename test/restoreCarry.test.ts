// A restore brings back the whole database, also onto a brand-new server: a source database built
// to be hard to carry (identifiers with spaces, mixed case and non-ASCII letters, enums, domains,
// partitioned and unlogged tables, a materialized view, identity columns and odd sequences, large
// objects, a 1 MB bytea, extensions, comments and grants everywhere, database-level settings) is
// backed up from the stack's primary and restored onto a server the test initialises (port 26180,
// no application roles), and back over itself in replace mode. The fingerprint compares schema
// (with owners and privileges), rows, content, sequences, large objects and the database's own
// properties, and the roles.
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import execa from 'execa';
import { withTarget } from '../src/shared/postgres/connection';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { decideRestore, restoreStatus, startBackup, startRestore } from '../src/client';
import { loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../src/shared/config';
import type { GuardedRestoreInput } from '../src/restore/contract';
import { content } from './support/databaseFingerprint';
import { stackEnv, withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

jest.setTimeout(240_000);

// PGOPS_TEST_FRESH_PORT moves it when another run of this file may hold the port.
const FRESH_PORT = Number(process.env.PGOPS_TEST_FRESH_PORT ?? 26180);
const SOURCE_DB = `carry_src_${process.pid}`;
const ROLES = ['App User ü', 'Leser Mixed'];
const freshRoot = `/var/lib/pgops/test-carry-${process.pid}`;
const freshDir = path.join(freshRoot, 'fresh');
let config: WorkerConfig;
let source: TargetConfig;
let fresh: TargetConfig;
let backupId: string;

const asServerUser = (program: string, args: string[]) => execa('runuser', ['-u', 'pgops', '--', path.join(config.pgBinDir, program), ...args], { all: true });

/** The hard-to-carry database, owned partly by application roles. */
const SOURCE_SQL = [
  `DO $$ BEGIN
     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'App User ü') THEN CREATE ROLE "App User ü" LOGIN; END IF;
     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'Leser Mixed') THEN CREATE ROLE "Leser Mixed" NOLOGIN; END IF;
   END $$`,
  `ALTER ROLE "App User ü" SET statement_timeout = '5s'`,
  `GRANT "Leser Mixed" TO "App User ü"`,
  `CREATE EXTENSION vector`,
  `CREATE EXTENSION pg_trgm`,
  `CREATE SCHEMA "Spiel Daten" AUTHORIZATION "App User ü"`,
  `CREATE TYPE "Spiel Daten"."Schwierigkeit" AS ENUM ('leicht', 'mittel', 'schwer')`,
  `CREATE DOMAIN "Spiel Daten".punkte AS int CHECK (VALUE >= 0)`,
  `CREATE TABLE "Spiel Daten"."Fragen ü" (
     id int GENERATED ALWAYS AS IDENTITY (START WITH 17 INCREMENT BY 5) PRIMARY KEY,
     "Antwort Text" text NOT NULL, "Stufe" "Spiel Daten"."Schwierigkeit", p "Spiel Daten".punkte, emb vector(3), blob bytea)`,
  `INSERT INTO "Spiel Daten"."Fragen ü" ("Antwort Text", "Stufe", p, emb)
     SELECT 'Frage ' || g || ' — Größe', (ARRAY['leicht','mittel','schwer'])[1 + g % 3]::"Spiel Daten"."Schwierigkeit", g, ARRAY[g, g * 2, g * 3]::vector
       FROM generate_series(1, 300) g`,
  `UPDATE "Spiel Daten"."Fragen ü" SET blob = decode(repeat(md5('big'), 32768), 'hex') WHERE id = 17`,
  `ALTER TABLE "Spiel Daten"."Fragen ü" OWNER TO "App User ü"`,
  `CREATE INDEX "Fragen trgm" ON "Spiel Daten"."Fragen ü" USING gin ("Antwort Text" gin_trgm_ops)`,
  `CREATE TABLE matches (id bigint, played date NOT NULL, score int) PARTITION BY RANGE (played)`,
  `CREATE TABLE matches_2025 PARTITION OF matches FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
  `CREATE TABLE matches_2026 PARTITION OF matches FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
  `INSERT INTO matches SELECT g, date '2025-06-01' + g, g % 100 FROM generate_series(1, 400) g`,
  `CREATE UNLOGGED TABLE "Cache" (k text PRIMARY KEY, v text)`,
  `INSERT INTO "Cache" SELECT 'k' || g, repeat('v', g) FROM generate_series(1, 50) g`,
  `CREATE MATERIALIZED VIEW "Spiel Daten"."Statistik" AS SELECT "Stufe", count(*) AS n FROM "Spiel Daten"."Fragen ü" GROUP BY 1`,
  `CREATE SEQUENCE "odd Seq" START 7 INCREMENT 3`,
  `SELECT setval('"odd Seq"', 4242, false)`,
  `SELECT lo_from_bytea(424242, 'hello large object')`,
  `SELECT lo_from_bytea(424243, decode(repeat(md5('lo'), 4096), 'hex'))`,
  `ALTER LARGE OBJECT 424242 OWNER TO "App User ü"`,
  `GRANT SELECT ON LARGE OBJECT 424243 TO "Leser Mixed"`,
  `COMMENT ON SCHEMA "Spiel Daten" IS 'Spiel — Daten'`,
  `COMMENT ON TABLE "Spiel Daten"."Fragen ü" IS 'Fragen mit Ümlaut'`,
  `COMMENT ON COLUMN "Spiel Daten"."Fragen ü"."Antwort Text" IS 'die Antwort'`,
  `COMMENT ON TYPE "Spiel Daten"."Schwierigkeit" IS 'wie schwer'`,
  `GRANT USAGE ON SCHEMA "Spiel Daten" TO "Leser Mixed"`,
  `GRANT SELECT ON ALL TABLES IN SCHEMA "Spiel Daten" TO "Leser Mixed"`,
  `GRANT UPDATE ("Antwort Text") ON "Spiel Daten"."Fragen ü" TO "Leser Mixed"`,
  `GRANT SELECT ON matches TO "App User ü"`,
];

/** The database's own properties: only ALTER DATABASE can set them, so they need the database's name. */
function databaseSql(db: string): string[] {
  return [
    `ALTER DATABASE ${db} SET timezone TO 'Asia/Seoul'`,
    `ALTER DATABASE ${db} SET search_path TO "Spiel Daten", public`,
    `ALTER ROLE "Leser Mixed" IN DATABASE ${db} SET work_mem TO '8MB'`,
    `ALTER DATABASE ${db} CONNECTION LIMIT 50`,
    `REVOKE CONNECT ON DATABASE ${db} FROM PUBLIC`,
    `GRANT CONNECT ON DATABASE ${db} TO "App User ü"`,
    `COMMENT ON DATABASE ${db} IS 'CS Arena — zum Mitnehmen'`,
  ];
}

interface WholeFingerprint {
  schema: string;
  content: Record<string, string>;
  sequences: unknown[];
  largeObjects: unknown[];
  database: unknown;
}

/** Everything a restore must carry, as seen from inside the database and from its server (ACL items in a set's order). */
async function wholeFingerprint(target: TargetConfig): Promise<WholeFingerprint> {
  const { stdout } = await runPgTool(config, 'pg_dump', ['--schema-only'], target);
  const schema = stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line) && !line.startsWith('--')).join('\n');
  return withTarget(target, async (c) => ({
    schema,
    content: await content(c),
    sequences: (await c.query(`SELECT schemaname, sequencename, last_value, start_value, increment_by FROM pg_sequences ORDER BY 1, 2`)).rows,
    largeObjects: (
      await c.query(
        `SELECT m.oid::bigint AS oid, pg_get_userbyid(m.lomowner) AS owner, (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(m.lomacl) a) AS acl, md5(lo_get(m.oid)) AS sum
           FROM pg_largeobject_metadata m ORDER BY 1`,
      )
    ).rows,
    database: (
      await c.query(
        `SELECT pg_get_userbyid(d.datdba) AS owner, d.datconnlimit, (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a) AS acl, shobj_description(d.oid, 'pg_database') AS comment,
                (SELECT array_agg(coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '*') || ':' || array_to_string(s.setconfig, ',') ORDER BY 1)
                   FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) AS settings
           FROM pg_database d WHERE d.datname = current_database()`,
      )
    ).rows[0],
  }));
}

/** The application roles as the server defines them: attributes, settings, memberships. */
async function roles(target: TargetConfig): Promise<unknown[]> {
  return withTarget({ ...target, database: 'postgres' }, async (c) =>
    (
      await c.query(
        `SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolconfig,
                array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of
           FROM pg_roles r WHERE r.rolname = ANY($1) ORDER BY 1`,
        [ROLES],
      )
    ).rows,
  );
}

async function restoreAndApprove(client: Client, taskQueue: string, input: Partial<GuardedRestoreInput>) {
  const handle = await startRestore(client, { taskQueue, workflowId: `carry-${randomUUID()}` }, {
    target: 'fresh', from: 'carrysrc', backup: backupId, mode: 'new-database', requestedBy: 'alice', ...input,
  } as GuardedRestoreInput);
  let status = await restoreStatus(client, handle.workflowId);
  await waitUntil('the plan', async () => ['awaiting-approval', 'failed'].includes((status = await restoreStatus(client, handle.workflowId)).stage), 120_000);
  if (status.stage === 'failed') return { handle, status, result: await handle.result().catch((e: Error) => e) };
  await decideRestore(client, handle.workflowId, 'approve', { approver: 'bob', reason: 'carry it over' });
  return { handle, status, result: await handle.result() };
}

beforeAll(async () => {
  const base = stackEnv() as Record<string, string>;
  const primaryUrl = new URL(base.PGOPS_TARGET_PRIMARY_URL);
  const url = (port: number, db: string) => `postgres://${primaryUrl.username}:${primaryUrl.password}@127.0.0.1:${port}/${db}`;
  config = loadWorkerConfig({
    ...base,
    PGOPS_ENV_FILE: '/dev/null',
    PGOPS_TARGETS: 'primary,standby,verify,carrysrc,fresh',
    PGOPS_TARGET_CARRYSRC_URL: url(Number(primaryUrl.port), SOURCE_DB),
    PGOPS_TARGET_FRESH_URL: url(FRESH_PORT, SOURCE_DB),
    PGOPS_TARGET_FRESH_DATA_DIR: freshDir,
    PGOPS_TARGET_FRESH_OS_USER: 'pgops',
  });
  source = config.targets.carrysrc;
  fresh = config.targets.fresh;
  await withTarget({ ...source, database: 'postgres' }, (c) => c.query(`CREATE DATABASE ${SOURCE_DB}`));
  await withTarget(source, async (c) => {
    for (const sql of [...SOURCE_SQL, ...databaseSql(SOURCE_DB)]) await c.query(sql);
  });
  // A brand-new server: initdb's superuser only, reached over loopback.
  rmSync(freshRoot, { recursive: true, force: true });
  mkdirSync(freshRoot, { recursive: true });
  await execa('chown', ['pgops', freshRoot]);
  await asServerUser('initdb', ['-D', freshDir, '-U', primaryUrl.username, '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C']);
  await asServerUser('pg_ctl', ['-D', freshDir, '-l', `${freshDir}.log`, '-o', `-p ${FRESH_PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`, '-w', 'start']);
  backupId = await withWorker(config, async ({ client, taskQueue }) =>
    (await (await startBackup(client, { taskQueue, workflowId: `carry-backup-${randomUUID()}` }, { target: 'carrysrc', verify: 'list' })).result()).backupId,
  );
}, 240_000);

afterAll(async () => {
  await asServerUser('pg_ctl', ['-D', freshDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
  rmSync(freshRoot, { recursive: true, force: true });
  await withTarget({ ...source, database: 'postgres' }, async (c) => {
    for (const row of (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${SOURCE_DB}%`])).rows) {
      await c.query(`DROP DATABASE ${c.escapeIdentifier(row.datname)} WITH (FORCE)`);
    }
  });
});

test('an extension the new server cannot provide: refused at plan time, nothing created', async () => {
  await withTarget({ ...fresh, database: 'postgres' }, async (c) => {
    await c.query(`ALTER SYSTEM SET extension_control_path = '/nonexistent'`);
    await c.query('SELECT pg_reload_conf()');
  });
  try {
    const outcome = await withWorker(config, ({ client, taskQueue }) => restoreAndApprove(client, taskQueue, {}));
    expect(outcome.status.stage).toBe('failed');
    expect(((outcome.result as Error).cause as Error | undefined)?.message ?? '').toMatch(/cannot take backup .*extension pg_trgm .* is not available on the server.*extension vector .* is not available/);
    expect(await roles(fresh)).toEqual([]);
    const databases = await withTarget({ ...fresh, database: 'postgres' }, async (c) => (await c.query(`SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'pgops_restore_%' OR datname = $1`, [SOURCE_DB])).rows[0].n);
    expect(databases).toBe(0);
  } finally {
    await withTarget({ ...fresh, database: 'postgres' }, async (c) => {
      await c.query('ALTER SYSTEM RESET extension_control_path');
      await c.query('SELECT pg_reload_conf()');
    });
  }
});

test('onto a freshly initialised server: exactly the missing roles are created after approval, and the database arrives whole', async () => {
  const { status, result } = await withWorker(config, ({ client, taskQueue }) => restoreAndApprove(client, taskQueue, { newDatabase: SOURCE_DB }));
  expect(status.plan?.lacks?.missingRoles.sort()).toEqual([...ROLES].sort());
  expect(result).toMatchObject({ outcome: 'restored', database: SOURCE_DB });
  expect((result as { createdRoles?: string[] }).createdRoles?.sort()).toEqual([...ROLES].sort());
  expect(await roles(fresh)).toEqual(await roles(source));
  expect(await wholeFingerprint(fresh)).toEqual(await wholeFingerprint(source));
});

test('replace keeps the database-level settings, grants, comment, owner and connection limit', async () => {
  const before = await wholeFingerprint(source);
  await withTarget(source, (c) => c.query(`UPDATE "Spiel Daten"."Fragen ü" SET "Antwort Text" = 'changed' WHERE id < 100`));
  const { result } = await withWorker(config, ({ client, taskQueue }) =>
    restoreAndApprove(client, taskQueue, { target: 'carrysrc', from: 'carrysrc', mode: 'replace' }),
  );
  expect(result).toMatchObject({ outcome: 'restored', database: SOURCE_DB });
  expect((result as { createdRoles?: string[] }).createdRoles).toBeUndefined();
  expect(await wholeFingerprint(source)).toEqual(before);
});
