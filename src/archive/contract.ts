// The physical archive's contracts (the WAL archive, the chain audit, the base backups): each
// workflow's registered name and signature, inputs, results and message definitions, in a section
// of its own. The workflows and every client (src/client/, the CLI) import them from here; the
// bucket layout and the LSN arithmetic live in layout.ts beside it.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { WalArchiveMode } from '../shared/config';
import type { TargetName } from '../shared/targets';
import type { BaseBackupRecord } from './layout';

// ================================================================ walArchiver
// One long-running archiver per cluster: pg_receivewal through a physical slot, every completed
// segment and history file to S3 (docs/wal-archive.md).

export const WAL_ARCHIVER_WORKFLOW = 'walArchiver';
export type WalArchiverWorkflow = (input: WalArchiverInput) => Promise<void>;

/** One archiver per cluster, however many workers run: the id is the cluster's. */
export function walArchiverWorkflowId(cluster: string): string {
  return `wal-archive-${cluster}`;
}

/** The slot pg_receivewal streams through, which is also its application_name (synchronous_standby_names). */
export function archiveSlotName(cluster: string): string {
  return `pgops_wal_${cluster.replace(/-/g, '_')}`;
}

/** A slot that is never streamed: advanced only to what is safely in S3, on the primary and on every standby. */
export function archiveHoldSlotName(cluster: string): string {
  return `${archiveSlotName(cluster)}_hold`;
}

export interface WalArchiverInput {
  /** A cluster configured on the worker (PGOPS_CLUSTERS). */
  cluster: string;
  /** How long one supervising activity runs before the workflow takes stock (default 10 minutes). */
  roundMs?: number;
  /** Carried across continue-as-new. */
  carried?: WalArchiveState;
}

export interface ArchivePause {
  by: string;
  reason: string;
}

/** A stretch of WAL the archive does not have and never will: a restore cannot cross it. */
export interface ArchiveGap {
  timeline: number;
  /** The first position missing (the end of what was archived). */
  fromLsn: string;
  /** Where the archive resumed, when known. */
  toLsn?: string;
  reason: string;
  detectedAt: string;
  /** Where the record of it lies in the bucket (<root>/gaps/…), once written. */
  key?: string;
  /** The full base backup the archiver started after it. */
  baseBackup?: GapBaseBackup;
}

/** What prepareArchive found and made ready on the cluster's primary. */
export interface ArchivePreparation {
  cluster: string;
  mode: WalArchiveMode;
  primary: TargetName;
  systemIdentifier: string;
  timeline: number;
  segmentBytes: number;
  /** <prefix>/physical/<cluster>/<system identifier> */
  root: string;
  slot: string;
  holdSlot: string;
  /** The slot's wal_status and how much more WAL it may hold back before it is lost (bytes; null: unlimited). */
  walStatus: string;
  safeWalSizeBytes?: number;
  /** The first segment the archive lacks on the newest archived timeline (the spool is seeded there when empty). */
  resumeSegment?: string;
  /** The standbys a hold slot was kept on. */
  standbysHolding: TargetName[];
  warnings: string[];
  /** A slot that had lost its WAL (dropped and recreated now). */
  gap?: ArchiveGap;
}

/** The archive's position and health, as the supervising activity heartbeats and returns it. */
export interface ArchiveProgress {
  /** pg_receivewal's process id, while it runs. */
  receiverPid?: number;
  /** Times pg_receivewal was (re)started in this round. */
  receiverStarts: number;
  segmentsUploaded: number;
  historiesUploaded: number;
  bytesUploaded: number;
  /** The newest segment that is complete in S3. */
  lastSegment?: string;
  /** The segment being written, and up to where its copy in S3 is valid. */
  partialSegment?: string;
  partialValidToLsn?: string;
  /** The primary's current WAL position minus what is in S3. */
  lagBytes?: number;
  /** Bytes pg_receivewal has written that are not yet uploaded. */
  spoolBytes: number;
  safeWalSizeBytes?: number;
  lastError?: string;
  at: string;
}

export type ArchiveRoundEnd = 'round' | 'primaryChanged' | 'gap' | 'prepareAgain';

export interface ArchiveRoundResult {
  reason: ArchiveRoundEnd;
  detail: string;
  progress: ArchiveProgress;
  gap?: ArchiveGap;
}

export interface WalArchiveState {
  cluster: string;
  archivingSince: string;
  /** Why the archiver is not archiving: an operator's pause, or a failure that needs one (resume to retry). */
  paused?: { by: string; reason: string; at: string };
  primary?: TargetName;
  timeline?: number;
  systemIdentifier?: string;
  root?: string;
  walStatus?: string;
  rounds: number;
  progress?: ArchiveProgress;
  lastError?: string;
  warnings: string[];
  /** The gaps found, newest last (at most 20 kept here; every one is in the bucket under gaps/). */
  gaps: ArchiveGap[];
}

/** Sent by the webhook when the archive needs an operator: a gap, a conflict, a server or bucket it cannot use. */
export interface ArchiveNotification {
  kind: 'wal-archive';
  workflowId: string;
  cluster: string;
  status: 'gap' | 'paused';
  error?: string;
  gap?: ArchiveGap;
  /** After a gap: the full base backup started so the recoverable window restarts past it. */
  baseBackup?: GapBaseBackup;
}

export const archiveStatusQuery = defineQuery<WalArchiveState>('archiveStatus');
export const pauseArchiveSignal = defineSignal<[ArchivePause]>('pauseArchive');
export const resumeArchiveSignal = defineSignal<[]>('resumeArchive');
/** The primary moved (a failover or switchover): stop streaming from the old one and prepare again. */
export const primaryChangedSignal = defineSignal<[]>('primaryChanged');

