import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { BackupManifest } from '../backup/manifest';
import type { Decision, DecisionRequest, IgnoredDecision } from '../shared/approval';
import type { TargetName } from '../shared/targets';

/** What the target's server lacks for a backup, found by the plan before anything is created. */
export interface ServerLacks {
  /** Roles the backup refers to that the server does not have: created from the backup's globals after approval. */
  missingRoles: string[];
  /** Cannot be fixed by the restore: the plan fails with these. */
  refusals: string[];
  /** Worth knowing, not blocking (an extension in another version, a check that could not run). */
  notes: string[];
}

/** `replace` swaps the restored copy in for the target; `new-database` restores beside it. */
export type RestoreMode = 'replace' | 'new-database';

export interface GuardedRestoreInput {
  /** A backup id from the catalog, or `latest` for the newest verified backup of `from`. */
  backup: string;
  /** Whose backups `latest` means (default: `target`). */
  from?: TargetName;
  /** The configured target to restore: its server, and its database in mode `replace`. */
  target: TargetName;
  mode: RestoreMode;
  /** Mode `new-database`: the name to restore under (default `<database>_restored_<time>`). */
  newDatabase?: string;
  /** Who asked, as the operator's tooling reports it; the two-person rule compares approvers to it. */
  requestedBy: string;
  reason?: string;
  /** How long approval may take before the restore ends with nothing changed (default from the worker's policy, 24 h). */
  approvalTimeout?: string;
  /** pg_restore jobs (default 2). */
  jobs?: number;
  /** How long a silent worker is trusted before its step is retried elsewhere (default 30 seconds). */
  heartbeatTimeout?: string;
}

export interface FetchedBackup {
  manifest: BackupManifest;
  /** Where the dump was read from. */
  location: string;
  fetchMs: number;
}

export interface RestorePlan {
  backupId: string;
  backupTakenAt: string;
  backupAgeSeconds: number;
  backupSizeBytes: number;
  target: TargetName;
  mode: RestoreMode;
  /** The database that ends up holding the backup. */
  database: string;
  /** The database restored into first; renamed into place only after approval. */
  stagingDatabase: string;
  /** Mode `replace`: is there a database to replace, and what is in it now. */
  current?: {
    sizeBytes: number;
    activeConnections: number;
    rowCounts: Record<string, number>;
  };
  backupRowCounts: Record<string, number>;
  /** "schema.table: now N, backup M" for every table whose count differs or exists on one side only. */
  differences: string[];
  /** What the target's server lacks for this backup. */
  lacks?: ServerLacks;
}

export type RestoreStage =
  | 'fetching'
  | 'planning'
  | 'awaiting-approval'
  | 'safety-snapshot'
  | 'restoring'
  | 'swapping'
  | 'done'
  | 'rejected'
  | 'expired'
  | 'failed';

export interface RestoreStatus {
  stage: RestoreStage;
  requestedBy: string;
  plan?: RestorePlan;
  /** Staging restore runs while approval is awaited; this says whether it is ready. */
  stagingReady: boolean;
  decision?: Decision;
  ignored: IgnoredDecision[];
  approvalDeadline?: string;
  /** When the wait for a decision began (absent in runs older than the field): how long an approval is overdue. */
  awaitingApprovalSince?: string;
  safetySnapshotId?: string;
  error?: string;
}

export interface StagingRestoreResult {
  stagingDatabase: string;
  restoreMs: number;
  tablesCompared: number;
}

export interface SwapResult {
  database: string;
  /** Mode `replace`: the database the target was renamed to, kept until `pgops restore cleanup`. */
  preRestoreDatabase?: string;
  /** From refusing connections to the target until the restored copy accepts them again. */
  downtimeMs: number;
  terminatedConnections: number;
}

export interface RestoreAudit {
  workflowId: string;
  runId: string;
  outcome: 'restored' | 'rejected' | 'expired' | 'failed';
  requestedBy: string;
  reason?: string;
  decision?: Decision;
  ignored: IgnoredDecision[];
  target: TargetName;
  mode: RestoreMode;
  backupId?: string;
  database?: string;
  preRestoreDatabase?: string;
  safetySnapshotId?: string;
  startedAt: string;
  finishedAt: string;
  /** Milliseconds per step: fetch, plan, approval wait, snapshot, staging restore, swap. */
  durationsMs: Record<string, number>;
  downtimeMs?: number;
  /** Roles the restore created from the backup's globals because the target's server lacked them. */
  createdRoles?: string[];
  error?: string;
  /** Where this record is stored in S3 (set once written). */
  auditKey?: string;
}

export interface GuardedRestoreResult extends RestoreAudit {
  /** What the operator should do next, e.g. drop the pre-restore database when satisfied. */
  reminder?: string;
}

// ---------------------------------------------------------------- messages

export const restoreStatusQuery = defineQuery<RestoreStatus>('status');
export const restorePlanQuery = defineQuery<RestorePlan | undefined>('plan');
export const approveSignal = defineSignal<[DecisionRequest]>('approve');
export const rejectSignal = defineSignal<[DecisionRequest]>('reject');
export const approveUpdate = defineUpdate<RestoreStatus, [DecisionRequest]>('approve');
export const rejectUpdate = defineUpdate<RestoreStatus, [DecisionRequest]>('reject');

// ---------------------------------------------------------------- workflow types
// The names the worker registers (src/workflows.ts exports a function of each name with this
// signature; test/contracts.test.ts holds them together) and the clients start.

export const GUARDED_RESTORE_WORKFLOW = 'guardedRestore';
export type GuardedRestoreWorkflow = (input: GuardedRestoreInput) => Promise<GuardedRestoreResult>;
