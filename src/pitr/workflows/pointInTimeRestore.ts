// pointInTimeRestore: "give me the database as it was at 14:31:07". Plan from the archive (refuse
// a target outside the recoverable window before anything exists), fetch and verify the base
// backup into a new instance, replay WAL until recovery pauses at the target, report what is
// there against the live database, and wait for a second person. Approved: promote the instance
// (side), or promote it, fence the old primary and repoint clients (replace). Rejected, expired,
// cancelled or failed before the switch: the instance and its files are removed, and the live
// cluster was never touched.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import { describePayload, isOperatorName, type ApprovalPolicy } from '../../shared/approval';
import { installApproveReject } from '../../shared/approvalGate';
import { stepTimer } from '../../shared/temporal/stepTimer';
import { isDuration } from '../../shared/duration';
import { NAME_PATTERN } from '../../shared/targets';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { PGOPS_TARGET } from '../../shared/temporal/searchAttributes';
import { withWatchersPaused } from '../../failover/workflows/watchersPaused';
import { pauseWatchSignal, watcherWorkflowId } from '../../failover/contract';
import {
  pitrApproveSignal,
  pitrApproveUpdate,
  pitrRejectSignal,
  pitrRejectUpdate,
  pitrStatusQuery,
  type PitrAudit,
  type PitrStatus,
  type PointInTimeRestoreInput,
  type PointInTimeRestoreResult,
} from '../contract';
import { describeTarget, recoveryTargetProblem } from '../recoveryTarget';
import { pitrSteps } from './pitrSteps';

/** After a replace the watcher stays paused this long: it would take the fenced old primary for a failure to fail over from. */
const WATCHER_HOLD_AFTER_REPLACE_MS = 7 * 24 * 3_600_000;

function validate(input: PointInTimeRestoreInput): void {
  const bad = (message: string) => ApplicationFailure.nonRetryable(message, 'BadInput');
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) {
    throw bad(`input.cluster must name a configured cluster (e.g. "main"), got ${JSON.stringify(input?.cluster)}`);
  }
  const targetProblem = recoveryTargetProblem(input.target);
  if (targetProblem) throw bad(`input.target: ${targetProblem}`);
  if (!input.instance || typeof input.instance.dataDir !== 'string' || !input.instance.dataDir.startsWith('/') || !Number.isInteger(input.instance.port)) {
    throw bad(`input.instance must be {dataDir: an absolute path, port: a number}, got ${describePayload(input.instance)}`);
  }
  if (input.mode !== 'side' && input.mode !== 'replace') throw bad(`input.mode must be "side" or "replace", got ${JSON.stringify(input.mode)}`);
  if (!isOperatorName(input.requestedBy)) {
    throw bad(`input.requestedBy must name who asks for the restore (letters, digits, . _ @ + -), got ${JSON.stringify(input.requestedBy)}`);
  }
  for (const [name, value] of [['approvalTimeout', input.approvalTimeout], ['heartbeatTimeout', input.heartbeatTimeout]] as const) {
    if (value !== undefined && !isDuration(value)) throw bad(`input.${name} must be a duration such as "24 hours", got ${JSON.stringify(value)}`);
  }
}

