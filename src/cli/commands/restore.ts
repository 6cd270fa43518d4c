// pgops restore start|status|approve|reject|cleanup: the operator's side of guardedRestore.
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { loadTargets } from '../../shared/config';
import type { RestoreMode, RestorePlan, RestoreStatus } from '../../restore/contract';
import { formatTable } from '../format';
import { decideRestore, restoreStatus, startRestore } from '../../client/restores';
import { decisionCommand, megabytes, operator, UsageError, warnWhenNoWorker, withTemporal, workflowIdArg } from './common';

const PRE_RESTORE = /_pre_restore_\d{14}$/;
const PLAN_WAIT_MS = 10 * 60_000;

export async function restoreCommand([sub, ...args]: string[]): Promise<number> {
  switch (sub) {
    case 'start':
      return startCommand(args);
    case 'status':
      return withTemporal(async (client) => printStatus(await restoreStatus(client, workflowIdArg(args, 'restore', 'status'))));
    case 'approve':
    case 'reject':
      return decisionCommand('restore', sub, args, decideRestore);
    case 'cleanup':
      return cleanupCommand(args);
    default:
      throw new UsageError(`restore needs start, status, approve, reject or cleanup, got ${sub ?? 'nothing'}`);
  }
}

async function startCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: 'string', default: 'primary' },
      backup: { type: 'string', default: 'latest' },
      from: { type: 'string' },
      mode: { type: 'string' },
      'new-database': { type: 'string' },
      reason: { type: 'string' },
      as: { type: 'string' },
      'approval-timeout': { type: 'string' },
      jobs: { type: 'string', default: '2' },
    },
  });
  if (values.mode !== 'replace' && values.mode !== 'new-database') throw new UsageError('restore start needs --mode replace or --mode new-database');
  return withTemporal(async (client, config) => {
    const handle = await startRestore(
      client,
      { taskQueue: config.taskQueue },
      {
        target: values.target!,
        backup: values.backup!,
        from: values.from,
        mode: values.mode as RestoreMode,
        newDatabase: values['new-database'],
        requestedBy: operator(values.as),
        reason: values.reason,
        approvalTimeout: values['approval-timeout'],
        jobs: Number(values.jobs),
      },
    );
    await warnWhenNoWorker(client, config.taskQueue);
    console.error(`started workflow ${handle.workflowId}; waiting for its plan`);
    const status = await waitForPlan(client, handle.workflowId);
    printStatus(status);
    if (status.stage !== 'awaiting-approval') return 1;
    console.log(
      `\nnothing is changed until someone approves. Approve or reject with one of:\n` +
        `  pgops restore approve ${handle.workflowId} --reason "..."\n` +
        `  temporal workflow update execute --namespace ${config.namespace} --workflow-id ${handle.workflowId} --name approve --input '{"approver":"NAME","reason":"..."}'\n` +
        `  temporal workflow signal --namespace ${config.namespace} --workflow-id ${handle.workflowId} --name approve --input '{"approver":"NAME","reason":"..."}'\n` +
        `  or the Temporal UI (Send a Signal / Update on the workflow's page)`,
    );
    return 0;
  });
}

async function waitForPlan(client: Client, workflowId: string): Promise<RestoreStatus> {
  const deadline = Date.now() + PLAN_WAIT_MS;
  for (;;) {
    const status = await restoreStatus(client, workflowId);
    if (status.plan || status.stage === 'failed' || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/** Lists the databases earlier restores set aside; drops one only when named exactly. */
async function cleanupCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { target: { type: 'string', default: 'primary' }, database: { type: 'string' } } });
  const target = resolveTarget({ targets: loadTargets() }, values.target!);
  return withTarget({ ...target, database: 'postgres' }, async (c) => {
    const { rows } = await c.query<{ name: string; size: string }>(
      `SELECT datname AS name, pg_database_size(datname) AS size FROM pg_database WHERE datname LIKE '%\\_pre\\_restore\\_%' ORDER BY 1`,
    );
    const kept = rows.filter((r) => PRE_RESTORE.test(r.name));
    if (!values.database) {
      if (kept.length === 0) console.log(`no pre-restore databases on target ${values.target}'s server`);
      else console.log(formatTable(['pre-restore database', 'size'], kept.map((r) => [r.name, megabytes(Number(r.size))])));
      console.log(kept.length ? '\ndrop one with: pgops restore cleanup --database NAME' : '');
      return 0;
    }
    if (!kept.some((r) => r.name === values.database)) {
      throw new UsageError(`${values.database} is not a pre-restore database on target ${values.target}'s server (run without --database to list them)`);
    }
    await c.query(`DROP DATABASE ${c.escapeIdentifier(values.database)} WITH (FORCE)`);
    console.log(`dropped ${values.database}`);
    return 0;
  });
}

function printStatus(status: RestoreStatus): number {
  console.log(`stage: ${status.stage}   requested by: ${status.requestedBy}   staging ready: ${status.stagingReady}`);
  if (status.approvalDeadline) console.log(`approval deadline: ${status.approvalDeadline}`);
  if (status.decision) console.log(`decision: ${status.decision.decision} by ${status.decision.approver} (${status.decision.via}): ${status.decision.reason}`);
  for (const ignored of status.ignored) console.log(`ignored ${ignored.decision}: ${ignored.why}`);
  if (status.safetySnapshotId) console.log(`safety snapshot: ${status.safetySnapshotId}`);
  if (status.error) console.log(`error: ${status.error}`);
  if (status.plan) console.log(`\n${describePlan(status.plan)}`);
  return 0;
}

export function describePlan(plan: RestorePlan): string {
  const tables = [...new Set([...Object.keys(plan.backupRowCounts), ...Object.keys(plan.current?.rowCounts ?? {})])].sort();
  const rows = tables.map((t) => [t, String(plan.current?.rowCounts[t] ?? '-'), String(plan.backupRowCounts[t] ?? '-')]);
  return [
    `backup ${plan.backupId}, taken ${plan.backupTakenAt} (${(plan.backupAgeSeconds / 3600).toFixed(1)} h ago), ${megabytes(plan.backupSizeBytes)}`,
    plan.mode === 'replace'
      ? `replaces database ${plan.database} on target ${plan.target}: ${megabytes(plan.current?.sizeBytes)}, ${plan.current?.activeConnections ?? 0} active connection(s) to be terminated at the swap`
      : `restores beside it as new database ${plan.database} on target ${plan.target}'s server`,
    ...(plan.lacks?.missingRoles.length
      ? [`the server lacks role(s) ${plan.lacks.missingRoles.join(', ')}: created from the backup's globals after approval (the staging restore waits for it)`]
      : []),
    ...(plan.lacks?.notes ?? []).map((note) => `note: ${note}`),
    '',
    formatTable(['table', 'rows now', 'rows in backup'], rows),
  ].join('\n');
}
