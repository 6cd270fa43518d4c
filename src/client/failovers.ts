// Starting and steering failovers and rejoins, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import {
  approveFailoverSignal,
  approveFailoverUpdate,
  FAILOVER_PROMOTION_WORKFLOW,
  FAILOVER_WATCHER_WORKFLOW,
  failoverStatusQuery,
  failoverWorkflowId,
  pauseWatchSignal,
  REJOIN_AS_STANDBY_WORKFLOW,
  resumeWatchSignal,
  watcherWorkflowId,
  watchStatusQuery,
  type FailoverApproval,
  type FailoverPromotionWorkflow,
  type FailoverStatus,
  type FailoverWatcherWorkflow,
  type RejoinAsStandbyWorkflow,
  type RejoinInput,
  type WatchPause,
  type WatchResume,
  type WatchState,
} from '../failover/contract';
import { refusedAsDecisionRefused } from './decisions';

export type FailoverHandle = WorkflowHandle<FailoverPromotionWorkflow>;

export async function startFailover(client: Client, options: { taskQueue: string; workflowId?: string }, input: Parameters<FailoverPromotionWorkflow>[0]): Promise<FailoverHandle> {
  return client.workflow.start<FailoverPromotionWorkflow>(FAILOVER_PROMOTION_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? failoverWorkflowId(input.cluster),
    args: [input],
    // A failover that cannot finish within a day waits on an operator who is not coming.
    workflowExecutionTimeout: '1 day',
  });
}

export function failoverHandle(client: Client, clusterOrWorkflowId: string): FailoverHandle {
  const workflowId = clusterOrWorkflowId.startsWith('failover-') ? clusterOrWorkflowId : failoverWorkflowId(clusterOrWorkflowId);
  return client.workflow.getHandle(workflowId);
}

export function failoverStatus(handle: WorkflowHandle): Promise<FailoverStatus> {
  return handle.query(failoverStatusQuery);
}

/** Sends the approval as a signal: judged when it arrives, and kept among the refusals when refused. */
export function approveFailover(handle: WorkflowHandle, approval: FailoverApproval): Promise<void> {
  return handle.signal(approveFailoverSignal, approval);
}

/** Sends the approval as an update: the approval rule answers at once; throws DecisionRefused with its reason. */
export function decideFailover(handle: WorkflowHandle, approval: FailoverApproval): Promise<FailoverStatus> {
  return refusedAsDecisionRefused(handle.executeUpdate(approveFailoverUpdate, { args: [approval] }));
}

export async function startRejoin(
  client: Client,
  options: { taskQueue: string; workflowId?: string },
  input: RejoinInput,
): Promise<WorkflowHandle<RejoinAsStandbyWorkflow>> {
  return client.workflow.start<RejoinAsStandbyWorkflow>(REJOIN_AS_STANDBY_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `rejoin-${input.cluster}-${input.node}`,
    args: [input],
    workflowExecutionTimeout: '1 day',
  });
}

/**
 * Starts the cluster's watcher, or finds the one already running (one per cluster: its id is the
 * cluster's). It runs until stopped: `pgops failover watch --stop`, or cancelled in the Temporal UI.
 */
export async function startWatcher(client: Client, options: { taskQueue: string; workflowId?: string }, cluster: string): Promise<WorkflowHandle<FailoverWatcherWorkflow>> {
  return client.workflow.start<FailoverWatcherWorkflow>(FAILOVER_WATCHER_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? watcherWorkflowId(cluster),
    args: [{ cluster }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

export function watcherHandle(client: Client, cluster: string): WorkflowHandle {
  return client.workflow.getHandle(watcherWorkflowId(cluster));
}

export function watchStatus(handle: WorkflowHandle): Promise<WatchState> {
  return handle.query(watchStatusQuery);
}

export function pauseWatcher(handle: WorkflowHandle, pause: WatchPause): Promise<void> {
  return handle.signal(pauseWatchSignal, pause);
}

export function resumeWatcher(handle: WorkflowHandle, resume: WatchResume): Promise<void> {
  return handle.signal(resumeWatchSignal, resume);
}
