// The backup steps as a workflow calls them, with their timeouts and retries: nightlyBackup runs
// them all, and guardedRestore takes its safety snapshot with the same dump and upload.
import type { Duration } from '@temporalio/common';
import { proxyActivities, uuid4 } from '@temporalio/workflow';
import type { Activities } from '../../activities';

/**
 * Dump and test restore of a few GB take minutes; at 100× they take hours, so start-to-close is
 * generous and heartbeats are what notice a dead worker. S3 outages and throttling (503 SlowDown)
 * are waited out: many upload attempts with capped backoff.
 */
export function backupActivities(heartbeatTimeout: Duration, options: { verifyTaskQueue?: string } = {}) {
  const longStep = {
    startToCloseTimeout: '6 hours',
    heartbeatTimeout,
    retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 5 },
  } as const;
  const { dumpDatabase } = proxyActivities<Activities>(longStep);
  // A verify host (its own task queue) keeps the test restore off the workers next to production.
  const { verifyByTestRestore } = proxyActivities<Activities>({ ...longStep, taskQueue: options.verifyTaskQueue });
  const { uploadBackup, uploadBackupData, publishManifest, discardUploadedData } = proxyActivities<Activities>({
    startToCloseTimeout: '6 hours',
    heartbeatTimeout,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 30 },
  });
  const { pruneBackups } = proxyActivities<Activities>({
    startToCloseTimeout: '15 minutes',
    retry: { initialInterval: '10 seconds', maximumInterval: '2 minutes', maximumAttempts: 5 },
  });
  const { notifyWebhook } = proxyActivities<Activities>({
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '2 seconds', maximumAttempts: 5 },
  });
  return { dumpDatabase, verifyByTestRestore, uploadBackup, uploadBackupData, publishManifest, discardUploadedData, pruneBackups, notifyWebhook };
}

/** "primary-20261127T030000Z-1a2b3c": sortable, unique, and the same on replay. */
export function newBackupId(target: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${target}-${stamp}-${uuid4().slice(0, 6)}`;
}
