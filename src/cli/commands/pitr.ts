// pgops pitr start|status|approve|reject and pgops drill now|schedule install: the operator's side
// of pointInTimeRestore and restoreDrill. Parses, calls the client library, prints.
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { decidePointInTimeRestore, installDrillSchedule, pitrStatus, startPointInTimeRestore, startRestoreDrill } from '../../client/pitr';
import type { PitrMode, PitrStatus, RecoveryTarget } from '../../pitr/contract';
import { describeTarget, describeWindow } from '../../pitr/recoveryTarget';
import { formatTable } from '../format';
import { decisionCommand, followRun, megabytes, operator, UsageError, warnWhenNoWorker, withTemporal, workflowIdArg } from './common';

const REPORT_WAIT_MS = 6 * 3_600_000;

export async function pitrCommand([sub, ...args]: string[]): Promise<number> {
  switch (sub) {
    case 'start':
      return startCommand(args);
    case 'status':
      return withTemporal(async (client) => printStatus(await pitrStatus(client, workflowIdArg(args, 'pitr', 'status'))));
    case 'approve':
    case 'reject':
      return decisionCommand('pitr', sub, args, decidePointInTimeRestore);
    default:
      throw new UsageError(`pitr needs start, status, approve or reject, got ${sub ?? 'nothing'}`);
  }
}

function targetOf(values: { to?: string; lsn?: string; 'restore-point'?: string; latest?: boolean }): RecoveryTarget {
  const given = [values.to !== undefined, values.lsn !== undefined, values['restore-point'] !== undefined, values.latest === true].filter(Boolean).length;
  if (given !== 1) throw new UsageError('pitr start needs exactly one of --to "2026-11-30 14:31:07+09", --lsn 16/B374D848, --restore-point NAME, --latest');
  if (values.to !== undefined) return { kind: 'time', time: values.to };
  if (values.lsn !== undefined) return { kind: 'lsn', lsn: values.lsn };
  if (values['restore-point'] !== undefined) return { kind: 'restorePoint', name: values['restore-point'] };
  return { kind: 'latest' };
}

function instanceOf(values: { 'data-dir'?: string; port?: string }, command: string) {
  if (!values['data-dir'] || !values.port) throw new UsageError(`${command} needs --data-dir DIR (new or empty, on the worker's machine) and --port N for the restored instance`);
  return { dataDir: values['data-dir'], port: Number(values.port) };
}

async function startCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cluster: { type: 'string', default: 'main' },
      to: { type: 'string' },
      lsn: { type: 'string' },
      'restore-point': { type: 'string' },
      latest: { type: 'boolean' },
      mode: { type: 'string', default: 'side' },
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      reason: { type: 'string' },
      as: { type: 'string' },
      'approval-timeout': { type: 'string' },
    },
  });
  if (values.mode !== 'side' && values.mode !== 'replace') throw new UsageError('pitr start --mode must be side or replace');
  if (!values.reason) throw new UsageError('pitr start needs --reason "..." (it goes into the audit record)');
  const target = targetOf(values);
  const instance = instanceOf(values, 'pitr start');
  return withTemporal(async (client, config) => {
    const handle = await startPointInTimeRestore(
      client,
      { taskQueue: config.taskQueue },
      { cluster: values.cluster!, target, instance, mode: values.mode as PitrMode, requestedBy: operator(values.as), reason: values.reason, approvalTimeout: values['approval-timeout'] },
    );
    await warnWhenNoWorker(client, config.taskQueue);
    console.error(`started workflow ${handle.workflowId}: restoring ${values.cluster} to ${describeTarget(target)}; waiting until replay pauses there`);
    const status = await waitForReport(client, handle.workflowId);
    printStatus(status);
    if (status.stage !== 'awaiting-approval') return 1;
    console.log(
      `\nnothing else changes until someone approves (${values.mode === 'replace' ? 'then it replaces the primary' : 'then the instance is promoted beside the live cluster'}):\n` +
        `  pgops pitr approve ${handle.workflowId} --reason "..."\n` +
        `  pgops pitr reject ${handle.workflowId} --reason "..."\n` +
        `  temporal workflow update execute --namespace ${config.namespace} --workflow-id ${handle.workflowId} --name approve --input '{"approver":"NAME","reason":"..."}'`,
    );
    return 0;
  });
}

