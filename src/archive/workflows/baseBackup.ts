// baseBackup: a physical copy of a cluster, the start of every point-in-time recovery. Back up
// (an incremental where the server can, else full) → verify (pg_verifybackup) → upload (backup.json
// last) → retention by recovery window; the staged copy is discarded whatever happens.
import { ActivityFailure, ApplicationFailure, proxyActivities, setHandler, upsertSearchAttributes, uuid4, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { NAME_PATTERN } from '../../shared/targets';
import { isDuration } from '../../shared/duration';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { PGOPS_BACKUP_ID, PGOPS_TARGET } from '../../shared/temporal/searchAttributes';
import {
  baseBackupProgressQuery,
  DEFAULT_RECOVERY_WINDOW,
  type BaseBackupInput,
  type BaseBackupNotification,
  type BaseBackupProgress,
  type BaseBackupResult,
  type StagedBaseBackup,
} from '../contract';

function validate(input: BaseBackupInput): void {
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) {
    throw ApplicationFailure.nonRetryable(`input.cluster must name a configured cluster (e.g. "main"), got ${JSON.stringify(input?.cluster)}`, 'BadInput');
  }
  if (input.mode !== undefined && input.mode !== 'auto' && input.mode !== 'full') {
    throw ApplicationFailure.nonRetryable(`input.mode must be "auto" or "full", got ${JSON.stringify(input.mode)}`, 'BadInput');
  }
  if (input.fullEvery !== undefined && !isDuration(input.fullEvery)) {
    throw ApplicationFailure.nonRetryable(`input.fullEvery must be a duration such as "24 hours", got ${JSON.stringify(input.fullEvery)}`, 'BadInput');
  }
  if (input.recoveryWindow !== undefined && !isDuration(input.recoveryWindow)) {
    throw ApplicationFailure.nonRetryable(`input.recoveryWindow must be a duration such as "7 days", got ${JSON.stringify(input.recoveryWindow)}`, 'BadInput');
  }
}

/** "base-main-20261127T030000Z-1a2b3c": sortable, unique, the same on replay, apart from logical backup ids in staging. */
function newBaseBackupId(cluster: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `base-${cluster}-${stamp}-${uuid4().slice(0, 6)}`;
}

function incrementalNotPossible(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'IncrementalNotPossible';
}

const { resolveClusterRole } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', maximumInterval: '10 seconds', maximumAttempts: 10 },
});
const { pruneBaseBackups } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '10 seconds', maximumInterval: '2 minutes', maximumAttempts: 5 },
});
const { discardBaseBackupStaging, notifyWebhook } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', maximumAttempts: 5 },
});

export async function baseBackup(input: BaseBackupInput): Promise<BaseBackupResult> {
  validate(input);
  const heartbeatTimeout = input.heartbeatTimeout ?? '30 seconds';
  // A base backup of a few TB takes hours; heartbeats, not start-to-close, notice a dead worker.
  const { takeBaseBackup, verifyBaseBackup } = proxyActivities<Activities>({
    startToCloseTimeout: '6 hours',
    heartbeatTimeout,
    retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 5 },
  });
  // S3 outages and throttling are waited out: many attempts, capped backoff.
  const { uploadBaseBackup } = proxyActivities<Activities>({
    startToCloseTimeout: '6 hours',
    heartbeatTimeout,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 30 },
  });

  const { cluster } = input;
  const backupId = newBaseBackupId(cluster);
  const progress: BaseBackupProgress = { backupId, cluster, stage: 'starting' };
  setHandler(baseBackupProgressQuery, () => progress);
  upsertSearchAttributes([
    { key: PGOPS_TARGET, value: cluster },
    { key: PGOPS_BACKUP_ID, value: backupId },
  ]);
  const notify = (n: Omit<BaseBackupNotification, 'workflowId' | 'backupId' | 'target' | 'kind'>) =>
    notifyWebhook({ workflowId: workflowInfo().workflowId, backupId, target: cluster, kind: 'base-backup', ...n });

  try {
    // The primary now, read from the servers: a base backup follows failovers.
    const role = await resolveClusterRole(`${cluster}:primary`);
    progress.node = role.node;
    progress.stage = 'backup';
    const take = (mode: 'auto' | 'full') => takeBaseBackup({ cluster, node: role.node, backupId, mode, ...(input.fullEvery ? { fullEvery: input.fullEvery } : {}) });
    let staged: StagedBaseBackup;
    try {
      staged = await take(input.mode ?? 'auto');
    } catch (err) {
      if (!incrementalNotPossible(err)) throw err;
      progress.fullBecause = causeMessage(err);
      staged = await take('full');
    }
    const fullBecause = progress.fullBecause ?? staged.fullBecause;
    progress.kind = staged.record.kind;
    progress.fullBecause = fullBecause;
    progress.stagedBytes = staged.record.sizeBytes;

    progress.stage = 'verify';
    await verifyBaseBackup({ backupId });

    progress.stage = 'upload';
    const upload = await uploadBaseBackup({ backupId });
    progress.uploadedBytes = upload.uploadedBytes;
    const location = `s3://${upload.bucket}/${upload.prefix}`;

    progress.stage = 'prune';
    const prune = await pruneBaseBackups({ cluster, recoveryWindow: input.recoveryWindow ?? DEFAULT_RECOVERY_WINDOW, dryRun: input.pruneDryRun ?? false });

    progress.stage = 'done';
    if (input.notifyOnSuccess) await notify({ status: 'succeeded', stage: 'done', location, sizeBytes: staged.record.sizeBytes });
    return { backupId, record: staged.record, location, ...(fullBecause ? { fullBecause } : {}), prune };
  } catch (err) {
    const failedAt = progress.stage;
    progress.stage = 'failed';
    progress.error = `${failedAt}: ${causeMessage(err)}`;
    try {
      await notify({ status: 'failed', stage: failedAt, error: causeMessage(err) });
    } catch {
      // The backup's own failure is what the operator must see; a dead webhook must not hide it.
    }
    throw ApplicationFailure.nonRetryable(`base backup ${backupId} of cluster ${cluster} failed at ${failedAt}: ${causeMessage(err)}`, 'BaseBackupFailed');
  } finally {
    // Staged files are the whole cluster; they are never the backup (the bucket is), so they go.
    await discardBaseBackupStaging({ backupId }).catch(() => undefined);
  }
}
