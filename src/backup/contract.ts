import { defineQuery } from '@temporalio/workflow';
import type { BackupManifest } from './manifest';
import type { TargetName } from '../shared/targets';

/** pg_dump's -Z value: `none`, or a method with an optional level such as `gzip:6` or `zstd:3`. */
export type Compression = string;

export type VerifyLevel = 'list' | 'restore';

/** How many remote backups to keep. Tiers keep the newest backup of each recent day/week/month. */
export interface RetentionPolicy {
  keepLast: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  /** No policy may leave fewer backups than this; at least 1. */
  minKeep: number;
  /** Staged local copies older than this many days are deleted. */
  localKeepDays: number;
}

export type DumpFormat = 'custom' | 'directory';

export interface NightlyBackupInput {
  /** A target, or a cluster role ("main:primary", "main:standby") resolved when the run starts. */
  target: TargetName;
  /** `directory` (one file per table, dumped with `jobs` in parallel; the default) or `custom` (one file). */
  format?: DumpFormat;
  jobs?: number;
  compression?: Compression;
  verify?: VerifyLevel;
  /**
   * Target whose server hosts the scratch database of a test restore (default: the worker's
   * PGOPS_VERIFY_TARGET, else the backed-up server itself, with a warning in the result).
   */
  verifyTarget?: TargetName;
  /** Task queue of the workers that run the test restore (a verify host sharing the staging directory). */
  verifyTaskQueue?: string;
  retention?: Partial<RetentionPolicy>;
  pruneDryRun?: boolean;
  notifyOnSuccess?: boolean;
  /** How long a silent worker is trusted before its step is retried elsewhere (default 30 seconds). */
  heartbeatTimeout?: string;
}

export interface VerificationResult {
  level: VerifyLevel;
  verifiedAt: string;
  /** Entries pg_restore --list found in the archive. */
  tocEntries: number;
  /** For a test restore: where it ran, how long it took, and the tables compared. */
  restoreServer?: TargetName;
  restoreMs?: number;
  tablesCompared?: number;
  /** Set when the test restore ran on the server that was backed up (no verify server configured). */
  warning?: string;
}

export interface UploadResult {
  bucket: string;
  dumpKey: string;
  manifestKey: string;
  globalsKey: string;
  bytes: number;
  /** True when the object already matched the manifest and nothing was sent again. */
  reused: boolean;
}

export interface RetentionDecision {
  backupId: string;
  finishedAt: string;
  keep: boolean;
  reasons: string[];
}

export interface PruneResult {
  dryRun: boolean;
  remote: RetentionDecision[];
  deletedRemote: string[];
  deletedLocal: string[];
}

export type BackupStage = 'starting' | 'dump' | 'verify' | 'upload' | 'prune' | 'done' | 'failed';

export interface BackupProgress {
  backupId: string;
  target: TargetName;
  stage: BackupStage;
  dumpedBytes?: number;
  uploadedBytes?: number;
  error?: string;
}

export interface NightlyBackupResult {
  backupId: string;
  manifest: BackupManifest;
  upload: UploadResult;
  prune: PruneResult;
}

export interface BackupNotification {
  workflowId: string;
  backupId: string;
  target: TargetName;
  status: 'succeeded' | 'failed';
  stage: BackupStage;
  error?: string;
  location?: string;
  sizeBytes?: number;
}

// ---------------------------------------------------------------- messages

export const backupProgressQuery = defineQuery<BackupProgress>('progress');

// ---------------------------------------------------------------- workflow types
// The names the worker registers (src/workflows.ts exports a function of each name with this
// signature; test/contracts.test.ts holds them together) and the clients start.

export const NIGHTLY_BACKUP_WORKFLOW = 'nightlyBackup';
export type NightlyBackupWorkflow = (input: NightlyBackupInput) => Promise<NightlyBackupResult>;