async function waitForReport(client: Client, workflowId: string): Promise<PitrStatus> {
  const deadline = Date.now() + REPORT_WAIT_MS;
  let last = '';
  for (;;) {
    const status = await pitrStatus(client, workflowId);
    if (status.stage !== last) console.error(`  ${status.stage}`);
    last = status.stage;
    if (!['planning', 'fetching', 'replaying', 'inspecting'].includes(status.stage) || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

function printStatus(status: PitrStatus): number {
  console.log(`stage: ${status.stage}   mode: ${status.mode}   requested by: ${status.requestedBy}`);
  if (status.approvalDeadline) console.log(`approval deadline: ${status.approvalDeadline}`);
  if (status.decision) console.log(`decision: ${status.decision.decision} by ${status.decision.approver} (${status.decision.via}): ${status.decision.reason}`);
  for (const ignored of status.ignored) console.log(`ignored ${ignored.decision}: ${ignored.why}`);
  if (status.error) console.log(`error: ${status.error}`);
  const recovery = status.recovery;
  if (recovery) {
    console.log(`\ntarget: ${describeTarget(recovery.target)}; ${describeWindow(recovery.window)}`);
    console.log(`from base backup ${recovery.backup.chain.join(' + ')} (stopped ${recovery.backup.stoppedAt}, ${megabytes(recovery.backup.sizeBytes)}): ${recovery.backup.why}`);
    for (const note of recovery.notes) console.log(`note: ${note}`);
  }
  const report = status.report;
  if (report) {
    console.log(
      `\npaused at LSN ${report.reachedLsn} on timeline ${report.timeline}; last replayed commit ${report.lastCommitAt ?? 'none'}` +
        `${report.pausedAtArchiveHead ? ' (the archive ends before the target: paused at its head)' : ''}`,
    );
    console.log(`database ${report.database}: ${megabytes(report.sizeBytes)}; fetch ${(report.fetchMs / 1000).toFixed(1)} s, replay ${(report.replayMs / 1000).toFixed(1)} s, ${report.segmentsFetched} WAL segment(s) fetched\n`);
    const tables = [...new Set([...Object.keys(report.rowCounts), ...Object.keys(report.liveRowCounts)])].sort();
    console.log(formatTable(['table', 'rows live now', 'rows at the target'], tables.map((t) => [t, String(report.liveRowCounts[t] ?? '-'), String(report.rowCounts[t] ?? '-')])));
  }
  return 0;
}

// ---------------------------------------------------------------- drills

export async function drillCommand([sub, ...args]: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      cluster: { type: 'string', default: 'main' },
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      within: { type: 'string' },
      at: { type: 'string', default: '05:00' },
      timezone: { type: 'string', default: 'UTC' },
    },
  });
  const input = { cluster: values.cluster!, instance: instanceOf(values, `drill ${sub ?? ''}`.trim()), within: values.within };
  if (sub === 'now') {
    return withTemporal(async (client, config) => {
      const handle = await startRestoreDrill(client, { taskQueue: config.taskQueue }, input);
      await warnWhenNoWorker(client, config.taskQueue);
      console.error(`started workflow ${handle.workflowId}`);
      const record = await followRun(handle, async () => undefined);
      if (!record) return 1;
      console.log(`drill of ${record.cluster}: base backup ${record.backupId} to ${record.target ? describeTarget(record.target) : '?'}: proved restorable at ${record.provedAt}`);
      console.log(formatTable(['check', 'ok', 'detail'], record.checks.map((c) => [c.name, c.ok ? 'ok' : 'FAIL', c.detail])));
      return 0;
    });
  }
  if (sub === 'schedule' && positionals[0] === 'install') {
    return withTemporal(async (client, config) => {
      const outcome = await installDrillSchedule(client, { taskQueue: config.taskQueue, at: values.at!, timezone: values.timezone!, input });
      console.log(`drill schedule of ${input.cluster} ${outcome}: daily at ${values.at} ${values.timezone}, scratch instance ${input.instance.dataDir} on port ${input.instance.port}`);
      return 0;
    });
  }
  throw new UsageError(`drill needs "now" or "schedule install", got ${[sub, ...positionals].filter(Boolean).join(' ') || 'nothing'}`);
}
