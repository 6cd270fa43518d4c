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
import { installDailySchedule, installIntervalSchedule } from './schedules';

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
  /** Local time of day, "HH:MM" (a daily schedule)… */
  at: string;
  timezone: string;
  /** …or every this long ("1 hour"), which bounds a point-in-time restore's WAL replay (use with input.fullEvery). */
  every?: string;
  input?: Omit<BaseBackupInput, 'cluster'>;
}

/** Creates the cluster's base backup schedule, or updates it in place: daily at a time, or every so long. */
export function installBaseBackupSchedule(client: Client, options: BaseBackupScheduleOptions): Promise<'created' | 'updated'> {
  const scheduleId = baseBackupScheduleId(options.cluster);
  const action = {
    workflowType: BASE_BACKUP_WORKFLOW,
    taskQueue: options.taskQueue,
    workflowId: scheduleId,
    args: [{ ...options.input, cluster: options.cluster }],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: options.cluster }],
  };
  if (options.every) return installIntervalSchedule(client, { scheduleId, every: options.every, action });
  return installDailySchedule(client, { scheduleId, at: options.at, timezone: options.timezone, action });
}
