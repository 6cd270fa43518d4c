// pgops wal start|status|pause|resume|stop [--cluster main]: the cluster's WAL archiver; pgops wal
// audit now|schedule: its chain audit.
import { parseArgs } from 'node:util';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { WalArchiveStatus } from '../../client/archive';
import {
  DEFAULT_WAL_AUDIT_EVERY,
  installWalChainAuditSchedule,
  pauseWalArchiver,
  resumeWalArchiver,
  runWalChainAudit,
  startWalArchiver,
  stopWalArchiver,
  walArchiverHandle,
  walArchiveStatus,
} from '../../client/archive';
import { walChainAuditScheduleId, type ChainHole, type GapBaseBackup, type WalChainAuditResult } from '../../archive/contract';
import { megabytes, operator, printOutcome, UsageError, warnWhenNoWorker, withTemporal } from './common';
import { manageSchedule } from './schedule';

function statusLines({ state: s, live }: WalArchiveStatus): string {
  const progress = live ?? s.progress;
  return [
    `archiving ${s.cluster} since ${s.archivingSince} from ${s.primary ?? 'no primary yet'}` +
      `${s.timeline ? ` (timeline ${s.timeline}, slot ${s.walStatus})` : ''}; ${s.rounds} round(s)`,
    s.paused ? `PAUSED by ${s.paused.by} at ${s.paused.at}: ${s.paused.reason}` : undefined,
    s.root ? `archive: ${s.root}` : undefined,
    progress
      ? `last segment ${progress.lastSegment ?? '-'}, partial ${progress.partialSegment ?? '-'} valid to ${progress.partialValidToLsn ?? '-'}; ` +
        `lag ${megabytes(progress.lagBytes)}, spool ${megabytes(progress.spoolBytes)}, slot may still hold ${megabytes(progress.safeWalSizeBytes)}; ` +
        `${progress.segmentsUploaded} segment(s) this round${progress.receiverPid ? `, pg_receivewal pid ${progress.receiverPid}` : ''}`
      : undefined,
    progress?.lastError ? `last error: ${progress.lastError}` : undefined,
    ...s.warnings.map((w) => `warning: ${w}`),
    ...s.gaps.map(
      (g) =>
        `GAP on timeline ${g.timeline} from ${g.fromLsn} to ${g.toLsn ?? '?'} (${g.detectedAt}): ${g.reason}; ` +
        (g.baseBackup ? baseBackupLine(g.baseBackup) : 'take a full base backup'),
    ),
  ]
    .filter(Boolean)
    .join('\n');
}

function baseBackupLine(b: GapBaseBackup): string {
  if (b.outcome === 'failed-to-start') return `the full base backup ${b.workflowId} could not start (${b.detail}): take one with pgops basebackup now --mode full`;
  return `full base backup ${b.workflowId} ${b.outcome === 'started' ? 'started' : 'already started'}`;
}

function holeLine(h: ChainHole): string {
  if (h.kind === 'history') return `timeline ${h.timeline}: its history file is not in the archive`;
  const range = h.segments === 1 ? h.fromSegment : `${h.fromSegment} to ${h.toSegment} (${h.segments} segments)`;
  return `timeline ${h.timeline}: ${range} ${h.kind === 'absent' ? 'indexed but the object is gone' : 'never archived'}`;
}

export function auditLines(r: WalChainAuditResult): string {
  const head = r.headLsn ? `head ${r.headLsn} on timeline ${r.headTimeline}` : 'no WAL archived';
  const verdict = {
    ok: `WAL chain of ${r.cluster} is complete (${head})`,
    'no-archive': `cluster ${r.cluster} has no WAL archive (start one with pgops wal start --cluster ${r.cluster})`,
    'gap-covered': `WAL chain of ${r.cluster} has gaps, but base backup ${r.recoverableFrom} is past them and reaches the ${head}`,
    gap: `GAP: no base backup of ${r.cluster} reaches the archive's ${head} across these gaps`,
  }[r.status];
  return [
    verdict,
    ...r.holes.map((h) => `  ${holeLine(h)}`),
    r.recordedGaps ? `  ${r.recordedGaps} gap(s) recorded by the archiver under ${r.root}/gaps/` : undefined,
    r.baseBackup ? `  ${baseBackupLine(r.baseBackup)}` : r.status === 'gap' ? '  dry run: no base backup started' : undefined,
    r.status === 'gap' ? `  webhook ${r.notified ? 'told' : `not told${r.webhookError ? `: ${r.webhookError}` : ' (none configured)'}`}` : undefined,
  ]
    .filter(Boolean)
    .join('\n');
}

