// Types shared by workflows, activities and clients. Workflows import these as types only.

/** Targets are named, never described: connection details and secrets stay in the worker. */
export type TargetName = string;

export interface StackCheckInput {
  primary?: TargetName;
  standby?: TargetName;
}

export interface CheckRow {
  component: string;
  ok: boolean;
  detail: string;
}

export interface StackCheckReport {
  ok: boolean;
  checks: CheckRow[];
}

export interface TargetProbe {
  target: TargetName;
  serverVersion: string;
  inRecovery: boolean;
  database: string;
  extensions: Record<string, string>;
  /** The pgvector version the server could install, whether or not this database has it. */
  pgvectorAvailable?: string;
  pgDumpVersion: string;
}

export interface ReplicationProbe {
  primary: TargetName;
  standby: TargetName;
  /** How long the marker row written on the primary took to appear on the standby. */
  replayedAfterMs: number;
  replicationState: string;
  replayLagBytes: number;
}

export interface StorageProbe {
  bucket: string;
  key: string;
  bytes: number;
  roundTripMs: number;
}

// ---------------------------------------------------------------- backups

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
  target: TargetName;
  /** `custom` (one file, the default) or `directory` (one file per table, dumped with `jobs` in parallel). */
  format?: DumpFormat;
  jobs?: number;
  compression?: Compression;
  verify?: VerifyLevel;
  /** Target whose server hosts the scratch database of a test restore (default: the backed-up target). */
  verifyTarget?: TargetName;
  retention?: Partial<RetentionPolicy>;
  pruneDryRun?: boolean;
  notifyOnSuccess?: boolean;
  /** How long a silent worker is trusted before its step is retried elsewhere (default 30 seconds). */
  heartbeatTimeout?: string;
}

/** The single source of truth about one backup. Written at dump time, stored beside the dump. */
export interface BackupManifest {
  formatVersion: 1;
  backupId: string;
  target: TargetName;
  database: string;
  serverVersion: string;
  pgDumpVersion: string;
  startedAt: string;
  finishedAt: string;
  format: DumpFormat;
  /** Parallel pg_dump jobs (directory format). */
  jobs: number;
  compression: Compression;
  /** Total bytes of the data files. */
  sizeBytes: number;
  /** SHA-256 of the dump file (custom format), or of the data file list (directory format). */
  sha256: string;
  /** Every file the dump consists of, with its own checksum; paths relative to the backup's folder. */
  dataFiles: DataFile[];
  databaseSizeBytes: number;
  /** Row count of every table, taken in the dump's own snapshot. Keyed "schema.table". */
  rowCounts: Record<string, number>;
  /** What pg_restore reads, inside the backup's folder: the file, or the directory. */
  dumpFile: string;
  /** Cluster-wide objects (roles, memberships, tablespaces) from pg_dumpall --globals-only. */
  globalsFile: string;
  globalsIncludePasswords: boolean;
  verification?: VerificationResult;
}

export interface DataFile {
  name: string;
  sizeBytes: number;
  sha256: string;
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

export interface CatalogEntry {
  backupId: string;
  target: TargetName;
  finishedAt: string;
  sizeBytes: number;
  verified: boolean;
  manifestKey: string;
  dumpKey: string;
  globalsKey: string;
  /** Every data object of the backup (one for custom format, one per file for directory format). */
  dataKeys: string[];
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
