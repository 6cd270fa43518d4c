// restoreDrill: the proof, on a schedule, that the cluster can be restored. The newest base backup
// plus the WAL archive, to a random moment of the last 24 hours (the workflow's seeded random:
// the same on replay), into a scratch instance; it must start, pause at the target, hold the live
// database's tables, and pass amcheck on its biggest indexes. The result is kept beside the base
// backup (`pgops backups list` shows when each was last proved restorable); the scratch instance
// is removed whatever happened; a failed drill reaches the webhook.
import { ApplicationFailure, CancellationScope, uuid4, workflowInfo } from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import { isDuration } from '../../shared/duration';
import { NAME_PATTERN } from '../../shared/targets';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { drillFailures, type DrillRecord, type RecoveryTarget, type RestoreDrillInput } from '../contract';
import { pitrSteps } from './pitrSteps';

function validate(input: RestoreDrillInput): void {
  const bad = (message: string) => ApplicationFailure.nonRetryable(message, 'BadInput');
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) throw bad(`input.cluster must name a configured cluster, got ${JSON.stringify(input?.cluster)}`);
  if (!input.instance || typeof input.instance.dataDir !== 'string' || !input.instance.dataDir.startsWith('/') || !Number.isInteger(input.instance.port)) {
    throw bad('input.instance must be {dataDir: an absolute path, port: a number} for the scratch instance');
  }
  if (input.within !== undefined && !isDuration(input.within)) throw bad(`input.within must be a duration such as "24 hours", got ${JSON.stringify(input.within)}`);
}

/** Tables the live database has that the restored one lacks, or a restored database empty where the live one is not. */
export function implausibleCounts(live: Record<string, number>, restored: Record<string, number>): string[] {
  const problems = Object.keys(live)
    .filter((table) => restored[table] === undefined)
    .map((table) => `${table} is missing from the restored database`);
  const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
  if (total(live) > 0 && total(restored) === 0) problems.push('the restored database has no rows at all');
  return problems;
}

export async function restoreDrill(input: RestoreDrillInput): Promise<DrillRecord> {
  validate(input);
  const steps = pitrSteps(input.heartbeatTimeout ?? '30 seconds');
  const { workflowId } = workflowInfo();
  const restoreId = `drill${uuid4().replace(/-/g, '').slice(0, 8)}`;
  const startedAt = new Date().toISOString();
  const record: DrillRecord = { workflowId, cluster: input.cluster, ok: false, checks: [], indexChecks: [], startedAt, finishedAt: startedAt };
  const check = (name: string, ok: boolean, detail: string) => record.checks.push({ name, ok, detail });
  let root: string | undefined;
  let claimed = false;

  try {
    // The newest base backup and the archive's head; then a moment between them, in the last `within`.
    const latest = await steps.planRecovery({ cluster: input.cluster, target: { kind: 'latest' } });
    root = latest.backup.root;
    const head = Date.parse(latest.window.to?.at ?? '');
    const earliest = Math.max(Date.now() - msToNumber(input.within ?? '24 hours'), Date.parse(latest.backup.stoppedAt));
    const target: RecoveryTarget =
      Number.isNaN(head) || head <= earliest ? { kind: 'latest' } : { kind: 'time', time: new Date(earliest + Math.floor(Math.random() * (head - earliest))).toISOString() };
    record.target = target;
    const plan = target.kind === 'latest' ? latest : await steps.planRecovery({ cluster: input.cluster, target });
    record.backupId = plan.backup.backupId;

    await steps.claimRestoreInstance({ cluster: input.cluster, instance: input.instance, restoreId });
    claimed = true;
    const fetched = await steps.fetchBaseBackup({ cluster: input.cluster, restoreId, instance: input.instance, backup: plan.backup });
    check('fetch', true, `base backup ${plan.backup.chain.join(' + ')}: ${fetched.downloadedBytes} bytes, SHA-256 and pg_verifybackup passed`);
    await steps.configureRecovery({ cluster: input.cluster, restoreId, instance: input.instance, plan });
    const replay = await steps.replayToTarget({ cluster: input.cluster, restoreId, instance: input.instance, target, headLsn: plan.window.to!.lsn, headTimeline: plan.window.to!.timeline, segmentBytes: plan.segmentBytes });
    check('reaches the target', true, `paused at ${replay.reachedLsn}, last commit ${replay.lastCommitAt ?? 'none replayed'}, replay ${replay.replayMs} ms`);

    const live = await steps.resolveClusterRole(`${input.cluster}:primary`);
    const contents = await steps.inspectRestored({ cluster: input.cluster, instance: input.instance, liveNode: live.node });
    record.report = { ...contents, ...replay, fetchMs: fetched.fetchMs };
    const problems = implausibleCounts(contents.liveRowCounts, contents.rowCounts);
    check('row counts plausible', problems.length === 0, problems.join('; ') || `${Object.keys(contents.rowCounts).length} tables, ${contents.differences.length} differ from live (expected: live moved on)`);

    // A scratch copy: promoting it (a timeline of its own, never archived) lets amcheck be created there.
    await steps.promoteInstance({ cluster: input.cluster, instance: input.instance });
    record.indexChecks = await steps.checkBiggestIndexes({ cluster: input.cluster, instance: input.instance, count: input.indexesToCheck ?? 5 });
    const bad = record.indexChecks.filter((c) => !c.ok);
    check('amcheck', bad.length === 0, bad.map((c) => `${c.index}: ${c.error}`).join('; ') || `bt_index_check passed on ${record.indexChecks.map((c) => c.index).join(', ') || 'no index'}`);
    record.ok = record.checks.every((c) => c.ok);
  } catch (err) {
    record.error = causeMessage(err);
    check('drill', false, record.error);
  } finally {
    await CancellationScope.nonCancellable(async () => {
      if (claimed) await steps.removeRestoreInstance({ cluster: input.cluster, instance: input.instance, restoreId }).catch(() => undefined);
    });
  }
  record.finishedAt = new Date().toISOString();
  if (record.ok) record.provedAt = record.finishedAt;
  await steps.recordDrill({ root, record });
  if (!record.ok) {
    await steps
      .notifyWebhook({ workflowId, target: input.cluster, kind: 'restore-drill', status: 'failed', backupId: record.backupId, error: drillFailures(record) })
      .catch(() => undefined);
    throw ApplicationFailure.nonRetryable(`restore drill of ${input.cluster} failed: ${drillFailures(record)}`, 'DrillFailed');
  }
  return record;
}
