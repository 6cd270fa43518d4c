// The database side of a guarded restore. Everything happens in a staging database first; the
// target is touched only by the swap, which is two renames in one transaction.
import { readFile, statfs } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import type { TargetConfig, WorkerConfig } from '../../shared/config';
import type { BackupManifest } from '../../backup/manifest';
import type { RestoreMode, RestorePlan, StagingRestoreResult, SwapResult } from '../contract';
import type { ApprovalPolicy } from '../../shared/approval';
import { heartbeatWhile, killOnCancel } from '../../shared/heartbeat';
import { ensureFetched, restoreWorkspace } from './fetchBackup';
import { databasePropertyStatements } from './databaseProperties';
import { serverLacks } from '../../backup/activities/databaseRequirements';
import { createRoles, roleStatements } from './missingRoles';
import { createRestoreRole, dropRestoreRole, restoreRoleName, sandboxArchive } from '../../shared/postgres/sandboxRestore';
import { inOneTransaction, resolveTarget, withTarget } from '../../shared/postgres/connection';
import { runPgTool } from '../../shared/postgres/pgTools';
import { countRows, listTables } from '../../shared/postgres/rowCounts';
import { compareCounts } from '../../backup/activities/verifyByTestRestore';

export interface PlanRestoreInput {
  restoreId: string;
  target: string;
  mode: RestoreMode;
  newDatabase?: string;
  /** UTC "YYYYMMDDHHMMSS" from the workflow, for names that are the same on every retry. */
  stamp: string;
  manifest: BackupManifest;
}

export interface StagingInput {
  restoreId: string;
  target: string;
  manifest: BackupManifest;
  /** Mode `replace`: the database being replaced, whose owner the staging copy takes. */
  replacing?: string;
  jobs: number;
}

export interface SwapInput {
  restoreId: string;
  target: string;
  mode: RestoreMode;
  database: string;
  stamp: string;
  tableCount: number;
}

const MAX_NAME = 63;
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The staging copy's name, the same on every retry of the restore. */
export function stagingDatabaseName(restoreId: string): string {
  return `pgops_restore_${restoreId.replace(/-/g, '_')}`.slice(0, MAX_NAME);
}

export function preRestoreDatabaseName(database: string, stamp: string): string {
  const suffix = `_pre_restore_${stamp}`;
  return database.slice(0, MAX_NAME - suffix.length) + suffix;
}

/** The server's maintenance database: databases are created, renamed and dropped from there. */
function maintenance(target: TargetConfig): TargetConfig {
  return { ...target, database: 'postgres' };
}

async function databaseExists(c: Client, name: string): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rowCount === 1;
}

