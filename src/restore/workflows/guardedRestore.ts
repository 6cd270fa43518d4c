// guardedRestore: the runbook that replaces restore.sh. Fetch and check the backup, show the plan,
// restore into a staging database while an operator decides, and only after approval take a
// safety snapshot and swap the restored copy in. Rejection, expiry or any failure before the
// swap leave the target as it was.
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Activities } from '../../activities';
import { isDuration } from '../../shared/duration';
import { DEFAULT_COMPRESSION } from '../../backup/defaults';
import { isOperatorName } from '../../shared/approval';
import { installApproveReject } from '../../shared/approvalGate';
import { stepTimer } from '../../shared/temporal/stepTimer';
import { PGOPS_BACKUP_ID, PGOPS_TARGET } from '../../shared/temporal/searchAttributes';
import type { BackupManifest } from '../../backup/manifest';
import type { GuardedRestoreInput, GuardedRestoreResult, RestoreAudit, RestorePlan, RestoreStatus, StagingRestoreResult } from '../contract';
import type { ApprovalPolicy } from '../../shared/approval';
import { NAME_PATTERN, ROLE_TARGET } from '../../shared/targets';
import { backupActivities, newBackupId } from '../../backup/workflows/backupSteps';
import { withWatchersPaused } from '../../failover/workflows/watchersPaused';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { restoreStatusQuery, restorePlanQuery, approveSignal, rejectSignal, approveUpdate, rejectUpdate } from '../contract';

/** The same decisions as updates: the caller learns at once whether theirs was accepted. */


