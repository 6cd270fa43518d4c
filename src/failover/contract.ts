// The failover contract shared by workflows, activities and clients: types, workflow ids, and the
// watcher's query and signals (both the watcher and the runs that pause it import them from here).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { FailoverPolicy } from '../shared/config';
import type { TargetName } from '../shared/targets';

export type { FailoverPolicy };

/** `failover`: the primary is presumed dead. `switchover`: a planned move with a clean shutdown, no data loss. */
export type FailoverMode = 'failover' | 'switchover';

export interface FailoverInput {
  /** A cluster configured on the worker (PGOPS_CLUSTERS). */
  cluster: string;
  mode?: FailoverMode;
  reason?: string;
  requestedBy?: string;
  /** When a watcher's probe first failed (epoch ms): the confirmation window counts from there. */
  failingSinceMs?: number;
}

/** A cluster's setting as an environment variable: PGOPS_CLUSTER_<NAME>_<SETTING>. */
export function clusterVariable(cluster: string, setting: string): string {
  return `PGOPS_CLUSTER_${cluster.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_${setting}`;
}

/** One failover per cluster at a time: the id is the cluster's, so a second start is refused by Temporal. */
export function failoverWorkflowId(cluster: string): string {
  return `failover-${cluster}`;
}

/** One watcher per cluster, however many workers run. */
export function watcherWorkflowId(cluster: string): string {
  return `failover-watch-${cluster}`;
}

export const watchStatusQuery = defineQuery<WatchState>('watchStatus');
export const pauseWatchSignal = defineSignal<[WatchPause]>('pauseWatch');
export const resumeWatchSignal = defineSignal<[WatchResume]>('resumeWatch');

export interface WatchInput {
  cluster: string;
  /** Carried across continue-as-new. */
  carried?: WatchState;
}

/** A reason the watcher does not act: a maintenance window, a switchover, a restore. */
export interface WatchPause {
  /** Who holds the pause (an operator, or the workflow id of a switchover or restore). */
  by: string;
  reason: string;
  /** Held at most this long (default 1 hour): a holder that dies cannot pause the watcher forever. */
  forMs?: number;
}

export interface WatchResume {
  by: string;
  /** Lift every pause, not only the caller's own. */
  all?: boolean;
}

export interface WatchedFailover {
  workflowId: string;
  startedAt: string;
  primary: TargetName;
  outcome: 'promoted' | 'cancelled' | 'failed' | 'already-running';
  detail: string;
}

export interface WatchState {
  cluster: string;
  watchingSince: string;
  /** The primary as last watched. */
  primary?: TargetName;
  /** Active pauses by holder, with the time each ends (epoch ms). */
  pauses: Record<string, { reason: string; untilMs: number }>;
  failoversStarted: number;
  lastFailover?: WatchedFailover;
  /** Consecutive failovers that promoted nothing: the wait before the next grows with them. */
  fruitlessFailovers: number;
}

/** What one round of watching saw. */
export interface WatchVerdict {
  outcome: 'healthy' | 'failing';
  primary: TargetName;
  probes: number;
  /** When the first failed probe started (epoch ms). */
  failingSinceMs?: number;
  error?: string;
}

/** What a workflow may know of a cluster: names, capabilities and policy, never credentials. */
export interface ClusterView {
  cluster: string;
  primary: TargetName;
  standbys: TargetName[];
  /** host:port of the app-facing endpoint, if configured. */
  endpoint?: string;
  repoint: 'pgbouncer' | 'command' | 'none';
  fenceCommand: boolean;
  /** Nodes on the worker's machine that pgops can stop, start and rebuild. */
  controlledNodes: TargetName[];
  policy: FailoverPolicy;
  /** How the primary was found: from the nodes, the last failover's record, or the configuration. */
  topology: string;
}

/** Which node of a cluster is primary now, and how that was found. */
export interface ClusterTopology {
  cluster: string;
  primary: TargetName;
  standbys: TargetName[];
  source: 'nodes' | 'record' | 'configuration';
  detail: string;
  nodes: StandbyPosition[];
}

/** What a failover writes after promoting, read back while no node answers as primary. */
export interface RecordedPrimary {
  cluster: string;
  primary: TargetName;
  timeline: number;
  workflowId: string;
  at: string;
}

/** A cluster role target ("main:primary", "main:standby") resolved to the node that serves it now. */
export interface RoleResolution {
  roleTarget: string;
  cluster: string;
  node: TargetName;
  primary: TargetName;
  detail: string;
}

