// Operations that stop or swap a primary on purpose hold the cluster's watcher off meanwhile, so it
// does not take the planned outage for a failure.
import { CancellationScope, getExternalWorkflowHandle, workflowInfo } from '@temporalio/workflow';
import { pauseWatchSignal, resumeWatchSignal, watcherWorkflowId } from '../contract';

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
