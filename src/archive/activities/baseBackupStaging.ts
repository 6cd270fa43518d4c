// The local staging folder of one base backup: <stagingDir>/<backupId>/ holding data/ (what
// pg_basebackup wrote: base.tar.zst, pg_wal.tar.zst, a <tablespace oid>.tar.zst each,
// backup_manifest), the parent's manifest for an incremental, and staged.json, written last and
// atomically, so its presence means the staged backup is complete. Private like every staging dir.
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { PRIVATE_FILE_MODE, stagedDir } from '../../backup/stagedBackup';
import type { StagedBaseBackup } from '../contract';

const STAGED_RECORD = 'staged.json';

export function baseBackupStaging(stagingDir: string, backupId: string) {
  const dir = stagedDir(stagingDir, backupId);
  return { dir, data: path.join(dir, 'data'), parentManifest: path.join(dir, 'parent.backup_manifest'), record: path.join(dir, STAGED_RECORD) };
}

export async function writeStagedBaseBackup(stagingDir: string, staged: StagedBaseBackup): Promise<void> {
  const { record } = baseBackupStaging(stagingDir, staged.record.backupId);
  await writeFile(`${record}.tmp`, JSON.stringify(staged, null, 2), { mode: PRIVATE_FILE_MODE });
  await rename(`${record}.tmp`, record);
}

export async function readStagedBaseBackup(stagingDir: string, backupId: string): Promise<StagedBaseBackup | undefined> {
  try {
    return JSON.parse(await readFile(baseBackupStaging(stagingDir, backupId).record, 'utf8')) as StagedBaseBackup;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function requireStagedBaseBackup(stagingDir: string, backupId: string): Promise<StagedBaseBackup> {
  const staged = await readStagedBaseBackup(stagingDir, backupId);
  if (!staged) {
    throw ApplicationFailure.nonRetryable(
      `base backup ${backupId} is not staged in ${stagingDir} (no ${STAGED_RECORD}); takeBaseBackup must run first on a worker sharing this staging dir`,
      'BackupNotStaged',
    );
  }
  return staged;
}

export function discardStagedBaseBackup(stagingDir: string, backupId: string): Promise<void> {
  return rm(baseBackupStaging(stagingDir, backupId).dir, { recursive: true, force: true });
}
