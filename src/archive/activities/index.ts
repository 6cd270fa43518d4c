// The physical archive's activities, built from the worker's configuration.
import type { WorkerConfig } from '../../shared/config';
import { discardStagedBaseBackup } from './baseBackupStaging';
import { pruneBaseBackupActivities } from './pruneBaseBackups';
import { takeBaseBackupActivities } from './takeBaseBackup';
import { uploadBaseBackupActivities } from './uploadBaseBackup';
import { verifyBaseBackupActivities } from './verifyBaseBackup';

export function baseBackupActivities(config: WorkerConfig) {
  return {
    ...takeBaseBackupActivities(config),
    ...verifyBaseBackupActivities(config),
    ...uploadBaseBackupActivities(config),
    ...pruneBaseBackupActivities(config),
    /** The staged copy, whatever became of the run: it holds every file of the cluster. */
    discardBaseBackupStaging: (input: { backupId: string }): Promise<void> => discardStagedBaseBackup(config.stagingDir, input.backupId),
  };
}