function restoreSteps(heartbeatTimeout: string) {
  const long = { startToCloseTimeout: '6 hours', heartbeatTimeout } as const;
  const { fetchBackup } = proxyActivities<Activities>({
    ...long,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  const { restoreIntoStaging } = proxyActivities<Activities>({
    ...long,
    // Rejection cancels it; cleanup must not drop the database or delete files while it still writes them.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
  });
  // The swap runs with the target closed to connections: a dead worker must be noticed and the
  // swap finished (or the target reopened) within seconds, not at the end of a long timeout.
  const { swapIntoPlace } = proxyActivities<Activities>({
    startToCloseTimeout: '3 minutes',
    heartbeatTimeout: '5 seconds',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 seconds', maximumAttempts: 10 },
  });
  const { restorePolicy, planRestore, clustersWithNode, resolveClusterRole, createMissingRoles } = proxyActivities<Activities>({
    // Counting the target's rows for the plan is the slowest of these.
    startToCloseTimeout: '30 minutes',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  });
  const { dropStagingDatabase, reopenDatabase, discardFetchedBackup, recordRestoreAudit } = proxyActivities<Activities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  return { fetchBackup, restoreIntoStaging, restorePolicy, planRestore, swapIntoPlace, clustersWithNode, resolveClusterRole, createMissingRoles, dropStagingDatabase, reopenDatabase, discardFetchedBackup, recordRestoreAudit };
}

function validate(input: GuardedRestoreInput): void {
  const bad = (message: string) => ApplicationFailure.nonRetryable(message, 'BadInput');
  if (!input || typeof input.target !== 'string' || !(NAME_PATTERN.test(input.target) || ROLE_TARGET.test(input.target))) {
    throw bad(`input.target must name a configured target (e.g. "primary") or a cluster's primary (e.g. "main:primary"), got ${JSON.stringify(input?.target)}`);
  }
  if (ROLE_TARGET.exec(input.target)?.[2] === 'standby') {
    throw bad(`input.target ${input.target}: a standby is read-only and cannot be restored into; restore into ${input.target.replace(/:standby$/, ':primary')}`);
  }
  if (typeof input.backup !== 'string' || !/^(latest|[A-Za-z0-9._-]+)$/.test(input.backup)) {
    throw bad(`input.backup must be a backup id or "latest", got ${JSON.stringify(input.backup)}`);
  }
  if (input.from !== undefined && !NAME_PATTERN.test(input.from)) throw bad(`input.from must name a target, got ${JSON.stringify(input.from)}`);
  if (input.mode !== 'replace' && input.mode !== 'new-database') throw bad(`input.mode must be "replace" or "new-database", got ${JSON.stringify(input.mode)}`);
  if (input.mode === 'replace' && input.newDatabase !== undefined) throw bad('input.newDatabase only applies to mode "new-database"');
  if (!isOperatorName(input.requestedBy)) {
    throw bad(`input.requestedBy must name who asks for the restore (letters, digits, . _ @ + -), got ${JSON.stringify(input.requestedBy)}`);
  }
  if (input.approvalTimeout !== undefined && !isDuration(input.approvalTimeout)) {
    throw bad(`input.approvalTimeout must be a duration such as "24 hours", got ${JSON.stringify(input.approvalTimeout)}`);
  }
  if (input.jobs !== undefined && (!Number.isInteger(input.jobs) || input.jobs < 1 || input.jobs > 64)) throw bad(`input.jobs must be 1 to 64, got ${input.jobs}`);
  if (input.heartbeatTimeout !== undefined && !isDuration(input.heartbeatTimeout)) {
    throw bad(`input.heartbeatTimeout must be a duration such as "30 seconds", got ${JSON.stringify(input.heartbeatTimeout)}`);
  }
}

/** UTC "YYYYMMDDHHMMSS" of workflow time: part of database names, the same on replay. */
function stampNow(): string {
  return new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

export async function guardedRestore(requested: GuardedRestoreInput): Promise<GuardedRestoreResult> {
  validate(requested);
  const steps = restoreSteps(requested.heartbeatTimeout ?? '30 seconds');
  // "main:primary" is whichever node is primary now, and its backups are catalogued as "main".
  const role = ROLE_TARGET.test(requested.target) ? await steps.resolveClusterRole(requested.target) : undefined;
  const input: GuardedRestoreInput = role ? { ...requested, target: role.node, from: requested.from ?? role.cluster } : requested;
  const { workflowId, runId } = workflowInfo();
  const restoreId = uuid4().replace(/-/g, '').slice(0, 12);
  const stamp = stampNow();
  const startedAt = new Date();
  const { durationsMs, timed } = stepTimer();

  const status: RestoreStatus = { stage: 'fetching', requestedBy: input.requestedBy, stagingReady: false, ignored: [] };
  let policy: ApprovalPolicy | undefined;
  setHandler(restoreStatusQuery, () => status);
  setHandler(restorePlanQuery, () => status.plan);
  // Approve/reject through the shared gate: the one approval rule against the worker's restore policy.
  installApproveReject(status, () => policy, { approve: { signal: approveSignal, update: approveUpdate }, reject: { signal: rejectSignal, update: rejectUpdate } });
  upsertSearchAttributes([{ key: PGOPS_TARGET, value: input.target }]);

  let manifest: BackupManifest | undefined;
  let stagingStarted = false;
  let createdRoles: string[] | undefined;
  const audit = (outcome: RestoreAudit['outcome'], extra: Partial<RestoreAudit> = {}): RestoreAudit => ({
    workflowId,
    runId,
    outcome,
    requestedBy: input.requestedBy,
    reason: input.reason,
    decision: status.decision,
    ignored: status.ignored,
    target: input.target,
    mode: input.mode,
    backupId: manifest?.backupId,
    database: status.plan?.database,
    safetySnapshotId: status.safetySnapshotId,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationsMs,
    ...(createdRoles ? { createdRoles } : {}),
    ...extra,
  });
  /** Drops what this restore made (never the target) and records how it ended. */
  const finish = async (record: RestoreAudit): Promise<RestoreAudit> =>
    CancellationScope.nonCancellable(async () => {
      if (stagingStarted) await steps.dropStagingDatabase({ restoreId, target: input.target });
      await steps.discardFetchedBackup({ restoreId });
      return { ...record, auditKey: await steps.recordRestoreAudit(record) };
    });

  try {
    policy = await steps.restorePolicy({ target: input.target });
    const fetched = await timed('fetch', () =>
      steps.fetchBackup({ backup: input.backup, from: input.from ?? input.target, restoreId }),
    );
    manifest = fetched.manifest;
    upsertSearchAttributes([{ key: PGOPS_BACKUP_ID, value: manifest.backupId }]);

    status.stage = 'planning';
    const plan = await timed('plan', () =>
      steps.planRestore({ restoreId, target: input.target, mode: input.mode, newDatabase: input.newDatabase, stamp, manifest: manifest! }),
    );
    status.plan = plan;
    upsertMemo({ plan: planSummary(plan, input) });

    // The staging restore never touches the target, so it runs while the operator decides:
    // after approval only the snapshot and the rename window remain. Roles the target's server
    // lacks are created only after approval, so then the staging restore waits for it.
    const missingRoles = plan.lacks?.missingRoles ?? [];
    const stagingScope = new CancellationScope();
    let stagingFailure: unknown;
    const startStaging = (): Promise<StagingRestoreResult | undefined> => {
      stagingStarted = true;
      return stagingScope
        .run(() =>
          timed('stagingRestore', () =>
            steps.restoreIntoStaging({
              restoreId,
              target: input.target,
              manifest: manifest!,
              replacing: input.mode === 'replace' ? plan.database : undefined,
              jobs: input.jobs ?? 2,
            }),
          ),
        )
        .then(
          (result) => {
            status.stagingReady = true;
            return result;
          },
          (err) => {
            stagingFailure = err;
            return undefined;
          },
        );
    };
    let staging = missingRoles.length === 0 ? startStaging() : undefined;

    status.stage = 'awaiting-approval';
    const timeout = input.approvalTimeout ?? policy.approvalTimeout;
    const waitStarted = Date.now();
    status.awaitingApprovalSince = new Date(waitStarted).toISOString();
    status.approvalDeadline = new Date(waitStarted + msToNumber(timeout)).toISOString();
    const decided = await condition(() => status.decision !== undefined || stagingFailure !== undefined, timeout);
    durationsMs.approvalWait = Date.now() - waitStarted;
    if (stagingFailure !== undefined) throw stagingFailure;

    if (!decided || status.decision?.decision === 'reject') {
      status.stage = decided ? 'rejected' : 'expired';
      stagingScope.cancel();
      await staging;
      return await finish(audit(decided ? 'rejected' : 'expired'));
    }
    if (!staging) {
      status.stage = 'restoring';
      createdRoles = await timed('createRoles', () => steps.createMissingRoles({ restoreId, target: input.target, manifest: manifest!, roles: missingRoles }));
      staging = startStaging();
    }
    const stagingDone = staging;

    const [restored] = await Promise.all([
      stagingDone.then((result) => {
        if (!result) throw stagingFailure;
        return result;
      }),
      input.mode === 'replace' ? timed('safetySnapshot', () => takeSafetySnapshot(input, status)) : undefined,
    ]);
    status.stage = 'swapping';
    // The swap closes the target for milliseconds: no failover watcher may take that for a dead primary.
    const clusters = input.mode === 'replace' ? await steps.clustersWithNode(input.target) : [];
    const swap = await withWatchersPaused(clusters, `restore ${restoreId}`, 15 * 60_000, () =>
      timed('swap', () =>
        steps.swapIntoPlace({
          restoreId,
          target: input.target,
          mode: input.mode,
          database: plan.database,
          stamp,
          tableCount: restored.tablesCompared,
        }),
      ),
    );
    stagingStarted = false; // the staging database is the target now
    status.stage = 'done';
    const record = await finish(audit('restored', { preRestoreDatabase: swap.preRestoreDatabase, downtimeMs: swap.downtimeMs }));
    return {
      ...record,
      reminder: swap.preRestoreDatabase
        ? `the replaced database is kept as ${swap.preRestoreDatabase} (connections disabled); drop it with: pgops restore cleanup --target ${input.target} --database ${swap.preRestoreDatabase}`
        : undefined,
    };
  } catch (err) {
    const failedAt = status.stage;
    status.stage = 'failed';
    status.error = causeMessage(err);
    // A swap that failed after refusing connections must not leave the target refusing them.
    if (failedAt === 'swapping' && status.plan) {
      try {
        await CancellationScope.nonCancellable(() => steps.reopenDatabase({ target: input.target, database: status.plan!.database }));
      } catch (reopenErr) {
        // Said beside the restore's own failure; the staging cleanup and the audit still run.
        status.error = `${status.error} (re-opening ${status.plan.database} also failed: ${causeMessage(reopenErr)})`;
      }
    }
    try {
      await finish(audit('failed', { error: status.error }));
    } catch (cleanupErr) {
      // The restore's own failure is what the operator must see; the cleanup's goes beside it.
      status.error = `${status.error} (cleanup also failed: ${causeMessage(cleanupErr)})`;
    }
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.nonRetryable(
      `guarded restore of ${input.backup} into ${input.target} failed, target unchanged unless the swap completed: ${status.error}`,
      'RestoreFailed',
    );
  }
}

/** A backup of the target as it is now, uploaded, so this restore can itself be undone. */
async function takeSafetySnapshot(input: GuardedRestoreInput, status: RestoreStatus): Promise<void> {
  status.stage = 'safety-snapshot';
  const { dumpDatabase, verifyByTestRestore, uploadBackup } = backupActivities(input.heartbeatTimeout ?? '30 seconds');
  const backupId = newBackupId(input.target);
  await dumpDatabase({ target: input.target, backupId, format: 'custom', jobs: 1, compression: DEFAULT_COMPRESSION });
  const verification = await verifyByTestRestore({ backupId, level: 'list', sourceTarget: input.target });
  await uploadBackup({ backupId, verification });
  status.safetySnapshotId = backupId;
  status.stage = 'restoring';
}

/** What the Temporal UI shows beside the workflow: enough to judge the restore without a query. */
function planSummary(plan: RestorePlan, input: GuardedRestoreInput) {
  return {
    requestedBy: input.requestedBy,
    reason: input.reason ?? '',
    backupId: plan.backupId,
    backupTakenAt: plan.backupTakenAt,
    backupAgeHours: Math.round(plan.backupAgeSeconds / 360) / 10,
    mode: plan.mode,
    database: plan.database,
    currentSizeBytes: plan.current?.sizeBytes ?? 0,
    activeConnections: plan.current?.activeConnections ?? 0,
    tablesDiffering: plan.differences.length,
  };
}
