// The physical archive's contracts: each workflow's registered name and signature, inputs,
// results and query definitions, in a section of its own. The workflows and every client
// (src/client/, the CLI) import them from here.
import { defineQuery } from '@temporalio/workflow';
import type { BaseBackupRecord } from './layout';

// ================================================================ baseBackup

/** `auto`: an incremental on the newest complete backup where the server can take one, else full. */
export type BaseBackupMode = 'auto' | 'full';

export interface BaseBackupInput {
  /** A configured cluster (PGOPS_CLUSTERS); the backup is read from its current primary. */
  cluster: string;
  mode?: BaseBackupMode;
  /**
   * Retention as a recovery window: every point in this recent past stays recoverable ("7 days",
   * "36 hours"); older base backups and the WAL only they need are deleted. Default 7 days.
   */
  recoveryWindow?: string;
  /** Retention lists what it would delete and deletes nothing. */
  pruneDryRun?: boolean;
  notifyOnSuccess?: boolean;
  /** How long a silent worker is trusted before its step is retried elsewhere (default 30 seconds). */
  heartbeatTimeout?: string;
}

export type BaseBackupStage = 'starting' | 'backup' | 'verify' | 'upload' | 'prune' | 'done' | 'failed';

export interface BaseBackupProgress {
  backupId: string;
  cluster: string;
  stage: BaseBackupStage;
  /** The node it is read from (the cluster's primary when the run started). */
  node?: string;
  kind?: BaseBackupRecord['kind'];
  /** Why an `auto` run takes a full backup. */
  fullBecause?: string;
  stagedBytes?: number;
  uploadedBytes?: number;
  error?: string;
}

/** A base backup on the worker's disk, complete and hashed, not yet in the bucket. */
export interface StagedBaseBackup {
  record: BaseBackupRecord;
  fullBecause?: string;
}

export interface BaseBackupUpload {
  bucket: string;
  /** The backup's prefix, <root>/base/<backupId>/. */
  prefix: string;
  uploadedBytes: number;
  /** True when every object was already stored intact (a retried upload) and nothing went up again. */
  reused: boolean;
}

/** A base backup retention keeps, and why (in the window, the window's anchor, a kept incremental's parent). */
export interface KeptBaseBackup {
  backupId: string;
  reasons: string[];
}

export interface PhysicalPruneResult {
  dryRun: boolean;
  recoveryWindow: string;
  /** Points from here on stay recoverable. */
  windowStart: string;
  kept: KeptBaseBackup[];
  /** Base backups deleted (or, in a dry run, that would be). */
  deletedBackups: string[];
  /** Archived WAL objects deleted (or that would be): segments before the oldest kept backup's start. */
  deletedWalObjects: number;
  /** The first WAL segment kept on each timeline's side of the cut, when WAL goes. */
  walKeptFrom?: string;
}

export interface BaseBackupResult {
  backupId: string;
  record: BaseBackupRecord;
  /** s3://bucket/<root>/base/<backupId>/ */
  location: string;
  fullBecause?: string;
  prune: PhysicalPruneResult;
}

export interface BaseBackupNotification {
  workflowId: string;
  backupId: string;
  /** The cluster (a logical backup's notification names its target here). */
  target: string;
  kind: 'base-backup';
  status: 'succeeded' | 'failed';
  stage: BaseBackupStage;
  error?: string;
  location?: string;
  sizeBytes?: number;
}

export const baseBackupProgressQuery = defineQuery<BaseBackupProgress>('progress');

export const BASE_BACKUP_WORKFLOW = 'baseBackup';
export type BaseBackupWorkflow = (input: BaseBackupInput) => Promise<BaseBackupResult>;

/** The Temporal Schedule of a cluster's base backups (one per cluster). */
export function baseBackupScheduleId(cluster: string): string {
  return `base-backup-${cluster}`;
}

export const DEFAULT_RECOVERY_WINDOW = '7 days';
