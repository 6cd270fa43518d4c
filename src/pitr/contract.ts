// The point-in-time restore contracts: pointInTimeRestore (a cluster as it was at a moment, into
// a new instance, gated by the shared approval rule) and restoreDrill (the scheduled proof that
// the newest base backup plus the WAL archive restores). The workflows and every client import
// their names, inputs, results and message definitions from here.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Decision, DecisionRequest, IgnoredDecision } from '../shared/approval';
import type { RecoverableWindow } from '../archive/recoveryWindow';
import type { FenceResult, RepointResult } from '../failover/contract';

// ================================================================ the recovery target

/**
 * Where recovery stops. `time` and `lsn` include the transactions at that point (a commit at
 * exactly 14:31:07 is kept); `restorePoint` is a name given to pg_create_restore_point();
 * `latest` is the newest archived WAL position when the restore starts (fixed then, never later).
 */
export type RecoveryTarget =
  | { kind: 'time'; time: string }
  | { kind: 'lsn'; lsn: string }
  | { kind: 'restorePoint'; name: string }
  | { kind: 'latest' };

/** The new server instance the cluster is restored into, on the worker's own machine. */
export interface RestoreInstance {
  /** An absolute path that does not exist yet or is empty; its parent must exist. */
  dataDir: string;
  port: number;
}

/** `side`: promote the restored instance and leave the live cluster alone. `replace`: it becomes the primary. */
export type PitrMode = 'side' | 'replace';

// ================================================================ pointInTimeRestore

export interface PointInTimeRestoreInput {
  /** A configured cluster (PGOPS_CLUSTERS): whose archive, and (mode replace) whose primary is replaced. */
  cluster: string;
  target: RecoveryTarget;
  instance: RestoreInstance;
  mode: PitrMode;
  /** Who asked, as the operator's tooling reports it; the two-person rule compares approvers to it. */
  requestedBy: string;
  reason?: string;
  /** How long approval may take before the restore ends with nothing changed (default: the worker's restore policy, 24 h). */
  approvalTimeout?: string;
  /** How long a silent worker is trusted before its step is retried elsewhere (default 30 seconds). */
  heartbeatTimeout?: string;
}

/** The base backup (and the incrementals on it) recovery starts from, and why it was chosen. */
export interface ChosenBackup {
  root: string;
  systemIdentifier: string;
  /** Full backup first, the chosen backup last: pg_combinebackup's order. */
  chain: string[];
  backupId: string;
  stopLsn: string;
  stoppedAt: string;
  sizeBytes: number;
  why: string;
}

/** What the archive says before anything is touched: the window, the chosen backup, the settings recovery gets. */
export interface RecoveryPlan {
  cluster: string;
  target: RecoveryTarget;
  window: RecoverableWindow;
  backup: ChosenBackup;
  /** recovery_target_* lines as written into the instance's configuration. */
  settings: Record<string, string>;
  /** Things worth knowing, e.g. that a restore point's position is unknown until replay finds it. */
  notes: string[];
  /** The archive's WAL segment size. */
  segmentBytes: number;
}

export interface RestoredInstanceReport {
  /** Where replay paused: pg_last_wal_replay_lsn(). */
  reachedLsn: string;
  /** pg_last_xact_replay_timestamp(): the last transaction replayed. */
  lastCommitAt?: string;
  timeline: number;
  database: string;
  sizeBytes: number;
  /** Row counts at the target, and in the live database now. */
  rowCounts: Record<string, number>;
  liveRowCounts: Record<string, number>;
  /** "schema.table: live N, restored M" for every table that differs. */
  differences: string[];
  fetchMs: number;
  replayMs: number;
  /** WAL segments the instance's restore_command fetched (read-ahead included). */
  segmentsFetched: number;
  /** The archive ended before the target: replay paused at its head (nothing after its last record changed anything). */
  pausedAtArchiveHead: boolean;
}

export type PitrStage =
  | 'planning'
  | 'fetching'
  | 'replaying'
  | 'inspecting'
  | 'awaiting-approval'
  | 'promoting'
  | 'switching'
  | 'done'
  | 'rejected'
  | 'expired'
  | 'failed';