// ================================================================ WAL-chain audit
// What the archive holds per timeline, read from the index and a listing of the bucket. The
// recoverable window and retention are computed from it.

export interface TimelineChain {
  timeline: number;
  /** The timeline it branched from and where (from its history file); absent for the first. */
  parent?: { timeline: number; switchLsn: string };
  /** First and last complete segment archived on this timeline. */
  firstSegment?: string;
  lastSegment?: string;
  segments: number;
  /** Segments between where this timeline's archive starts and where it ends that are not in S3. */
  missing: string[];
  /** Complete segments in S3 that the index does not list yet (the index lags, never leads). */
  unindexed: string[];
  /** Segments the index lists that are not in S3: lost objects. */
  indexedButAbsent: string[];
  /** The newest partial segment and up to where it is valid. */
  partial?: { segment: string; validToLsn?: string; final: boolean };
  /** Whether the chain from the newest timeline leads through this one. */
  onCurrentChain: boolean;
}

export interface WalChainAudit {
  cluster: string;
  systemIdentifier?: string;
  root?: string;
  /** The server's wal_segment_size, from archive.json. */
  segmentBytes?: number;
  timelines: TimelineChain[];
  /** The newest timeline, and the furthest position recoverable from the archive on it. */
  headTimeline?: number;
  headLsn?: string;
  /** Timelines the history files name whose history file is not in S3. */
  missingHistories: number[];
  /** Gaps recorded under gaps/ by the archiver. */
  recordedGaps: ArchiveGap[];
  /** True when every timeline on the current chain is complete from its start to the head. */
  gapless: boolean;
  auditedAt: string;
}

// ================================================================ walChainAudit
// The chain audit on a schedule (one per cluster): a hole in the archive that no base backup gets
// past starts a fresh full base backup and tells the webhook (docs/wal-archive.md#the-audit-schedule).

export const WAL_CHAIN_AUDIT_WORKFLOW = 'walChainAudit';
export type WalChainAuditWorkflow = (input: WalChainAuditInput) => Promise<WalChainAuditResult>;

export interface WalChainAuditInput {
  cluster: string;
  /** Report only: no base backup is started (the webhook is still told). */
  dryRun?: boolean;
}

/** Consecutive segments missing from the current chain (or a timeline's missing history file). */
export interface ChainHole {
  timeline: number;
  /** First and last segment missing; absent for a missing history file. */
  fromSegment?: string;
  toSegment?: string;
  segments: number;
  /** `missing`: never archived; `absent`: indexed, its object gone; `history`: the timeline's history file is not in S3. */
  kind: 'missing' | 'absent' | 'history';
}

/**
 * The fresh full base backup a gap starts: `started` now, or `already-started` (one per gap: its id
 * is the gap's, so it runs at most once unless an earlier run failed), or why it could not start.
 */
export interface GapBaseBackup {
  workflowId: string;
  outcome: 'started' | 'already-started' | 'failed-to-start';
  detail?: string;
}

export type WalChainAuditStatus =
  /** No hole on the current chain. */
  | 'ok'
  /** The cluster has no WAL archive yet. */
  | 'no-archive'
  /** Holes, but a base backup newer than the newest one has a complete chain to the head: the window restarted there. */
  | 'gap-covered'
  /** Holes no base backup gets past: a full base backup is started (or already runs) and the webhook is told. */
  | 'gap';

export interface WalChainAuditResult {
  cluster: string;
  status: WalChainAuditStatus;
  root?: string;
  headTimeline?: number;
  headLsn?: string;
  holes: ChainHole[];
  /** Gaps the archiver recorded under gaps/ (ever, on this root). */
  recordedGaps: number;
  /** The oldest base backup whose chain reaches the head, when there is one. */
  recoverableFrom?: string;
  baseBackup?: GapBaseBackup;
  /** Whether the webhook took the gap (false too when none is configured), and why not if it failed. */
  notified?: boolean;
  webhookError?: string;
  auditedAt: string;
}

/** Sent by the webhook when the scheduled audit finds a hole no base backup gets past. */
export interface WalAuditNotification {
  kind: 'wal-chain-audit';
  workflowId: string;
  cluster: string;
  status: 'gap';
  holes: ChainHole[];
  headLsn?: string;
  baseBackup?: GapBaseBackup;
}

/** The audit's Temporal Schedule (and the id of each run it starts): one per cluster. */
export function walChainAuditScheduleId(cluster: string): string {
  return `wal-audit-${cluster}`;
}

/**
 * The full base backup that restarts the recoverable window after a gap starting in `segment`:
 * the gap's own id, so the archiver that found it and every later audit start it at most once.
 * The system identifier is part of it: a new initdb counts its segments from 1 again.
 */
export function gapBaseBackupWorkflowId(cluster: string, systemIdentifier: string, segment: string): string {
  return `base-backup-${cluster}-${systemIdentifier}-after-gap-${segment}`;
}

// ================================================================ baseBackup

/** `auto`: an incremental on the newest complete backup where the server can take one, else full. */
export type BaseBackupMode = 'auto' | 'full';

export interface BaseBackupInput {
  /** A configured cluster (PGOPS_CLUSTERS); the backup is read from its current primary. */
  cluster: string;
  mode?: BaseBackupMode;
  /**
   * An `auto` run takes a full backup once the newest full one is older than this ("24 hours"),
   * so a frequent incremental schedule (which bounds a point-in-time restore's WAL replay) keeps
   * its chains short. Unset: incrementals build on each other until a full one is asked for.
   */
  fullEvery?: string;
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