export function restoreActivities(config: WorkerConfig) {
  /** Who may approve, once the target is known to be configured: an unknown one fails before anything is fetched. */
  async function restorePolicy(input: { target: string }): Promise<ApprovalPolicy> {
    resolveTarget(config, input.target);
    return config.restore;
  }

  async function planRestore(input: PlanRestoreInput): Promise<RestorePlan> {
    const target = resolveTarget(config, input.target);
    const database = input.mode === 'replace' ? target.database : (input.newDatabase ?? `${target.database}_restored_${input.stamp}`.slice(0, MAX_NAME));
    if (!DATABASE_NAME.test(database)) {
      throw ApplicationFailure.nonRetryable(`"${database}" is not a database name pgops will create (lowercase letters, digits, _; at most 63)`, 'BadInput');
    }
    const { manifest } = input;
    const plan: RestorePlan = {
      backupId: manifest.backupId,
      backupTakenAt: manifest.finishedAt,
      backupAgeSeconds: Math.round((Date.now() - Date.parse(manifest.finishedAt)) / 1000),
      backupSizeBytes: manifest.sizeBytes,
      target: input.target,
      mode: input.mode,
      database,
      stagingDatabase: stagingDatabaseName(input.restoreId),
      backupRowCounts: manifest.rowCounts,
      differences: [],
    };
    await withTarget(maintenance(target), async (c) => {
      const exists = await databaseExists(c, database);
      if (input.mode === 'new-database' && exists) {
        throw ApplicationFailure.nonRetryable(`database ${database} already exists on target ${input.target}'s server; choose another --new-database`, 'RestoreRefused');
      }
      if (input.mode === 'replace' && !exists) {
        throw ApplicationFailure.nonRetryable(
          `target ${input.target}'s database ${database} does not exist, so there is nothing to replace; restore with mode new-database --new-database ${database}`,
          'RestoreRefused',
        );
      }
      plan.lacks = await serverLacks(c, manifest);
      plan.lacks.notes.push(await stagingDiskNote(target, manifest));
      if (plan.lacks.refusals.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `target ${input.target}'s server cannot take backup ${manifest.backupId}, nothing was created: ${plan.lacks.refusals.join('; ')}`,
          'TargetLacks',
        );
      }
      if (input.mode === 'replace') {
        const { rows } = await c.query<{ size: string; connections: string }>(
          `SELECT pg_database_size($1) AS size,
                  (SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()) AS connections`,
          [database],
        );
        const rowCounts = await withTarget(target, countRows);
        plan.current = { sizeBytes: Number(rows[0].size), activeConnections: Number(rows[0].connections), rowCounts };
        plan.differences = compareCounts(rowCounts, manifest.rowCounts).map((d) => d.replace('manifest', 'now').replace('restored', 'backup'));
      }
    });
    return plan;
  }

  /**
   * pg_restore into a fresh staging database, as a role of its own that cannot reach the server's
   * files or programs (shared/postgres/sandboxRestore.ts); then the manifest's row counts must match, and pgops
   * gives every object its owner back.
   */
  async function restoreIntoStaging(input: StagingInput): Promise<StagingRestoreResult> {
    const target = resolveTarget(config, input.target);
    const staging = stagingDatabaseName(input.restoreId);
    const role = restoreRoleName(staging);
    // Heartbeats start first: re-checking (or fetching again) a large backup takes longer than the heartbeat timeout.
    const heartbeats = heartbeatWhile(() => ({ stage: 'restore', database: staging }));
    const started = Date.now();
    try {
      const dumpPath = await ensureFetched(config, input.restoreId, input.manifest);
      const archive = await sandboxArchive(config, dumpPath, restoreWorkspace(config, input.restoreId), input.manifest);
      let owner = '';
      let password = '';
      await withTarget(maintenance(target), async (c) => {
        // A copy left by a killed attempt (its pg_restore may still be running) goes first, then its role.
        await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(staging)} WITH (FORCE)`);
        owner = (input.replacing ? await databaseOwner(c, input.replacing) : undefined) ?? (await c.query<{ me: string }>('SELECT current_user AS me')).rows[0].me;
        password = await createRestoreRole(c, role);
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(staging)} TEMPLATE template0 OWNER ${c.escapeIdentifier(role)}`);
      });
      const asSuperuser = { ...target, database: staging };
      const asSandbox = { ...target, database: staging, user: role, password };
      await withTarget(asSuperuser, (c) => inOneTransaction(c, archive.extensions)).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(`creating the backup's extensions in ${staging} failed: ${err.message}`, 'RestoreFailed');
      });
      const restore = runPgTool(
        config,
        'pg_restore',
        ['--exit-on-error', '--no-owner', `--jobs=${input.jobs}`, `--use-list=${archive.listFile}`, `--dbname=${staging}`, dumpPath],
        asSandbox,
      );
      killOnCancel(restore);
      try {
        await restore;
      } catch (err) {
        const stderr = (err as { stderr?: string }).stderr ?? (err as Error).message;
        throw ApplicationFailure.nonRetryable(
          `pg_restore of backup ${input.manifest.backupId} into ${staging} (as restore role ${role}, which may not reach the server's files or programs) failed: ` +
            `${stderr.trim().split('\n').slice(0, 3).join(' | ')}` +
            (/role .* does not exist/.test(stderr) ? ` (a role the backup did not record as needed; create it on the target's server first)` : ''),
          'RestoreFailed',
        );
      }
      // Counted as the restore role too: the superuser reads the copy only once owners are set.
      const restored = await withTarget(asSandbox, countRows);
      const differences = compareCounts(input.manifest.rowCounts, restored);
      if (differences.length > 0) {
        throw ApplicationFailure.nonRetryable(`restored copy ${staging} does not match backup ${input.manifest.backupId}: ${differences.slice(0, 5).join('; ')}`, 'RestoreIncomplete');
      }
      await withTarget(asSuperuser, (c) =>
        inOneTransaction(c, [...archive.afterwards, `REASSIGN OWNED BY ${c.escapeIdentifier(role)} TO ${c.escapeIdentifier(owner)}`, `DROP OWNED BY ${c.escapeIdentifier(role)}`]),
      ).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(`giving the objects of ${staging} their owners from the backup failed: ${err.message}`, 'RestoreFailed');
      });
      await withTarget(maintenance(target), (c) => dropRestoreRole(c, role));
      // Last, so settings such as default_transaction_read_only cannot get in the way of the
      // restore itself; they belong to the database, so they move with it when it is renamed.
      await applyDatabaseProperties(target, staging, await databasePropertyStatements(config, dumpPath, input.manifest.database, staging));
      return { stagingDatabase: staging, restoreMs: Date.now() - started, tablesCompared: Object.keys(restored).length };
    } catch (err) {
      await dropStaging(target, staging).catch(() => undefined);
      throw err;
    } finally {
      heartbeats.stop();
    }
  }

  /**
   * Creates the roles the plan found missing, from the backup's globals; roles that exist now
   * (created by an earlier attempt) are left alone. Returns every role that was missing.
   */
  async function createMissingRoles(input: { restoreId: string; target: string; manifest: BackupManifest; roles: string[] }): Promise<string[]> {
    const target = resolveTarget(config, input.target);
    await ensureFetched(config, input.restoreId, input.manifest);
    const globals = await readFile(path.join(restoreWorkspace(config, input.restoreId), input.manifest.globalsFile), 'utf8');
    await withTarget(maintenance(target), async (c) => {
      const { rows } = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [input.roles]);
      const stillMissing = input.roles.filter((role) => !rows.some((r) => r.rolname === role));
      if (stillMissing.length > 0) await createRoles(c, roleStatements(globals, stillMissing));
    });
    return input.roles;
  }

  async function applyDatabaseProperties(target: TargetConfig, database: string, statements: string[]): Promise<void> {
    await withTarget(maintenance(target), (c) =>
      inOneTransaction(c, statements).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(`the backup's database properties could not be set on ${database}: ${err.message}`, 'DatabasePropertiesFailed');
      }),
    );
  }

  /** Undoes the swap's first step after a failure: the database under `database` accepts connections again. */
  async function reopenDatabase(input: { target: string; database: string }): Promise<void> {
    await withTarget(maintenance(resolveTarget(config, input.target)), async (c) => {
      if (await databaseExists(c, input.database)) await c.query(`ALTER DATABASE ${c.escapeIdentifier(input.database)} ALLOW_CONNECTIONS true`);
    });
  }

  async function dropStagingDatabase(input: { restoreId: string; target: string }): Promise<void> {
    await dropStaging(resolveTarget(config, input.target), stagingDatabaseName(input.restoreId));
  }

  /** The staging database, and with it what its restore role owned, then the role. */
  async function dropStaging(target: TargetConfig, staging: string): Promise<void> {
    await withTarget(maintenance(target), async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(staging)} WITH (FORCE)`);
      await dropRestoreRole(c, restoreRoleName(staging));
    });
  }

  /**
   * Puts the restored copy in place. Mode `replace`: refuse new connections to the target,
   * terminate the ones it has, then rename target → pre-restore and staging → target in one
   * transaction. A retry finds either nothing done or everything done, never half.
   */
  async function swapIntoPlace(input: SwapInput): Promise<SwapResult> {
    // Beats every second: a worker that dies with the target closed is noticed, and the swap
    // retried elsewhere, within the workflow's few-second heartbeat timeout.
    const heartbeats = heartbeatWhile(() => ({ stage: 'swap', database: input.database }), { keepAliveMs: 1_000 });
    try {
      return await swap(input);
    } finally {
      heartbeats.stop();
    }
  }

  /** A retry finds the target closed by a dead attempt: it closes it again and finishes the swap. */
  async function swap(input: SwapInput): Promise<SwapResult> {
    const target = resolveTarget(config, input.target);
    const staging = stagingDatabaseName(input.restoreId);
    const { database } = input;
    const result = await withTarget(maintenance(target), async (c) => {
      const id = (name: string) => c.escapeIdentifier(name);
      const stagingExists = await databaseExists(c, staging);
      if (input.mode === 'new-database') {
        if (!stagingExists && (await databaseExists(c, database))) return { database, downtimeMs: 0, terminatedConnections: 0 };
        await c.query(`ALTER DATABASE ${id(staging)} RENAME TO ${id(database)}`);
        return { database, downtimeMs: 0, terminatedConnections: 0 };
      }
      const preRestore = preRestoreDatabaseName(database, input.stamp);
      if (!stagingExists) {
        if ((await databaseExists(c, preRestore)) && (await databaseExists(c, database))) {
          return { database, preRestoreDatabase: preRestore, downtimeMs: 0, terminatedConnections: 0 }; // swapped by an earlier attempt
        }
        throw ApplicationFailure.nonRetryable(`staging database ${staging} is gone; nothing was swapped`, 'StagingMissing');
      }
      const started = Date.now();
      await c.query(`ALTER DATABASE ${id(database)} ALLOW_CONNECTIONS false`);
      try {
        const terminated = await terminateConnections(c, database);
        await c.query('BEGIN');
        await c.query(`ALTER DATABASE ${id(database)} RENAME TO ${id(preRestore)}`);
        await c.query(`ALTER DATABASE ${id(staging)} RENAME TO ${id(database)}`);
        await c.query('COMMIT');
        // The restored copy was created accepting connections; the old one stays closed so nothing writes to it by mistake.
        return { database, preRestoreDatabase: preRestore, downtimeMs: Date.now() - started, terminatedConnections: terminated };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        await c.query(`ALTER DATABASE ${id(database)} ALLOW_CONNECTIONS true`).catch(() => undefined);
        throw err;
      }
    });
    await verifyInPlace(target, database, input.tableCount);
    return result;
  }

  /** The database now answers under its name and holds as many tables as the backup. */
  async function verifyInPlace(target: TargetConfig, database: string, tableCount: number): Promise<void> {
    const tables = await withTarget({ ...target, database }, async (c) => (await listTables(c)).length);
    if (tables !== tableCount) {
      throw ApplicationFailure.nonRetryable(`after the swap ${database} has ${tables} tables, the backup had ${tableCount}`, 'SwapUnverified');
    }
  }

  return { restorePolicy, planRestore, restoreIntoStaging, createMissingRoles, dropStagingDatabase, reopenDatabase, swapIntoPlace };
}

/** Free disk where the staging copy will be written, when pgops can see the target's data directory. */
async function stagingDiskNote(target: TargetConfig, manifest: BackupManifest): Promise<string> {
  if (!target.server) return `free disk on ${target.name}'s server not checked (no server control); the staging copy needs about ${manifest.databaseSizeBytes} bytes`;
  const fs = await statfs(target.server.dataDir);
  const free = Number(fs.bavail) * Number(fs.bsize);
  if (free < manifest.databaseSizeBytes) {
    throw ApplicationFailure.nonRetryable(
      `target ${target.name}'s data directory has ${free} bytes free, the staging copy of backup ${manifest.backupId} needs about ${manifest.databaseSizeBytes}; nothing was created`,
      'TargetLacks',
    );
  }
  return `${free} bytes free on ${target.name}'s data directory for a staging copy of about ${manifest.databaseSizeBytes}`;
}

async function databaseOwner(c: Client, database: string): Promise<string | undefined> {
  const { rows } = await c.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [database]);
  return rows[0]?.owner;
}

/** Terminates every session on the database and waits until they are gone (at most ~30 s). */
async function terminateConnections(c: Client, database: string): Promise<number> {
  let terminated = 0;
  for (let attempt = 0; attempt < 30; attempt++) {
    const { rows } = await c.query<{ n: string; left: string }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 1000)) AS n, count(*) AS left
         FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [database],
    );
    terminated += Number(rows[0].n);
    if (Number(rows[0].left) === 0) return terminated;
  }
  throw ApplicationFailure.retryable(`sessions on ${database} would not terminate`, 'SessionsRemain');
}

