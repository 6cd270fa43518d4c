// The typed client library the game's app and the pgops CLI use to start pgops workflows.
import type { Client } from '@temporalio/client';
import { STACK_CHECK_WORKFLOW, type StackCheckInput, type StackCheckReport, type StackCheckWorkflow } from '../check/contract';

export { connectClient, TemporalUnreachable } from '../shared/temporal/connection';
export { loadTemporalConfig } from '../shared/config';
export type * from '../shared/targets';
export type * from '../shared/approval';
export type * from '../check/contract';
export type * from '../backup/contract';
export type * from '../backup/manifest';
export type * from '../restore/contract';
export type * from '../failover/contract';
export type * from '../embeddings/contract';
export type * from '../doctor/contract';
export type * from '../archive/contract';
export type * from '../pitr/contract';
export type { BaseBackupRecord } from '../archive/layout';
export type * from '../archive/contract';

export interface StartOptions {
  taskQueue: string;
  workflowId?: string;
}

/** Runs stackCheck and waits for its report. */
export async function runStackCheck(client: Client, options: StartOptions, input: StackCheckInput = {}): Promise<StackCheckReport> {
  return client.workflow.execute<StackCheckWorkflow>(STACK_CHECK_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `stack-check-${Date.now()}`,
    args: [input],
    workflowExecutionTimeout: '5 minutes',
  });
}
export { startBackup, backupProgress, installBackupSchedule, backupScheduleId } from './backups';
export { startBaseBackup, baseBackupProgress, installBaseBackupSchedule } from './baseBackups';
export { baseBackupScheduleId, walChainAuditScheduleId } from '../archive/contract';
export { startRestore, restoreStatus, restorePlan, decideRestore } from './restores';
export { startPointInTimeRestore, pitrStatus, decidePointInTimeRestore, startRestoreDrill, installDrillSchedule } from './pitr';
export { drillScheduleId } from '../pitr/contract';
export { DecisionRefused } from './decisions';
export { runDoctor } from './doctor';
export { startFailover, failoverHandle, failoverStatus, approveFailover, decideFailover, startRejoin, startWatcher, watcherHandle, watchStatus, pauseWatcher, resumeWatcher } from './failovers';
export { failoverWorkflowId, watcherWorkflowId } from '../failover/contract';
export {
  startEmbeddingBackfill,
  embeddingBackfillHandle,
  embeddingBackfillId,
  embeddingProgress,
  pauseEmbeddingBackfill,
  resumeEmbeddingBackfill,
  findSimilarQuestions,
  findDuplicateQuestion,
  EmbeddingInputInvalid,
} from './embeddings';
export { startWalArchiver, walArchiverHandle, walArchiveStatus, pauseWalArchiver, resumeWalArchiver, stopWalArchiver, runWalChainAudit, installWalChainAuditSchedule } from './archive';
export { walArchiverWorkflowId } from '../archive/contract';
