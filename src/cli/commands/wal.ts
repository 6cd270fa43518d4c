// pgops wal start|status|pause|resume|stop [--cluster main]: the cluster's WAL archiver.
import { parseArgs } from 'node:util';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { WalArchiveStatus } from '../../client/archive';
import { pauseWalArchiver, resumeWalArchiver, startWalArchiver, stopWalArchiver, walArchiverHandle, walArchiveStatus } from '../../client/archive';
import { megabytes, operator, UsageError, withTemporal } from './common';

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
    ...s.gaps.map((g) => `GAP on timeline ${g.timeline} from ${g.fromLsn} to ${g.toLsn ?? '?'} (${g.detectedAt}): ${g.reason}; take a full base backup`),
  ]
    .filter(Boolean)
    .join('\n');
}

export async function walCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { cluster: { type: 'string', default: 'main' }, reason: { type: 'string', default: 'maintenance' }, as: { type: 'string' } } });
  const cluster = values.cluster!;
  if (!['start', 'status', 'pause', 'resume', 'stop'].includes(sub ?? '')) throw new UsageError(`wal needs start, status, pause, resume or stop, got ${sub ?? 'nothing'}`);
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
