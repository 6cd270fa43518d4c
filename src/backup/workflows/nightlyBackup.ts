// nightlyBackup: the runbook that replaces `pg_dump | gzip` in cron. A backup counts only once
// it has been restored: dump → verify (test restore) → upload → prune, and a webhook on failure.
import { ApplicationFailure, patched, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { VerifyInput } from '../activities/verifyByTestRestore';
import type { Activities } from '../../activities';
import { DEFAULT_COMPRESSION, DEFAULT_FORMAT, DEFAULT_JOBS } from '../defaults';
import { resolveRetention, RetentionInvalid } from '../retention';
import { NAME_PATTERN, ROLE_TARGET } from '../../shared/targets';
import { PGOPS_BACKUP_ID, PGOPS_TARGET } from '../../shared/temporal/searchAttributes';
import type { BackupNotification, BackupProgress, NightlyBackupInput, NightlyBackupResult, UploadResult, VerificationResult } from '../contract';
import { backupActivities, newBackupId } from './backupSteps';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { backupProgressQuery } from '../contract';
import { withVerification } from '../manifest';


/** Runs that began before the upload overlapped the test restore replay the old order. */
const UPLOAD_DURING_VERIFY = 'upload-during-verify';

function validate(input: NightlyBackupInput): void {
  if (!input || typeof input.target !== 'string' || !(NAME_PATTERN.test(input.target) || ROLE_TARGET.test(input.target))) {
    throw ApplicationFailure.nonRetryable(
      `input.target must name a configured target (e.g. "primary") or a cluster role (e.g. "main:primary", "main:standby"), got ${JSON.stringify(input?.target)}`,
      'BadInput',
    );
  }
  if (input.verify !== undefined && input.verify !== 'list' && input.verify !== 'restore') {
    throw ApplicationFailure.nonRetryable(`input.verify must be "list" or "restore", got ${JSON.stringify(input.verify)}`, 'BadInput');
  }
  try {
    resolveRetention(input.retention);
  } catch (err) {
    if (err instanceof RetentionInvalid) throw ApplicationFailure.nonRetryable(err.message, 'RetentionInvalid');
    throw err;
  }
}

const { resolveClusterRole } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

export async function nightlyBackup(input: NightlyBackupInput): Promise<NightlyBackupResult> {
  validate(input);
  const { dumpDatabase, verifyByTestRestore, uploadBackup, uploadBackupData, publishManifest, discardUploadedData, pruneBackups, notifyWebhook } =
    backupActivities(input.heartbeatTimeout ?? '30 seconds', { verifyTaskQueue: input.verifyTaskQueue });
  // A cluster role follows failovers: the node serving it is read from the servers at each run,
  // and every backup of the cluster lands in one catalog named after it.
  const role = ROLE_TARGET.test(input.target) ? await resolveClusterRole(input.target) : undefined;
  const target = role?.cluster ?? input.target;
  const backupId = newBackupId(target);
  const progress: BackupProgress = { backupId, target, stage: 'starting' };
  setHandler(backupProgressQuery, () => progress);
  upsertSearchAttributes([
    { key: PGOPS_TARGET, value: target },
    { key: PGOPS_BACKUP_ID, value: backupId },
  ]);

  const notify = (n: Omit<BackupNotification, 'workflowId' | 'backupId' | 'target'>) =>
    notifyWebhook({ workflowId: workflowInfo().workflowId, backupId, target, ...n });

  /** Before UPLOAD_DURING_VERIFY: the whole upload waited for the test restore. */
  async function verifyThenUpload(verify: VerifyInput): Promise<{ verification: VerificationResult; upload: UploadResult }> {
    progress.stage = 'verify';
    const verification = await verifyByTestRestore(verify);
    progress.stage = 'upload';
    return { verification, upload: await uploadBackup({ backupId, verification }) };
  }

  /**
   * The data goes up while the test restore runs; the manifest, which puts the backup in the
   * catalog, only once verification passed. A failed verification takes its data objects away.
   */
  async function verifyWhileUploading(verify: VerifyInput): Promise<{ verification: VerificationResult; upload: UploadResult }> {
    progress.stage = 'verify';
    const [verified, uploaded] = await Promise.allSettled([verifyByTestRestore(verify), uploadBackupData({ backupId })]);
    if (verified.status === 'rejected') {
      await discardUploadedData({ backupId });
      throw verified.reason;
    }
    progress.stage = 'upload';
    if (uploaded.status === 'rejected') throw uploaded.reason;
    const manifestKey = await publishManifest({ backupId, verification: verified.value });
    return { verification: verified.value, upload: { ...uploaded.value, manifestKey } };
  }

  try {
    progress.stage = 'dump';
    const manifest = await dumpDatabase({
      target,
      node: role?.node,
      backupId,
      format: input.format ?? DEFAULT_FORMAT,
      jobs: input.jobs ?? DEFAULT_JOBS,
      compression: input.compression ?? DEFAULT_COMPRESSION,
    });
    progress.dumpedBytes = manifest.sizeBytes;

    const verify: VerifyInput = {
      backupId,
      level: input.verify ?? 'restore',
      verifyTarget: input.verifyTarget,
      // Only when no verify server is configured; a standby cannot host the scratch database.
      sourceTarget: role?.primary ?? target,
    };
    const { verification, upload } = patched(UPLOAD_DURING_VERIFY) ? await verifyWhileUploading(verify) : await verifyThenUpload(verify);
    progress.uploadedBytes = upload.bytes;

    progress.stage = 'prune';
    const prune = await pruneBackups({
      target,
      retention: input.retention ?? {},
      dryRun: input.pruneDryRun ?? false,
      currentBackupId: backupId,
    });

    progress.stage = 'done';
    if (input.notifyOnSuccess) {
      await notify({ status: 'succeeded', stage: 'done', location: `s3://${upload.bucket}/${upload.dumpKey}`, sizeBytes: upload.bytes });
    }
    return { backupId, manifest: withVerification(manifest, verification), upload, prune };
  } catch (err) {
    const failedAt = progress.stage;
    progress.stage = 'failed';
    progress.error = `${failedAt}: ${causeMessage(err)}`;
    try {
      await notify({ status: 'failed', stage: failedAt, error: causeMessage(err) });
    } catch {
      // The backup's own failure is what the operator must see; a dead webhook must not hide it.
    }
    throw ApplicationFailure.nonRetryable(`nightly backup ${backupId} of ${target} failed at ${failedAt}: ${causeMessage(err)}`, 'BackupFailed');
  }
}
