// The verify step: a backup counts only once it has been restored. pg_restore --list always; by
// default a real restore into a scratch database whose row counts must equal the manifest's.
// The test restore runs as a per-verify role that cannot reach the verify server's files or
// programs (shared/postgres/sandboxRestore.ts), like a guarded restore's staging copy: an
// authentic archive can still carry SQL an app role planted, and the verify server's superuser
// would run it.
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { VerificationResult, VerifyLevel } from '../contract';
import { heartbeatWhile, killOnCancel, type Heartbeats } from '../../shared/heartbeat';
import { assertStagedDumpIntact, stagedDir } from '../stagedBackup';
import { requireStagedManifest } from '../manifest/store';
import { inOneTransaction, resolveTarget, withTarget } from '../../shared/postgres/connection';
import { runPgTool } from '../../shared/postgres/pgTools';
import { countRows } from '../../shared/postgres/rowCounts';
import { createRestoreRole, dropRestoreRole, restoreRoleName, sandboxArchive } from '../../shared/postgres/sandboxRestore';

export interface VerifyInput {
  backupId: string;
  level: VerifyLevel;
  /** Server for the scratch database, by target name (default: the worker's PGOPS_VERIFY_TARGET). */
  verifyTarget?: string;
  /** The server the backup was read from: used only when no verify server is named or configured. */
  sourceTarget: string;
}

/** What the verify step's heartbeats report. */
interface VerifyProgress {
  stage: 'verify';
  hashedBytes: number;
  restoring?: string;
}

/** A database name unique to the backup, within PostgreSQL's 63-byte limit. */
export function scratchDatabaseName(backupId: string): string {
  return `pgops_verify_${backupId.toLowerCase().replace(/[^a-z0-9]/g, '_')}`.slice(0, 63);
}

export function verifyActivities(config: WorkerConfig) {
  async function verifyByTestRestore(input: VerifyInput): Promise<VerificationResult> {
    const progress: VerifyProgress = { stage: 'verify', hashedBytes: 0 };
    const heartbeats = heartbeatWhile(() => progress);
    try {
      return await verify(input, progress, heartbeats);
    } finally {
      heartbeats.stop();
    }
  }

  async function verify(input: VerifyInput, progress: VerifyProgress, heartbeats: Heartbeats): Promise<VerificationResult> {
    const manifest = await requireStagedManifest(config.stagingDir, input.backupId);
    const file = await assertStagedDumpIntact(config.stagingDir, manifest, (bytes) => {
      progress.hashedBytes = bytes;
      heartbeats.progressed();
    });
    const tocEntries = await listArchive(file);
    const verifiedAt = () => new Date().toISOString();
    if (input.level === 'list') return { level: 'list', verifiedAt: verifiedAt(), tocEntries };

    const serverName = input.verifyTarget ?? config.verifyTarget ?? input.sourceTarget;
    const warning =
      serverName === input.sourceTarget
        ? `the test restore ran on ${serverName}, the server that was backed up (set PGOPS_VERIFY_TARGET to a server of its own to keep that work off it)`
        : undefined;
    const server = resolveTarget(config, serverName);
    const scratch = scratchDatabaseName(input.backupId);
    const role = restoreRoleName(scratch);
    // The scratch database goes before its role, which owns it; a leftover of a crashed attempt is
    // dropped first, and this one whatever happens.
    const dropScratch = () =>
      withTarget(server, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(scratch)} WITH (FORCE)`);
        await dropRestoreRole(c, role);
      });
    // The list files sandboxArchive writes name what pgops runs as the superuser: private, beside the dump.
    const workspace = await mkdtemp(path.join(stagedDir(config.stagingDir, input.backupId), 'verify-'));
    try {
      const archive = await sandboxArchive(config, file, workspace, manifest);
      await dropScratch();
      const password = await withTarget(server, async (c) => {
        const created = await createRestoreRole(c, role);
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(scratch)} TEMPLATE template0 OWNER ${c.escapeIdentifier(role)}`);
        return created;
      });
      const asSandbox = { ...server, database: scratch, user: role, password };
      await withTarget({ ...server, database: scratch }, (c) => inOneTransaction(c, archive.extensions)).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(`creating the backup's extensions in ${scratch} on ${serverName} failed: ${err.message}`, 'BackupUnrestorable');
      });
      const started = Date.now();
      const restore = runPgTool(
        config,
        'pg_restore',
        ['--exit-on-error', '--no-owner', '--no-privileges', '--jobs=2', `--use-list=${archive.listFile}`, `--dbname=${scratch}`, file],
        asSandbox,
      );
      killOnCancel(restore);
      progress.restoring = scratch;
      try {
        await restore;
      } catch (err) {
        throw ApplicationFailure.nonRetryable(
          `test restore of backup ${input.backupId} into ${scratch} on ${serverName} (as restore role ${role}, which may not reach the server's files or programs) failed: ` +
            firstLines((err as { stderr?: string }).stderr),
          'BackupUnrestorable',
        );
      }
      const restoreMs = Date.now() - started;
      // The restore role owns every object it restored (--no-owner), so it can count them all.
      const restored = await withTarget(asSandbox, countRows);
      const differences = compareCounts(manifest.rowCounts, restored);
      if (differences.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `test restore of backup ${input.backupId} does not match its manifest: ${differences.slice(0, 5).join('; ')}`,
          'BackupIncomplete',
        );
      }
      return {
        level: 'restore',
        verifiedAt: verifiedAt(),
        tocEntries,
        restoreServer: serverName,
        restoreMs,
        tablesCompared: Object.keys(manifest.rowCounts).length,
        ...(warning ? { warning } : {}),
      };
    } finally {
      await dropScratch();
      await rm(workspace, { recursive: true, force: true });
    }
  }

  async function listArchive(file: string): Promise<number> {
    try {
      const { stdout } = await runPgTool(config, 'pg_restore', ['--list', file]);
      return stdout.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(';')).length;
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `pg_restore --list cannot read ${file}: ${firstLines((err as { stderr?: string }).stderr)}`,
        'BackupCorrupt',
      );
    }
  }

  return { verifyByTestRestore };
}

export function compareCounts(expected: Record<string, number>, actual: Record<string, number>): string[] {
  const tables = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...tables]
    .filter((t) => expected[t] !== actual[t])
    .map((t) => `${t}: manifest ${expected[t] ?? 'missing'}, restored ${actual[t] ?? 'missing'}`);
}

function firstLines(text: string | undefined): string {
  return (text ?? 'no output').trim().split('\n').slice(0, 3).join(' | ');
}