export interface PitrStatus {
  stage: PitrStage;
  requestedBy: string;
  mode: PitrMode;
  recovery?: RecoveryPlan;
  report?: RestoredInstanceReport;
  decision?: Decision;
  ignored: IgnoredDecision[];
  approvalDeadline?: string;
  error?: string;
}

export interface PitrAudit {
  workflowId: string;
  runId: string;
  outcome: 'restored' | 'rejected' | 'expired' | 'failed' | 'cancelled';
  cluster: string;
  mode: PitrMode;
  target: RecoveryTarget;
  instance: RestoreInstance;
  requestedBy: string;
  reason?: string;
  decision?: Decision;
  ignored: IgnoredDecision[];
  backupId?: string;
  report?: RestoredInstanceReport;
  promotion?: { timeline: number; lsn: string };
  /** Mode replace: the old primary, how it was fenced (it is kept, stopped), and how clients were repointed. */
  oldPrimary?: string;
  fence?: FenceResult;
  repoint?: RepointResult;
  /** Whether the restored instance and its files were removed (rejected, expired, failed, cancelled). */
  instanceRemoved: boolean;
  startedAt: string;
  finishedAt: string;
  durationsMs: Record<string, number>;
  error?: string;
  auditKey?: string;
}

export interface PointInTimeRestoreResult extends PitrAudit {
  reminder?: string;
}

export const pitrStatusQuery = defineQuery<PitrStatus>('status');
export const pitrApproveSignal = defineSignal<[DecisionRequest]>('approve');
export const pitrRejectSignal = defineSignal<[DecisionRequest]>('reject');
export const pitrApproveUpdate = defineUpdate<PitrStatus, [DecisionRequest]>('approve');
export const pitrRejectUpdate = defineUpdate<PitrStatus, [DecisionRequest]>('reject');

export const POINT_IN_TIME_RESTORE_WORKFLOW = 'pointInTimeRestore';
export type PointInTimeRestoreWorkflow = (input: PointInTimeRestoreInput) => Promise<PointInTimeRestoreResult>;

// ================================================================ restoreDrill

export interface RestoreDrillInput {
  cluster: string;
  /** The scratch instance (removed afterwards). */
  instance: RestoreInstance;
  /** The drill picks its point in this recent past (default 24 hours). */
  within?: string;
  /** How many of the biggest indexes amcheck checks (default 5). */
  indexesToCheck?: number;
  heartbeatTimeout?: string;
}

export interface IndexCheck {
  index: string;
  sizeBytes: number;
  ok: boolean;
  error?: string;
}

/** A drill's result, kept beside the base backup it proved (base/<id>/drill.json) and in the audit trail. */
export interface DrillRecord {
  workflowId: string;
  cluster: string;
  backupId?: string;
  target?: RecoveryTarget;
  ok: boolean;
  /** When it was proved restorable (set only when ok). */
  provedAt?: string;
  checks: { name: string; ok: boolean; detail: string }[];
  indexChecks: IndexCheck[];
  report?: RestoredInstanceReport;
  startedAt: string;
  finishedAt: string;
  error?: string;
}

/** What the webhook is sent when a drill fails (the same endpoint as failed backups). */
export interface DrillNotification {
  workflowId: string;
  /** The cluster. */
  target: string;
  kind: 'restore-drill';
  status: 'succeeded' | 'failed';
  backupId?: string;
  error?: string;
}

export const RESTORE_DRILL_WORKFLOW = 'restoreDrill';
/** The audit trail every drill appends its record to (pgops doctor and the metrics read it). */
export const DRILL_AUDIT_KIND = 'drills';

/** The failed checks of a drill, as one line. */
export function drillFailures(record: Pick<DrillRecord, 'checks'>): string {
  return record.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}: ${c.detail}`)
    .join('; ');
}

export type RestoreDrillWorkflow = (input: RestoreDrillInput) => Promise<DrillRecord>;

/** One drill schedule per cluster. */
export function drillScheduleId(cluster: string): string {
  return `restore-drill-${cluster}`;
}
