// Starting, watching and deciding guarded restores, for the CLI and for operators' own tooling.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { refusedAsDecisionRefused } from './decisions';
import { isOperatorName } from '../shared/approval';
import { PGOPS_TARGET } from '../shared/temporal/searchAttributes';
import { approveUpdate, GUARDED_RESTORE_WORKFLOW, rejectUpdate, restorePlanQuery, restoreStatusQuery, type GuardedRestoreInput, type GuardedRestoreWorkflow, type RestorePlan, type RestoreStatus } from '../restore/contract';
import type { DecisionRequest } from '../shared/approval';

export type RestoreHandle = WorkflowHandle<GuardedRestoreWorkflow>;

export async function startRestore(
  client: Client,
  options: { taskQueue: string; workflowId?: string },
  input: GuardedRestoreInput,
): Promise<RestoreHandle> {
  // The workflow refuses such a name too, but only after a run has started and failed.
  if (!isOperatorName(input.requestedBy)) {
    throw new Error(`requestedBy ${JSON.stringify(input.requestedBy)} is not an operator name (letters, digits, . _ @ + -): pass --as NAME or set PGOPS_OPERATOR`);
  }
  return client.workflow.start<GuardedRestoreWorkflow>(GUARDED_RESTORE_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `restore-${input.target}-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: input.target }],
  });
}

export function restoreStatus(client: Client, workflowId: string): Promise<RestoreStatus> {
  return client.workflow.getHandle(workflowId).query(restoreStatusQuery);
}

export function restorePlan(client: Client, workflowId: string): Promise<RestorePlan | undefined> {
  return client.workflow.getHandle(workflowId).query(restorePlanQuery);
}


/**
 * Sends an approve/reject as a Workflow Update: the workflow's validator answers at once, and a
 * refused decision never reaches history. Throws DecisionRefused with the rule's reason.
 */
export async function decideRestore(
  client: Client,
  workflowId: string,
  decision: 'approve' | 'reject',
  request: DecisionRequest,
): Promise<RestoreStatus> {
  return refusedAsDecisionRefused(client.workflow.getHandle(workflowId).executeUpdate(decision === 'approve' ? approveUpdate : rejectUpdate, { args: [request] }));
}
