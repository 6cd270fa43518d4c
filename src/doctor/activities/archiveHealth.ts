// Each cluster's physical archive: is there one, and what it can recover (from the oldest base
// backup with a complete WAL chain to the newest archived WAL position).
import type { WorkerConfig } from '../../shared/config';
import { describePhysicalArchive } from '../../archive/catalog';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import type { DoctorLine } from '../contract';
import { duration } from './serverHealth';

export function archiveHealthActivities(config: WorkerConfig) {
  async function checkArchives(): Promise<DoctorLine[]> {
    const s3 = createS3Client(config.s3);
    try {
      const lines: DoctorLine[] = [];
      for (const cluster of Object.values(config.clusters)) {
        const subject = `cluster ${cluster.name}`;
        if (cluster.walArchive.mode === 'off') {
          lines.push({ check: 'recoverable window', subject, status: 'ok', saw: `no WAL archive by configuration (PGOPS_CLUSTER_${cluster.name.toUpperCase()}_WAL_ARCHIVE=off): the nightly backups are the only copies` });
          continue;
        }
        const view = await describePhysicalArchive(s3, config.s3, cluster.name);
        lines.push(windowLine(subject, cluster.name, view));
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
