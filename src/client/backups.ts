// Starting, watching and scheduling backups, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { PGOPS_TARGET } from '../shared/temporal/searchAttributes';
import { backupProgressQuery, NIGHTLY_BACKUP_WORKFLOW, type BackupProgress, type NightlyBackupInput, type NightlyBackupWorkflow } from '../backup/contract';
import { progressWithHeartbeats } from './progress';
import { installDailySchedule } from './schedules';

export function backupScheduleId(target: string): string {
  return `nightly-backup-${target}`;
}

export async function startBackup(
  client: Client,
  options: { taskQueue: string; workflowId?: string },
  input: NightlyBackupInput,
): Promise<WorkflowHandle<NightlyBackupWorkflow>> {
  return client.workflow.start<NightlyBackupWorkflow>(NIGHTLY_BACKUP_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `backup-${input.target}-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: input.target }],
  });
}

/**
 * The workflow's progress query gives the stage; the running activity's latest heartbeat
 * gives live byte counts without adding an event to history per progress tick.
 */
export function backupProgress(handle: WorkflowHandle): Promise<BackupProgress> {
  return progressWithHeartbeats<BackupProgress, BackupProgress>(handle, backupProgressQuery, (progress, details) => {
    if (details.dumpedBytes !== undefined && progress.stage === 'dump') progress.dumpedBytes = details.dumpedBytes;
    // The data uploads while the test restore runs (stage verify), and the manifest after it.
    if (details.uploadedBytes !== undefined && (progress.stage === 'verify' || progress.stage === 'upload')) progress.uploadedBytes = details.uploadedBytes;
  });
}

export interface ScheduleOptions {
  taskQueue: string;
  target: string;
  /** Local time of day, "HH:MM". */
  at: string;
  timezone: string;
  input?: Omit<NightlyBackupInput, 'target'>;
}

/** Creates the schedule, or updates it in place when it exists. Returns "created" or "updated". */
export function installBackupSchedule(client: Client, options: ScheduleOptions): Promise<'created' | 'updated'> {
  return installDailySchedule(client, {
    scheduleId: backupScheduleId(options.target),
    at: options.at,
    timezone: options.timezone,
    action: {
      workflowType: NIGHTLY_BACKUP_WORKFLOW,
      taskQueue: options.taskQueue,
      workflowId: backupScheduleId(options.target),
      args: [{ ...options.input, target: options.target }],
      typedSearchAttributes: [{ key: PGOPS_TARGET, value: options.target }],
    },
  });
}
