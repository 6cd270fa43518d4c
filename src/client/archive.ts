// Starting and steering a cluster's WAL archiver, for the CLI and the app.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { PGOPS_TARGET } from '../shared/temporal/searchAttributes';
import { installIntervalSchedule } from './schedules';
import {
  archiveStatusQuery,
  pauseArchiveSignal,
  resumeArchiveSignal,
  WAL_ARCHIVER_WORKFLOW,
  WAL_CHAIN_AUDIT_WORKFLOW,
  walArchiverWorkflowId,
  walChainAuditScheduleId,
  type ArchivePause,
  type ArchiveProgress,
  type WalArchiverInput,
  type WalArchiverWorkflow,
  type WalArchiveState,
  type WalChainAuditInput,
  type WalChainAuditResult,
  type WalChainAuditWorkflow,
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

/** Audits the cluster's WAL chain now (the scheduled audit, run once) and waits for the result. */
export function runWalChainAudit(client: Client, options: { taskQueue: string; workflowId?: string }, input: WalChainAuditInput): Promise<WalChainAuditResult> {
  return client.workflow.execute<WalChainAuditWorkflow>(WAL_CHAIN_AUDIT_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `${walChainAuditScheduleId(input.cluster)}-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: input.cluster }],
  });
}

/** Creates the cluster's audit schedule (every `every`, default hourly), or updates it in place. */
export function installWalChainAuditSchedule(client: Client, options: { taskQueue: string; cluster: string; every?: string; dryRun?: boolean }): Promise<'created' | 'updated'> {
  return installIntervalSchedule(client, {
    scheduleId: walChainAuditScheduleId(options.cluster),
    every: options.every ?? DEFAULT_WAL_AUDIT_EVERY,
    action: {
      workflowType: WAL_CHAIN_AUDIT_WORKFLOW,
      taskQueue: options.taskQueue,
      workflowId: walChainAuditScheduleId(options.cluster),
      args: [{ cluster: options.cluster, ...(options.dryRun ? { dryRun: true } : {}) }],
      typedSearchAttributes: [{ key: PGOPS_TARGET, value: options.cluster }],
    },
  });
}

export const DEFAULT_WAL_AUDIT_EVERY = '1 hour';
