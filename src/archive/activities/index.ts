// The physical archive's activities (the WAL archive and the base backups), built from the worker's configuration.
import type { WorkerConfig } from '../../shared/config';
import type { ArchiveGap } from '../contract';
import { asArchiveFailure, WalArchiveStore } from './archiveStore';
import { discardStagedBaseBackup } from './baseBackupStaging';
import { prepareArchiveActivities } from './prepareArchive';
import { pruneBaseBackupActivities } from './pruneBaseBackups';
import { runWalArchiverActivities } from './runWalArchiver';
import { takeBaseBackupActivities } from './takeBaseBackup';
import { uploadBaseBackupActivities } from './uploadBaseBackup';
import { verifyBaseBackupActivities } from './verifyBaseBackup';
import { walChainActivities } from './walChain';

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

export function archiveActivities(config: WorkerConfig) {
  /** Writes the gap's record under <root>/gaps/ (kept for the audit); returns its key. */
  async function recordArchiveGap(input: { root: string; node: string; gap: ArchiveGap }): Promise<string> {
    const store = new WalArchiveStore(config, input.root, input.node, config.stagingDir);
    try {
      return await store.recordGap(input.gap);
    } catch (err) {
      throw asArchiveFailure(config, err);
    } finally {
      store.destroy();
    }
  }
  return {
    ...prepareArchiveActivities(config),
    ...runWalArchiverActivities(config),
    ...walChainActivities(config),
    recordArchiveGap,
  };
}
