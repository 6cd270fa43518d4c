// Starting, watching and deciding point-in-time restores, and running or scheduling restore
// drills, for the CLI and for operators' own tooling. Contracts come from src/pitr/contract.ts.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { isOperatorName, type DecisionRequest } from '../shared/approval';
import { PGOPS_TARGET } from '../shared/temporal/searchAttributes';
import {
  drillScheduleId,
  pitrApproveUpdate,
  pitrRejectUpdate,
  pitrStatusQuery,
  POINT_IN_TIME_RESTORE_WORKFLOW,
  RESTORE_DRILL_WORKFLOW,
  type PitrStatus,
  type PointInTimeRestoreInput,
  type PointInTimeRestoreWorkflow,
  type RestoreDrillInput,
  type RestoreDrillWorkflow,
} from '../pitr/contract';
import { recoveryTargetProblem } from '../pitr/recoveryTarget';
import { refusedAsDecisionRefused } from './decisions';
import { installDailySchedule } from './schedules';

export type PitrHandle = WorkflowHandle<PointInTimeRestoreWorkflow>;

export async function startPointInTimeRestore(client: Client, options: { taskQueue: string; workflowId?: string }, input: PointInTimeRestoreInput): Promise<PitrHandle> {
  // The workflow refuses these too, but only after a run has started and failed.
  if (!isOperatorName(input.requestedBy)) {
    throw new Error(`requestedBy ${JSON.stringify(input.requestedBy)} is not an operator name (letters, digits, . _ @ + -): pass --as NAME or set PGOPS_OPERATOR`);
  }
  const problem = recoveryTargetProblem(input.target);
  if (problem) throw new Error(problem);
  return client.workflow.start<PointInTimeRestoreWorkflow>(POINT_IN_TIME_RESTORE_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `pitr-${input.cluster}-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: input.cluster }],
  });
}

export function pitrStatus(client: Client, workflowId: string): Promise<PitrStatus> {
  return client.workflow.getHandle(workflowId).query(pitrStatusQuery);
}

/** approve/reject as a Workflow Update: the shared approval rule answers at once; a refusal throws DecisionRefused. */
export function decidePointInTimeRestore(client: Client, workflowId: string, decision: 'approve' | 'reject', request: DecisionRequest): Promise<PitrStatus> {
  return refusedAsDecisionRefused(client.workflow.getHandle(workflowId).executeUpdate(decision === 'approve' ? pitrApproveUpdate : pitrRejectUpdate, { args: [request] }));
}

export function startRestoreDrill(client: Client, options: { taskQueue: string; workflowId?: string }, input: RestoreDrillInput): Promise<WorkflowHandle<RestoreDrillWorkflow>> {
  return client.workflow.start<RestoreDrillWorkflow>(RESTORE_DRILL_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `${drillScheduleId(input.cluster)}-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: input.cluster }],
  });
}

/** Creates the cluster's daily drill schedule, or updates it in place. */
export function installDrillSchedule(client: Client, options: { taskQueue: string; at: string; timezone: string; input: RestoreDrillInput }): Promise<'created' | 'updated'> {
  return installDailySchedule(client, {
    scheduleId: drillScheduleId(options.input.cluster),
    at: options.at,
    timezone: options.timezone,
    action: {
      workflowType: RESTORE_DRILL_WORKFLOW,
      taskQueue: options.taskQueue,
      workflowId: drillScheduleId(options.input.cluster),
      args: [options.input],
      typedSearchAttributes: [{ key: PGOPS_TARGET, value: options.input.cluster }],
    },
  });
}