export interface PrimaryProbe {
  at: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** One standby as read in one bounded round: where its WAL stands and whether it still hears a primary. */
export interface StandbyPosition {
  node: TargetName;
  reachable: boolean;
  inRecovery?: boolean;
  receiveLsn?: string;
  replayLsn?: string;
  replayPaused?: boolean;
  /** pg_stat_wal_receiver.status; absent when no receiver runs. */
  receiverStatus?: string;
  /** Milliseconds since the WAL receiver last heard from its primary. */
  receiverSilentMs?: number;
  timeline?: number;
  error?: string;
}

export interface FailureConfirmation {
  failed: boolean;
  reason: string;
  probes: PrimaryProbe[];
  standbys: StandbyPosition[];
}

export interface CandidateChoice {
  candidate: TargetName;
  receiveLsn: string;
  replayLsn: string;
  /** Received WAL not replayed after the bounded wait, plus, in switchover, WAL the primary wrote but the candidate lacks. */
  lagBytes: number;
  waitedMs: number;
  /** Switchover: whether the candidate received past the old primary's shutdown checkpoint. */
  receivedShutdownCheckpoint?: boolean;
  standbys: StandbyPosition[];
}

export interface FenceResult {
  node: TargetName;
  actions: string[];
  confirmed: boolean;
  detail: string;
}

export interface PromotionResult {
  node: TargetName;
  timelineBefore: number;
  timelineAfter: number;
  /** Current WAL position right after promotion. */
  lsn: string;
  /** Received WAL the candidate had when promoted: what survives of the old timeline. */
  promotedFromLsn: string;
  testWrite: string;
}

/**
 * A new primary that is not one of the cluster's configured nodes (the instance a point-in-time
 * restore made): its address, reached with the old primary's credentials.
 */
export interface NodeAddress {
  name: string;
  host: string;
  port: number;
}

export interface RepointResult {
  method: 'pgbouncer' | 'command' | 'none';
  detail: string;
  /** The server port a write through the endpoint landed on (checked to be the new primary's). */
  endpointServerPort?: number;
  verifiedWrite: boolean;
}

export interface SwitchoverStop {
  /** The old primary's shutdown checkpoint: the candidate must have received past it. */
  checkpointLsn: string;
  pausedEndpoint: boolean;
}

export interface FailoverApproval {
  operator: string;
  /** Accept a candidate beyond the lag limit. */
  forcePromotion?: boolean;
  /** The operator vouches that the old primary is fenced (powered off, isolated). */
  fencingConfirmed?: boolean;
  /** Why: required, recorded with the approval. */
  note?: string;
}

/** An approval that counted for nothing, as recorded: who (when a valid name) and why, never the raw payload. */
export interface RefusedApproval {
  why: string;
  at: string;
}

export type FailoverStage =
  | 'confirming'
  | 'choosing'
  | 'awaiting-approval'
  | 'stopping-primary'
  | 'fencing'
  | 'promoting'
  | 'repointing'
  | 'recording'
  | 'done'
  | 'cancelled'
  | 'failed';

export interface StepTiming {
  step: string;
  startedAt: string;
  ms: number;
  outcome: string;
}

export interface FailoverStatus {
  cluster: string;
  mode: FailoverMode;
  stage: FailoverStage;
  oldPrimary: TargetName;
  candidate?: TargetName;
  /** What the workflow waits for from an operator, if anything. */
  waitingFor?: 'approval' | 'forced-promotion' | 'fencing-confirmation';
  /** When the current wait for an operator began. */
  waitingSince?: string;
  refusal?: string;
  /** The latest approvals refused (no gate waiting, wrong gate, not an allowed approver, no reason). */
  refusedApprovals: RefusedApproval[];
  steps: StepTiming[];
}

export interface FailoverResult {
  /** `failed` appears only in the audit record of a run that failed. */
  outcome: 'promoted' | 'cancelled' | 'failed';
  /** Why a failed run failed (audit record only). */
  error?: string;
  cluster: string;
  mode: FailoverMode;
  workflowId: string;
  /** With workflowId, the audit record's id: each run of a workflow id is recorded. */
  runId: string;
  oldPrimary: TargetName;
  newPrimary?: TargetName;
  reason?: string;
  requestedBy?: string;
  confirmation?: FailureConfirmation;
  switchover?: SwitchoverStop;
  choice?: CandidateChoice;
  /** Bytes behind when promoted; 0 is guaranteed in switchover. */
  lagBytesAtPromotion?: number;
  /**
   * Commits in the old primary's WAL after the point the new primary's history starts: lost by
   * the failover (with synchronous replication none of them was acknowledged). Counted with
   * pg_waldump when pgops controls the old primary's server; absent otherwise.
   */
  lostCommits?: number;
  lostCommitsDetail?: string;
  forced: boolean;
  /** Each accepted for the gate that was waiting when it arrived. */
  approvals: FailoverApproval[];
  refusedApprovals: RefusedApproval[];
  fence?: FenceResult;
  promotion?: PromotionResult;
  repoint?: RepointResult;
  steps: StepTiming[];
  startedAt: string;
  finishedAt: string;
  totalMs: number;
  auditKey?: string;
}

export interface RejoinInput {
  cluster: string;
  /** The old primary, to become a standby. */
  node: TargetName;
  /** The primary it will stream from. */
  newPrimary: TargetName;
  /** Fall back to a fresh pg_basebackup when pg_rewind cannot work (default true). */
  allowBaseBackup?: boolean;
}

export interface RejoinResult {
  node: TargetName;
  newPrimary: TargetName;
  method: 'pg_rewind' | 'pg_basebackup';
  rewindError?: string;
  /** Where the replaced data directory was moved when a base backup was needed. */
  keptOldDataDir?: string;
  receiverStatus: string;
  steps: StepTiming[];
}

// ---------------------------------------------------------------- messages

export const failoverStatusQuery = defineQuery<FailoverStatus>('status');
export const approveFailoverSignal = defineSignal<[FailoverApproval]>('approve');
export const approveFailoverUpdate = defineUpdate<FailoverStatus, [FailoverApproval]>('approve');

// ---------------------------------------------------------------- workflow types
// The names the worker registers (src/workflows.ts exports a function of each name with this
// signature; test/contracts.test.ts holds them together) and the clients start.

export const FAILOVER_PROMOTION_WORKFLOW = 'failoverPromotion';
export type FailoverPromotionWorkflow = (input: FailoverInput) => Promise<FailoverResult>;

export const FAILOVER_WATCHER_WORKFLOW = 'failoverWatcher';
export type FailoverWatcherWorkflow = (input: WatchInput) => Promise<void>;

export const REJOIN_AS_STANDBY_WORKFLOW = 'rejoinAsStandby';
export type RejoinAsStandbyWorkflow = (input: RejoinInput) => Promise<RejoinResult>;
