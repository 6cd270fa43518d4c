// Starting and steering a cluster's WAL archiver, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import {
  archiveStatusQuery,
  pauseArchiveSignal,
  resumeArchiveSignal,
  WAL_ARCHIVER_WORKFLOW,
  walArchiverWorkflowId,
  type ArchivePause,
  type ArchiveProgress,
  type WalArchiverInput,
  type WalArchiverWorkflow,
  type WalArchiveState,
} from '../archive/contract';

export type WalArchiverHandle = WorkflowHandle<WalArchiverWorkflow>;

/**
 * Starts the cluster's archiver, or finds the one already running (one per cluster: its id is the
 * cluster's). It runs until stopped (`pgops wal stop`).
 */
export async function startWalArchiver(client: Client, options: { taskQueue: string; workflowId?: string }, input: WalArchiverInput): Promise<WalArchiverHandle> {
  return client.workflow.start<WalArchiverWorkflow>(WAL_ARCHIVER_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? walArchiverWorkflowId(input.cluster),
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

export function walArchiverHandle(client: Client, cluster: string): WalArchiverHandle {
  return client.workflow.getHandle(walArchiverWorkflowId(cluster));
}

export interface WalArchiveStatus {
  state: WalArchiveState;
  /** The running round's latest heartbeat: the live position, lag and spool. */
  live?: ArchiveProgress;
}

/** The archiver's state, with the running round's live progress when one runs. */
export async function walArchiveStatus(handle: WorkflowHandle): Promise<WalArchiveStatus> {
  const [state, description] = await Promise.all([handle.query(archiveStatusQuery), handle.describe()]);
  const pending = description.raw.pendingActivities?.find((a) => a.activityType?.name === 'runWalArchiver');
  const payload = pending?.heartbeatDetails?.payloads?.[0];
  const live = payload ? (defaultPayloadConverter.fromPayload(payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0]) as ArchiveProgress) : undefined;
  return { state, live };
}

export function pauseWalArchiver(handle: WorkflowHandle, pause: ArchivePause): Promise<void> {
  return handle.signal(pauseArchiveSignal, pause);
}

export function resumeWalArchiver(handle: WorkflowHandle): Promise<void> {
  return handle.signal(resumeArchiveSignal);
}

/** Cancels the archiver: its round uploads what pg_receivewal flushed, then stops it. The slots stay and hold WAL. */
export async function stopWalArchiver(handle: WorkflowHandle): Promise<void> {
  await handle.cancel();
}
