// Starting, watching and scheduling base backups, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { PGOPS_TARGET } from '../shared/temporal/searchAttributes';
import {
  BASE_BACKUP_WORKFLOW,
  baseBackupProgressQuery,
  baseBackupScheduleId,
  type BaseBackupInput,
  type BaseBackupProgress,
  type BaseBackupWorkflow,
} from '../archive/contract';
import { progressWithHeartbeats } from './progress';
import { installDailySchedule } from './schedules';

export async function startBaseBackup(
  client: Client,
  options: { taskQueue: string; workflowId?: string },
  input: BaseBackupInput,
): Promise<WorkflowHandle<BaseBackupWorkflow>> {
  return client.workflow.start<BaseBackupWorkflow>(BASE_BACKUP_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `base-backup-${input.cluster}-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: input.cluster }],
  });
}

/** The stage from the workflow, live byte counts from the running step's heartbeats. */
export function baseBackupProgress(handle: WorkflowHandle): Promise<BaseBackupProgress> {
  return progressWithHeartbeats<BaseBackupProgress, BaseBackupProgress>(handle, baseBackupProgressQuery, (progress, details) => {
    if (details.stagedBytes !== undefined && progress.stage === 'backup') progress.stagedBytes = details.stagedBytes;
    if (details.uploadedBytes !== undefined && progress.stage === 'upload') progress.uploadedBytes = details.uploadedBytes;
  });
}

export interface BaseBackupScheduleOptions {
  taskQueue: string;
  cluster: string;
  /** Local time of day, "HH:MM". */
  at: string;
  timezone: string;
  input?: Omit<BaseBackupInput, 'cluster'>;
}

/** Creates the cluster's base backup schedule, or updates it in place. */
export function installBaseBackupSchedule(client: Client, options: BaseBackupScheduleOptions): Promise<'created' | 'updated'> {
  return installDailySchedule(client, {
    scheduleId: baseBackupScheduleId(options.cluster),
    at: options.at,
    timezone: options.timezone,
    action: {
      workflowType: BASE_BACKUP_WORKFLOW,
      taskQueue: options.taskQueue,
      workflowId: baseBackupScheduleId(options.cluster),
      args: [{ ...options.input, cluster: options.cluster }],
      typedSearchAttributes: [{ key: PGOPS_TARGET, value: options.cluster }],
    },
  });
}
