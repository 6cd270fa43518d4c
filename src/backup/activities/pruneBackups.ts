// The prune step: remote retention by policy over the catalog, local retention by age. Only
// objects a manifest names are ever deleted, the manifest last, so an interrupted prune leaves
// the backup listed and the next run finishes it.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { planRetention, resolveRetention, RetentionInvalid } from '../retention';
import type { PruneResult, RetentionPolicy } from '../contract';
import { DUMP_DIR, DUMP_FILE, MANIFEST_FILE } from '../manifest';
import { readStagedManifest } from '../manifest/store';
import { listCatalog } from '../manifest/store';
import { RESTORE_WORKSPACE_PREFIX } from '../../restore/activities/fetchBackup';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';

export interface PruneInput {
  target: string;
  retention: Partial<RetentionPolicy>;
  dryRun: boolean;
  /** The backup this run just made; never pruned locally while its workflow may still need it. */
  currentBackupId?: string;
}

/**
 * A restore's fetched copy of a backup carries that backup's manifest, so by its finishedAt it looks
 * as old as the backup, however recently the restore began. Nothing here can tell a running restore
 * from an ended one: the restore removes its own workspace when it ends (discardFetchedBackup).
 */
function isRestoreWorkspace(name: string): boolean {
  return name.startsWith(RESTORE_WORKSPACE_PREFIX);
}

export function pruneActivities(config: WorkerConfig) {
  async function pruneBackups(input: PruneInput): Promise<PruneResult> {
    let policy: RetentionPolicy;
    try {
      policy = resolveRetention(input.retention);
    } catch (err) {
      if (err instanceof RetentionInvalid) throw ApplicationFailure.nonRetryable(err.message, 'RetentionInvalid');
      throw err;
    }
    const s3 = createS3Client(config.s3);
    try {
      // Only backups whose manifests verify count: a planted manifest can neither push real
      // backups out of retention nor lead pgops to delete the objects it names.
      const catalog = (await listCatalog(s3, config.s3, input.target, config.encryption)).filter((entry) => entry.trusted);
      const remote = planRetention(catalog, policy);
      const deletedRemote: string[] = [];
      for (const decision of input.dryRun ? [] : remote.filter((d) => !d.keep)) {
        const entry = catalog.find((c) => c.backupId === decision.backupId)!;
        for (const Key of [...entry.dataKeys, entry.globalsKey, entry.manifestKey]) {
          await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key }));
        }
        deletedRemote.push(decision.backupId);
      }
      const deletedLocal = await pruneStaging(policy.localKeepDays, input.dryRun, input.currentBackupId);
      return { dryRun: input.dryRun, remote, deletedRemote, deletedLocal };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }

  /** Deletes staged backups older than `keepDays`; a dry run only names them. */
  async function pruneStaging(keepDays: number, dryRun: boolean, currentBackupId?: string): Promise<string[]> {
    const cutoff = Date.now() - keepDays * 86_400_000;
    const names = await readdir(config.stagingDir).catch(() => [] as string[]);
    const pruned: string[] = [];
    for (const name of names) {
      if (name === currentBackupId || isRestoreWorkspace(name)) continue;
      const dir = path.join(config.stagingDir, name);
      const files = await readdir(dir).catch(() => [] as string[]);
      if (![MANIFEST_FILE, DUMP_FILE, DUMP_DIR].some((f) => files.includes(f))) continue; // not a staged backup
      const manifest = await readStagedManifest(config.stagingDir, name).catch(() => undefined);
      const when = manifest ? Date.parse(manifest.finishedAt) : (await stat(dir)).mtimeMs;
      if (when >= cutoff) continue;
      if (!dryRun) await rm(dir, { recursive: true, force: true });
      pruned.push(name);
    }
    return pruned;
  }

  return { pruneBackups };
}