async function walAudit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const action = sub === 'schedule' ? rest.shift() : undefined;
  const { values } = parseArgs({
    args: rest,
    options: { cluster: { type: 'string', default: 'main' }, every: { type: 'string', default: DEFAULT_WAL_AUDIT_EVERY }, 'dry-run': { type: 'boolean', default: false } },
  });
  const cluster = values.cluster!;
  if (sub === 'now') {
    return withTemporal(async (client, config) => {
      await warnWhenNoWorker(client, config.taskQueue);
      // A gap is a finding, not a failure of the audit: exit 2 so a cron line or a CI job notices.
      const result = runWalChainAudit(client, { taskQueue: config.taskQueue }, { cluster, dryRun: values['dry-run'] });
      const code = await printOutcome(result, auditLines);
      return code === 0 && (await result).status === 'gap' ? 2 : code;
    });
  }
  if (sub !== 'schedule') throw new UsageError(`wal audit needs "now" or "schedule", got ${sub ?? 'nothing'}`);
  return withTemporal((client, config) =>
    manageSchedule(client, action, walChainAuditScheduleId(cluster), async () => {
      const outcome = await installWalChainAuditSchedule(client, { taskQueue: config.taskQueue, cluster, every: values.every!, dryRun: values['dry-run'] });
      return `${outcome} schedule ${walChainAuditScheduleId(cluster)}: walChainAudit of ${cluster} every ${values.every}${values['dry-run'] ? ' (dry run: reports, starts no base backup)' : ''}`;
    }),
  );
}

export async function walCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'audit') return walAudit(rest);
  const { values } = parseArgs({ args: rest, options: { cluster: { type: 'string', default: 'main' }, reason: { type: 'string', default: 'maintenance' }, as: { type: 'string' } } });
  const cluster = values.cluster!;
  if (!['start', 'status', 'pause', 'resume', 'stop'].includes(sub ?? '')) throw new UsageError(`wal needs start, status, pause, resume, stop or audit, got ${sub ?? 'nothing'}`);
  return withTemporal(async (client, config) => {
    const handle = walArchiverHandle(client, cluster);
    switch (sub) {
      case 'start': {
        const started = await startWalArchiver(client, { taskQueue: config.taskQueue }, { cluster });
        // No query here: it would wait for a worker, and the archiver may be started before any runs.
        console.log(`WAL archiver of ${cluster} runs as workflow ${started.workflowId} on task queue ${config.taskQueue}; see pgops wal status --cluster ${cluster}`);
        return 0;
      }
      case 'pause':
        await pauseWalArchiver(handle, { by: operator(values.as), reason: values.reason! });
        console.log(`WAL archiver of ${cluster} pausing: pg_receivewal stops after a last upload; the slots keep the WAL (up to max_slot_wal_keep_size)`);
        return 0;
      case 'resume':
        await resumeWalArchiver(handle);
        console.log(`WAL archiver of ${cluster} resumed`);
        return 0;
      case 'stop':
        await stopWalArchiver(handle);
        console.log(`WAL archiver of ${cluster} stopped; its slots keep the WAL until pgops wal start (or until max_slot_wal_keep_size, then the archive has a gap)`);
        return 0;
      default:
        console.log(statusLines(await walArchiveStatus(handle)));
        return 0;
    }
  }).catch((err) => {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    console.error(`pgops: no WAL archiver of ${cluster} has run (start one with pgops wal start --cluster ${cluster})`);
    return 1;
  });
}
