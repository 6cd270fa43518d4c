// pgops backup now / backups list (logical and physical backups).
import { parseArgs } from 'node:util';
import { listCatalog } from '../../backup/manifest/store';
import { createS3Client } from '../../shared/storage/s3Client';
import { environment, loadKeyRing, loadS3 } from '../../shared/config';
import { describeStatus } from '../../shared/crypto/manifestAuth';
import type { BackupProgress, DumpFormat, VerifyLevel } from '../../backup/contract';
import { backupProgress, startBackup } from '../../client/backups';
import { DEFAULT_FORMAT, DEFAULT_JOBS } from '../../backup/defaults';
import { formatTable } from '../format';
import { followRun, megabytes, UsageError, warnWhenNoWorker, withTemporal } from './common';
import { physicalListing } from './baseBackup';
import { physicalKeyUses } from '../../archive/catalog';

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

/**
 * The catalog as this machine's keys see it: each backup's encryption, and whether its manifest
 * is authentic. A backup whose manifest does not verify is listed (someone put it there) but
 * never verified, never `latest`, and a restore of it is refused.
 */
export async function backupsListCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { target: { type: 'string' }, cluster: { type: 'string' } } });
  const env = environment();
  const config = loadS3(env);
  const ring = loadKeyRing(env);
  const s3 = createS3Client(config);
  try {
    const catalog = await listCatalog(s3, config, values.target, ring);
    console.log(
      formatTable(
        ['backup id', 'finished', 'size', 'verified', 'encryption', 'manifest', 'location'],
        catalog.map((c) => [
          c.backupId,
          c.finishedAt,
          megabytes(c.sizeBytes),
          c.verified ? 'yes' : 'no',
          c.encryptedWith.length > 0 ? `key ${c.encryptedWith.join(', ')}` : 'none',
          describeStatus(c.authentication, c.authenticationKeyId),
          `s3://${config.bucket}/${c.dumpKey}`,
        ]),
      ),
    );
    const untrusted = catalog.filter((c) => !c.trusted).length;
    if (untrusted > 0) console.error(`pgops: ${untrusted} backup(s) above have a manifest that does not verify: never "latest", and pgops refuses to restore them`);
    if (!ring) console.error('pgops: no encryption key configured here (PGOPS_ENCRYPTION_KEYS): manifests were not checked');
    // Logical backups are per target; physical ones per cluster: with --target alone, only the former.
    if (values.target === undefined || values.cluster !== undefined) console.log(`\n${await physicalListing(s3, config, ring, values.cluster)}`);
    return 0;
  } finally {
    s3.destroy();
  }
}

/**
 * Every key id the catalog needs (signatures and encrypted objects) against the keys configured
 * here: exit 1 when any is missing, naming it and the backups that need it.
 */
export async function keysCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { target: { type: 'string' } } });
  const env = environment();
  const config = loadS3(env);
  const ring = loadKeyRing(env);
  const s3 = createS3Client(config);
  try {
    const catalog = await listCatalog(s3, config, values.target, ring);
    const needed = new Map<string, string[]>();
    for (const entry of catalog) {
      for (const id of new Set([...entry.encryptedWith, ...(entry.authenticationKeyId ? [entry.authenticationKeyId] : [])])) {
        needed.set(id, [...(needed.get(id) ?? []), entry.backupId]);
      }
    }
    // The physical archive too (base backups and WAL), unless the question is about one target's logical backups.
    if (values.target === undefined) {
      for (const [id, uses] of await physicalKeyUses(s3, config, ring)) needed.set(id, [...(needed.get(id) ?? []), ...uses]);
    }
    const ids = [...new Set([...(ring?.ids ?? []), ...needed.keys()])].sort();
    const state = (id: string) => (!ring?.has(id) ? 'MISSING' : id === ring.current ? 'present (current)' : 'present (retired)');
    console.log(
      formatTable(
        ['key id', 'state', 'backups (or WAL) needing it', 'e.g.'],
        ids.map((id) => [id, state(id), String(needed.get(id)?.length ?? 0), needed.get(id)?.[0] ?? '-']),
      ),
    );
    const missing = ids.filter((id) => !ring?.has(id));
    if (!ring) console.error('pgops: no encryption key configured (PGOPS_ENCRYPTION_KEYS or PGOPS_ENCRYPTION_KEYS_FILE): new backups are stored unencrypted and unauthenticated');
    if (missing.length > 0) {
      console.error(`pgops: key id(s) ${missing.join(', ')} missing: the backups needing them cannot be verified or restored here; add them as retired keys`);
      return 1;
    }
    return 0;
  } finally {
    s3.destroy();
  }
}
