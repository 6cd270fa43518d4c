// For the history recorder: base backups of a cluster of its own (ports 26225-26227) into a
// prefix of its own, removed afterwards. A full backup first, then the recorded `auto` run: an
// incremental on it, or (`fallback`) with summarize_wal off, the full backup it falls back to.
import { rm } from 'node:fs/promises';
import type { Client } from '@temporalio/client';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { startBaseBackup } from '../../src/client';
import { listKeys } from '../../src/archive/catalog';
import { createS3Client } from '../../src/shared/storage/s3Client';
import { createReplicaCluster } from './replicaCluster';
import { withWorker } from './stack';

export async function recordBaseBackup(client: Client, workflowId: string, options: { fallback?: boolean } = {}): Promise<void> {
  const cluster = await createReplicaCluster('record-basebackup', 26225);
  const config = cluster.config('pg1', { PGOPS_S3_PREFIX: `record-basebackup-${Date.now()}`, PGOPS_STAGING_DIR: `/var/tmp/pgops-record-basebackup-${process.pid}` });
  try {
    await withWorker(config, async ({ taskQueue }) => {
      await (await startBaseBackup(client, { taskQueue, workflowId: `${workflowId}-parent` }, { cluster: cluster.name, mode: 'full' })).result();
      if (options.fallback) {
        await cluster.sql('pg1', 'ALTER SYSTEM SET summarize_wal = off');
        await cluster.sql('pg1', 'SELECT pg_reload_conf()');
      }
      await (await startBaseBackup(client, { taskQueue, workflowId }, { cluster: cluster.name, mode: 'auto' })).result();
    });
  } finally {
    const s3 = createS3Client(config.s3);
    for (const Key of await listKeys(s3, config.s3.bucket, `${config.s3.prefix}/`)) await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key }));
    s3.destroy();
    await cluster.down();
    await rm(config.stagingDir, { recursive: true, force: true });
  }
}
