// Each cluster's physical archive: is there one, what it can recover (from the oldest base
// backup with a complete WAL chain to the newest archived WAL position), and whether a restore
// drill has lately proved that it restores.
import type { WorkerConfig } from '../../shared/config';
import { describePhysicalArchive } from '../../archive/catalog';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import type { DoctorLine } from '../contract';
import { drillFailures, drillScheduleId } from '../../pitr/contract';
import { drillStandings, readDrillRecords, DRILL_STALE_AFTER_MS, type DrillStanding } from '../../pitr/drillHistory';
import { duration } from './serverHealth';

export function archiveHealthActivities(config: WorkerConfig) {
  async function checkArchives(): Promise<DoctorLine[]> {
    const s3 = createS3Client(config.s3);
    try {
      const lines: DoctorLine[] = [];
      const drills = drillStandings(await readDrillRecords(config));
      for (const cluster of Object.values(config.clusters)) {
        const subject = `cluster ${cluster.name}`;
        if (cluster.walArchive.mode === 'off') {
          lines.push({ check: 'recoverable window', subject, status: 'ok', saw: `no WAL archive by configuration (PGOPS_CLUSTER_${cluster.name.toUpperCase()}_WAL_ARCHIVE=off): the nightly backups are the only copies` });
          continue;
        }
        const view = await describePhysicalArchive(s3, config.s3, config.encryption, cluster.name);
        lines.push(windowLine(subject, cluster.name, view));
        if (view.backups.length > 0) lines.push(drillLine(subject, cluster.name, drills.get(cluster.name), Date.now()));
      }
      return lines;
    } catch (err) {
      return [{ check: 'recoverable window', subject: `s3://${config.s3.bucket}`, status: 'fail', saw: `the archive cannot be read: ${storageFailure(config.s3, err).message}`, next: 'check the S3 endpoint and credentials (pgops check)' }];
    } finally {
      s3.destroy();
    }
  }
  return { checkArchives };
}

function windowLine(subject: string, cluster: string, view: Awaited<ReturnType<typeof describePhysicalArchive>>): DoctorLine {
  const start = `pgops wal start --cluster ${cluster}; pgops basebackup now --cluster ${cluster} (and schedule install)`;
  if (!view.root) return { check: 'recoverable window', subject, status: 'warn', saw: 'no WAL archive and no base backup yet', next: start };
  if (!view.window) return { check: 'recoverable window', subject, status: 'warn', saw: `${view.backups.length} base backup(s), no WAL archived: each restores only to its own end`, next: `pgops wal start --cluster ${cluster}` };
  const { from, to, problem } = view.window;
  if (!from || !to) return { check: 'recoverable window', subject, status: 'fail', saw: problem ?? 'no base backup has a complete WAL chain to the archive head', next: `pgops basebackup now --cluster ${cluster} --mode full; pgops wal status --cluster ${cluster}` };
  const span = from.at && to.at ? `, ${duration(Date.parse(to.at) - Date.parse(from.at))}` : '';
  return { check: 'recoverable window', subject, status: 'ok', saw: `from ${from.at ?? from.lsn} (${from.backupId}) to ${to.at ?? to.lsn} on timeline ${to.timeline}${span}` };
}

/** The cluster's restore drills: none yet, the last one failed, none passed lately, or when it was last proved restorable. */
export function drillLine(subject: string, cluster: string, standing: DrillStanding | undefined, now: number): DoctorLine {
  const line = { check: 'restore drill', subject };
  const rerun = `pgops drill now --cluster ${cluster} --data-dir DIR --port N`;
  if (!standing) {
    return { ...line, status: 'warn', saw: 'no restore drill has run: nothing has proved the base backups and WAL restore', next: `pgops drill schedule install --cluster ${cluster} --data-dir DIR --port N` };
  }
  const { last, lastPassed } = standing;
  const passedBefore = lastPassed ? `; last passed ${lastPassed.finishedAt}` : '; none has passed';
  if (!last.ok) {
    return { ...line, status: 'fail', saw: `the last drill (${last.workflowId}, ${last.finishedAt}) failed: ${drillFailures(last)}${passedBefore}`, next: `see ${last.workflowId} in the Temporal UI; after fixing, ${rerun}` };
  }
  const age = now - Date.parse(last.finishedAt);
  const saw = `proved restorable ${duration(Math.max(0, age))} ago (${last.finishedAt}, base backup ${last.backupId ?? '?'}${last.target?.kind === 'time' ? `, to ${last.target.time}` : ''})`;
  if (age > DRILL_STALE_AFTER_MS) return { ...line, status: 'warn', saw: `${saw}: no drill since`, next: `check the Temporal Schedule ${drillScheduleId(cluster)} (missing or paused?); ${rerun}` };
  return { ...line, status: 'ok', saw };
}
