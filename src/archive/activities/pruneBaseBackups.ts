// The retention step: base backups and archived WAL outside the recovery window, by the planner
// in ../retention.ts. A backup's backup.json goes first, so a half-deleted backup is never in the
// catalog (nothing restores from it or builds on it); its other objects follow. Only the current
// root (system identifier) of the cluster is pruned; history files are never deleted.
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { WorkerConfig } from '../../shared/config';
import type { PhysicalPruneResult } from '../contract';
import { BASE_BACKUP_RECORD, baseBackupObjectKey, baseBackupPrefix, segmentName } from '../layout';
import { isDuration } from '../../shared/duration';
import { heartbeatWhile } from '../../shared/heartbeat';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { listBaseBackups, listKeys, listWalObjects } from '../catalog';
import { planPhysicalRetention } from '../retention';

export interface PruneBaseBackupsInput {
  cluster: string;
  recoveryWindow: string;
  dryRun: boolean;
  /** The window ends now; a test may pin it. */
  now?: string;
}

export function pruneBaseBackupActivities(config: WorkerConfig) {
  async function pruneBaseBackups(input: PruneBaseBackupsInput): Promise<PhysicalPruneResult> {
    if (!isDuration(input.recoveryWindow)) {
      throw ApplicationFailure.nonRetryable(`recovery window "${input.recoveryWindow}" is not a duration such as "7 days" or "36h"`, 'BadInput');
    }
    const windowStart = new Date(Date.parse(input.now ?? new Date().toISOString()) - msToNumber(input.recoveryWindow as Parameters<typeof msToNumber>[0]));
    const s3 = createS3Client(config.s3);
    let deleted = 0;
    const heartbeats = heartbeatWhile(() => ({ stage: 'prune', deletedObjects: deleted }));
    const remove = async (Key: string) => {
      await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key }));
      deleted++;
      heartbeats.progressed();
    };
    try {
      const catalog = await listBaseBackups(s3, config.s3, config.encryption, input.cluster);
      const root = catalog.at(-1)?.root;
      const base = { dryRun: input.dryRun, recoveryWindow: input.recoveryWindow, windowStart: windowStart.toISOString() };
      if (!root) return { ...base, kept: [], deletedBackups: [], deletedWalObjects: 0 };
      const backups = catalog.filter((c) => c.root === root).map((c) => c.record);
      const plan = planPhysicalRetention(backups, windowStart, await listWalObjects(s3, config.s3.bucket, root));
      if (!input.dryRun) {
        for (const backupId of plan.drop) {
          await remove(baseBackupObjectKey(root, backupId, BASE_BACKUP_RECORD));
          for (const Key of await listKeys(s3, config.s3.bucket, baseBackupPrefix(root, backupId))) await remove(Key);
        }
        for (const Key of plan.dropWal) await remove(Key);
      }
      return {
        ...base,
        kept: plan.keep,
        deletedBackups: plan.drop,
        deletedWalObjects: plan.dropWal.length,
        ...(plan.walKeptFromSegno !== undefined ? { walKeptFrom: segmentName(backups.at(-1)!.startTimeline, plan.walKeptFromSegno).slice(8) } : {}),
      };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      heartbeats.stop();
      s3.destroy();
    }
  }

  return { pruneBaseBackups };
}
