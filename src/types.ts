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
  /** A target, or a cluster role ("main:primary", "main:standby") resolved when the run starts. */
  target: TargetName;
  /** `custom` (one file, the default) or `directory` (one file per table, dumped with `jobs` in parallel). */
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

/** Read at dump time in the dump's snapshot: the roles and extensions the database refers to. */
export interface DatabaseRequirements {
  /** Owners, grantees and per-database setting roles of the database and its objects. */
  roles: string[];
  extensions: { name: string; version: string }[];
}

/** What the target's server lacks for a backup, found by the plan before anything is created. */
export interface ServerLacks {
  /** Roles the backup refers to that the server does not have: created from the backup's globals after approval. */
  missingRoles: string[];
  /** Cannot be fixed by the restore: the plan fails with these. */
  refusals: string[];
  /** Worth knowing, not blocking (an extension in another version, a check that could not run). */
  notes: string[];
}

/** The single source of truth about one backup. Written at dump time, stored beside the dump. */
export interface BackupManifest {
  formatVersion: 1;
  backupId: string;
  /** The catalog: a target's name, or a cluster's when a role ("main:primary") was backed up. */
  target: TargetName;
  /** The node the dump was read from, when it is not `target` itself. */
  sourceNode?: TargetName;
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
  /** What a server needs before this backup restores on it (absent in backups older than the field). */
  requires?: DatabaseRequirements;
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

// ---------------------------------------------------------------- restores

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

/** Who may approve, configured on the worker: a restore cannot bring its own rules. */
export interface RestorePolicy {
  /** Names allowed to approve or reject; empty means anyone. */
  approvers: string[];
  /** When true the requester cannot approve their own restore. */
  twoPersonRule: boolean;
  approvalTimeout: string;
}

export interface RestoreDecisionRequest {
  approver: string;
  reason: string;
}

export interface RestoreDecision extends RestoreDecisionRequest {
  decision: 'approve' | 'reject';
  at: string;
  via: 'signal' | 'update';
}

export interface IgnoredDecision {
  decision: string;
  /** The refused payload as JSON, cut to a bounded length. */
  payload: string;
  why: string;
  at: string;
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
  decision?: RestoreDecision;
  ignored: IgnoredDecision[];
  approvalDeadline?: string;
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
  decision?: RestoreDecision;
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
