// The verify step: pg_verifybackup checks every file of the staged backup against the SHA-256 in
// its backup_manifest, inside the compressed tars, before anything goes up. -n: pg_waldump cannot
// read WAL from a tar; the streamed WAL is checked on restore, and the archive by its own audit.
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { heartbeatDuring, killOnCancel } from '../../shared/heartbeat';
import { runPgTool } from '../../shared/postgres/pgTools';
import { baseBackupStaging, requireStagedBaseBackup } from './baseBackupStaging';

export function verifyBaseBackupActivities(config: WorkerConfig) {
  async function verifyBaseBackup(input: { backupId: string }): Promise<{ verifiedAt: string; ms: number }> {
    await requireStagedBaseBackup(config.stagingDir, input.backupId);
    const { data } = baseBackupStaging(config.stagingDir, input.backupId);
    const started = Date.now();
    await heartbeatDuring(
      () => ({ stage: 'verify' }),
      async () => {
        const child = runPgTool(config, 'pg_verifybackup', ['--no-parse-wal', '--exit-on-error', '--quiet', data], undefined, { all: true, reject: false });
        killOnCancel(child);
        const result = await child;
        if (result.exitCode !== 0) {
          throw ApplicationFailure.nonRetryable(
            `staged base backup ${input.backupId} failed pg_verifybackup: ${(result.all ?? '').trim().split('\n').slice(0, 3).join('; ')}`,
            'BackupCorrupt',
          );
        }
      },
    );
    return { verifiedAt: new Date().toISOString(), ms: Date.now() - started };
  }

  return { verifyBaseBackup };
}