export async function pointInTimeRestore(input: PointInTimeRestoreInput): Promise<PointInTimeRestoreResult> {
  validate(input);
  const steps = pitrSteps(input.heartbeatTimeout ?? '30 seconds');
  const { workflowId, runId } = workflowInfo();
  const restoreId = uuid4().replace(/-/g, '').slice(0, 12);
  const startedAt = new Date();
  const { durationsMs, timed } = stepTimer();
  const status: PitrStatus = { stage: 'planning', requestedBy: input.requestedBy, mode: input.mode, ignored: [] };
  let policy: ApprovalPolicy | undefined;
  setHandler(pitrStatusQuery, () => status);
  // Approve/reject through the shared gate: the one approval rule, against the worker's restore policy.
  installApproveReject(
    status,
    () => policy,
    { approve: { signal: pitrApproveSignal, update: pitrApproveUpdate }, reject: { signal: pitrRejectSignal, update: pitrRejectUpdate } },
    'point-in-time restore',
  );
  upsertSearchAttributes([{ key: PGOPS_TARGET, value: input.cluster }]);

  let claimed = false;
  let switched = false;
  const audit = (outcome: PitrAudit['outcome'], extra: Partial<PitrAudit> = {}): PitrAudit => ({
    workflowId,
    runId,
    outcome,
    cluster: input.cluster,
    mode: input.mode,
    target: input.target,
    instance: input.instance,
    requestedBy: input.requestedBy,
    reason: input.reason,
    decision: status.decision,
    ignored: status.ignored,
    backupId: status.recovery?.backup.backupId,
    report: status.report,
    instanceRemoved: false,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationsMs,
    ...extra,
  });
  /** Removes the instance (when not kept) and records how the restore ended. */
  const finish = (record: PitrAudit, removeInstance: boolean): Promise<PitrAudit> =>
    CancellationScope.nonCancellable(async () => {
      const removing = removeInstance && claimed;
      if (removing) await steps.removeRestoreInstance({ cluster: input.cluster, instance: input.instance, restoreId });
      const finished = { ...record, instanceRemoved: removing, finishedAt: new Date().toISOString() };
      return { ...finished, auditKey: await steps.recordPitrAudit(finished) };
    });

  try {
    policy = await steps.restorePolicy({ target: (await steps.resolveClusterRole(`${input.cluster}:primary`)).node });
    const recovery = await timed('plan', () => steps.planRecovery({ cluster: input.cluster, target: input.target }));
    status.recovery = recovery;

    status.stage = 'fetching';
    await steps.claimRestoreInstance({ cluster: input.cluster, instance: input.instance, restoreId });
    claimed = true;
    const fetched = await timed('fetch', () => steps.fetchBaseBackup({ cluster: input.cluster, restoreId, instance: input.instance, backup: recovery.backup }));
    await steps.configureRecovery({ cluster: input.cluster, restoreId, instance: input.instance, plan: recovery });

    status.stage = 'replaying';
    const replay = await timed('replay', () =>
      steps.replayToTarget({ cluster: input.cluster, restoreId, instance: input.instance, target: input.target, headLsn: recovery.window.to!.lsn, headTimeline: recovery.window.to!.timeline, segmentBytes: recovery.segmentBytes }),
    );

    status.stage = 'inspecting';
    // The live side of the comparison is the cluster's primary now (it follows failovers).
    const live = await steps.resolveClusterRole(`${input.cluster}:primary`);
    const contents = await timed('inspect', () => steps.inspectRestored({ cluster: input.cluster, instance: input.instance, liveNode: live.node }));
    status.report = { ...contents, reachedLsn: replay.reachedLsn, lastCommitAt: replay.lastCommitAt, timeline: replay.timeline, fetchMs: fetched.fetchMs, replayMs: replay.replayMs, segmentsFetched: replay.segmentsFetched, pausedAtArchiveHead: replay.pausedAtArchiveHead };
    upsertMemo({ plan: planSummary(input, status) });

    status.stage = 'awaiting-approval';
    const timeout = input.approvalTimeout ?? policy.approvalTimeout;
    const waitStarted = Date.now();
    status.approvalDeadline = new Date(waitStarted + msToNumber(timeout)).toISOString();
    const decided = await condition(() => status.decision !== undefined, timeout);
    durationsMs.approvalWait = Date.now() - waitStarted;
    if (!decided || status.decision?.decision === 'reject') {
      status.stage = decided ? 'rejected' : 'expired';
      return await finish(audit(decided ? 'rejected' : 'expired'), true);
    }

    status.stage = 'promoting';
    if (input.mode === 'side') {
      const promotion = await timed('promote', () => steps.promoteInstance({ cluster: input.cluster, instance: input.instance }));
      status.stage = 'done';
      const record = await finish(audit('restored', { promotion }), false);
      return {
        ...record,
        reminder: `the restored instance runs on port ${input.instance.port} (${input.instance.dataDir}), promoted to timeline ${promotion.timeline}; the live cluster was not changed. Stop it and delete its directory when done`,
      };
    }

    // Replace: the restored instance becomes the cluster's primary. The watcher must not take the
    // fenced old primary for a failure meanwhile, nor afterwards (it knows only the configured nodes).
    status.stage = 'switching';
    const oldPrimary = live.node;
    const newPrimaryAddress = { name: `${input.cluster}-restored-${input.instance.port}`, host: '127.0.0.1', port: input.instance.port };
    const switchResult = await withWatchersPaused([input.cluster], `point-in-time restore ${restoreId} replaces ${oldPrimary}`, 15 * 60_000, async () => {
      const promotion = await timed('promote', () => steps.promoteInstance({ cluster: input.cluster, instance: input.instance }));
      switched = true;
      const fence = await timed('fence', () => steps.fenceOldPrimary({ cluster: input.cluster, node: oldPrimary, newPrimary: newPrimaryAddress.name, newPrimaryAddress }));
      const repoint = await timed('repoint', () =>
        steps.repointClients({ cluster: input.cluster, oldPrimary, newPrimary: newPrimaryAddress.name, newPrimaryAddress, workflowId }),
      );
      return { promotion, fence, repoint };
    });
    await getExternalWorkflowHandle(watcherWorkflowId(input.cluster))
      .signal(pauseWatchSignal, { by: `pitr/${workflowId}`, reason: `cluster replaced by point-in-time restore ${workflowId}: configure its new primary, then resume`, forMs: WATCHER_HOLD_AFTER_REPLACE_MS })
      .catch(() => undefined);
    status.stage = 'done';
    const record = await finish(audit('restored', { ...switchResult, oldPrimary }), false);
    return {
      ...record,
      reminder:
        `clients now reach the restored instance (127.0.0.1:${input.instance.port}, ${input.instance.dataDir}); the old primary ${oldPrimary} is stopped and kept as it was. ` +
        `Configure the new primary in PGOPS_CLUSTER_${input.cluster.toUpperCase()}_PRIMARY, rebuild the standbys from it, then: pgops failover watch --cluster ${input.cluster} --resume --all`,
    };
  } catch (err) {
    status.error = causeMessage(err);
    const failedAt = status.stage;
    status.stage = 'failed';
    const cancelled = isCancellation(err);
    try {
      // Past the switch the restored instance is the primary: it stays whatever failed after.
      await finish(audit(cancelled ? 'cancelled' : 'failed', { error: status.error }), !switched);
    } catch (cleanupErr) {
      status.error = `${status.error} (cleanup also failed: ${causeMessage(cleanupErr)})`;
    }
    if (cancelled) throw err;
    throw ApplicationFailure.nonRetryable(
      `point-in-time restore of ${input.cluster} to ${describeTarget(input.target)} failed at ${failedAt}: ${status.error}` +
        (switched ? ' (after the switch: the restored instance is the primary)' : '; the live cluster was not changed'),
      'PitrFailed',
    );
  }
}

/** What the Temporal UI shows beside the workflow: enough to judge the restore without a query. */
function planSummary(input: PointInTimeRestoreInput, status: PitrStatus) {
  return {
    requestedBy: input.requestedBy,
    reason: input.reason ?? '',
    mode: input.mode,
    target: describeTarget(input.target),
    backupId: status.recovery?.backup.backupId ?? '',
    reachedLsn: status.report?.reachedLsn ?? '',
    lastCommitAt: status.report?.lastCommitAt ?? '',
    tablesDiffering: status.report?.differences.length ?? 0,
  };
}
