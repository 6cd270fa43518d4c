// Starting and steering failovers and rejoins, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import {
  failoverWorkflowId,
  pauseWatchSignal,
  resumeWatchSignal,
  watcherWorkflowId,
  watchStatusQuery,
  type WatchPause,
  type WatchResume,
  type WatchState,
  type FailoverApproval, type FailoverInput, type FailoverResult, type FailoverStatus, type RejoinInput, type RejoinResult } from '../failover/contract';

export type FailoverHandle = WorkflowHandle<(input: FailoverInput) => Promise<FailoverResult>>;

export async function startFailover(client: Client, options: { taskQueue: string; workflowId?: string }, input: FailoverInput): Promise<FailoverHandle> {
  return client.workflow.start('failoverPromotion', {
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
  return handle.query<FailoverStatus>('status');
}

export function approveFailover(handle: WorkflowHandle, approval: FailoverApproval): Promise<void> {
  return handle.signal<[FailoverApproval]>('approve', approval);
}

export async function startRejoin(
  client: Client,
  options: { taskQueue: string; workflowId?: string },
  input: RejoinInput,
): Promise<WorkflowHandle<(input: RejoinInput) => Promise<RejoinResult>>> {
  return client.workflow.start('rejoinAsStandby', {
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
export async function startWatcher(client: Client, options: { taskQueue: string }, cluster: string): Promise<WorkflowHandle> {
  return client.workflow.start('failoverWatcher', {
    taskQueue: options.taskQueue,
    workflowId: watcherWorkflowId(cluster),
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
