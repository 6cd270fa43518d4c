// Starting and steering failovers and rejoins, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { FailoverApproval, FailoverInput, FailoverResult, FailoverStatus, RejoinInput, RejoinResult } from '../failoverTypes';

/** One failover per cluster at a time: the id is the cluster's, so a second start is refused by Temporal. */
export function failoverWorkflowId(cluster: string): string {
  return `failover-${cluster}`;
}

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
