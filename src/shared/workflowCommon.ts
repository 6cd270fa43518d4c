// What more than one workflow needs: the backup activities with their timeouts, backup ids,
// and how to tell an operator why a step failed.
import type { Duration } from '@temporalio/common';
import { ActivityFailure, CancellationScope, getExternalWorkflowHandle, proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import { pauseWatchSignal, resumeWatchSignal, watcherWorkflowId } from '../failover/contract';
import type { Activities } from '../activities';

export const TARGET_NAME = /^[a-z][a-z0-9_-]*$/;

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

export function causeMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs `work` with the failover watchers of `clusters` paused (held by this run, at most `forMs`),
 * and lifts the pause however `work` ends. A cluster with no watcher running is skipped.
 */
export async function withWatchersPaused<T>(clusters: string[], reason: string, forMs: number, work: () => Promise<T>): Promise<T> {
  const holder = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  const watchers = clusters.map((cluster) => getExternalWorkflowHandle(watcherWorkflowId(cluster)));
  await Promise.all(watchers.map((w) => w.signal(pauseWatchSignal, { by: holder, reason, forMs }).catch(() => undefined)));
  try {
    return await work();
  } finally {
    await CancellationScope.nonCancellable(() => Promise.all(watchers.map((w) => w.signal(resumeWatchSignal, { by: holder }).catch(() => undefined))));
  }
}
