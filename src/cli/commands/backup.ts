// pgops backup now / backups list (logical and physical backups).
import { parseArgs } from 'node:util';
import { listCatalog } from '../../backup/manifest/store';
import { createS3Client } from '../../shared/storage/s3Client';
import { loadS3 } from '../../shared/config';
import type { BackupProgress, DumpFormat, VerifyLevel } from '../../backup/contract';
import { backupProgress, startBackup } from '../../client/backups';
import { DEFAULT_FORMAT, DEFAULT_JOBS } from '../../backup/defaults';
import { formatTable } from '../format';
import { followRun, megabytes, UsageError, warnWhenNoWorker, withTemporal } from './common';
import { physicalListing } from './baseBackup';

function progressLine(p: BackupProgress): string {
  const bytes = p.stage === 'upload' ? `uploaded ${megabytes(p.uploadedBytes)}` : `dumped ${megabytes(p.dumpedBytes)}`;
  return `backup ${p.backupId}: ${p.stage.padEnd(7)} ${bytes}`;
}

export async function backupNowCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: 'string', default: 'primary' },
      verify: { type: 'string', default: 'restore' },
      compression: { type: 'string' },
      format: { type: 'string', default: DEFAULT_FORMAT },
      jobs: { type: 'string', default: String(DEFAULT_JOBS) },
    },
  });
  if (values.format !== 'custom' && values.format !== 'directory') throw new UsageError(`--format must be custom or directory, got ${values.format}`);
  if (values.verify !== 'restore' && values.verify !== 'list') throw new UsageError(`--verify must be restore or list, got ${values.verify}`);
  return withTemporal(async (client, config) => {
    const handle = await startBackup(
      client,
      { taskQueue: config.taskQueue },
      {
        target: values.target!,
        verify: values.verify as VerifyLevel,
        compression: values.compression,
        format: values.format as DumpFormat,
        jobs: Number(values.jobs),
      },
    );
    console.error(`started workflow ${handle.workflowId} on task queue ${config.taskQueue}`);
    await warnWhenNoWorker(client, config.taskQueue);
    const result = await followRun(handle, async () => progressLine(await backupProgress(handle)));
    if (!result) return 1;
    const m = result.manifest;
    console.log(
      `backup ${result.backupId} of ${m.target} (${m.database}, PostgreSQL ${m.serverVersion}) verified by ${m.verification?.level}` +
        `${m.verification?.restoreMs !== undefined ? ` in ${(m.verification.restoreMs / 1000).toFixed(1)} s` : ''}\n` +
        `stored at s3://${result.upload.bucket}/${result.upload.dumpKey} (${megabytes(m.sizeBytes)}, sha256 ${m.sha256})\n` +
        `pruned ${result.prune.deletedRemote.length} old backup(s), kept ${result.prune.remote.filter((d) => d.keep).length}`,
    );
    return 0;
  });
}

export async function backupsListCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { target: { type: 'string' }, cluster: { type: 'string' } } });
  const config = loadS3();
  const s3 = createS3Client(config);
  try {
    const catalog = await listCatalog(s3, config, values.target);
    console.log(
      formatTable(
        ['backup id', 'finished', 'size', 'verified', 'location'],
        catalog.map((c) => [c.backupId, c.finishedAt, megabytes(c.sizeBytes), c.verified ? 'yes' : 'no', `s3://${config.bucket}/${c.dumpKey}`]),
      ),
    );
    // Logical backups are per target; physical ones per cluster: with --target alone, only the former.
    if (values.target === undefined || values.cluster !== undefined) console.log(`\n${await physicalListing(s3, config, values.cluster)}`);
    return 0;
  } finally {
    s3.destroy();
  }
}
