// For the history recorder: walChainAudit on a cluster of its own (ports 26350-26352) archived
// into a prefix of its own, removed afterwards. `ok`: over a gapless archive. `gap`: a segment in
// the middle deleted, so the audit starts the gap's full base backup (a child) and tells the webhook.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { auditWalChain } from '../../src/archive/activities/walChain';
import { walSegmentKey } from '../../src/archive/layout';
import { runWalChainAudit } from '../../src/client';
import { createS3Client } from '../../src/shared/storage/s3Client';
import { createReplicaCluster } from './replicaCluster';
import { withWorker } from './stack';
import { startWebhookReceiver } from './webhookReceiver';
import { waitUntil } from './workerProcess';
import { archiveState, isArchived, removePrefix, startArchiving } from './walArchive';

export async function recordWalChainAudit(client: Client, workflowId: string, options: { gap?: boolean } = {}): Promise<void> {
  const cluster = await createReplicaCluster('record-walaudit', 26350);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'pgops-record-walaudit-'));
  const hook = await startWebhookReceiver();
  const config = cluster.config('pg1', {
    PGOPS_S3_PREFIX: `record-walaudit-${Date.now()}`,
    PGOPS_WAL_SPOOL_DIR: path.join(scratch, 'spool'),
    PGOPS_STAGING_DIR: path.join(scratch, 'staging'),
    PGOPS_NOTIFY_WEBHOOK_URL: hook.url,
  });
  const s3 = createS3Client(config.s3);
  try {
    await withWorker(config, async ({ taskQueue }) => {
      const handle = await startArchiving(client, taskQueue, cluster.name);
      await waitUntil('the archiver to prepare', async () => (await archiveState(handle)).root !== undefined, 30_000);
      const { root, timeline } = await archiveState(handle);
      for (let i = 0; i < 3; i++) {
        await cluster.sql('pg1', 'CREATE TABLE IF NOT EXISTS filler (x text); INSERT INTO filler VALUES (md5(random()::text))');
        const [{ lsn }] = await cluster.sql<{ lsn: string }>('pg1', 'SELECT pg_switch_wal()::text AS lsn');
        await waitUntil(`the archive to reach ${lsn}`, () => isArchived(s3, config.s3.bucket, root!, timeline!, lsn), 30_000);
      }
      if (options.gap) {
        const audit = await auditWalChain(config, { cluster: cluster.name });
        const last = audit.timelines[0].lastSegment!;
        const middle = `${last.slice(0, 16)}${(parseInt(last.slice(16), 16) - 1).toString(16).toUpperCase().padStart(8, '0')}`;
        await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key: walSegmentKey(root!, middle) }));
      }
      const result = await runWalChainAudit(client, { taskQueue, workflowId }, { cluster: cluster.name });
      if (result.baseBackup) await client.workflow.getHandle(result.baseBackup.workflowId).result();
      await handle.terminate('recorded');
    });
  } finally {
    await removePrefix(s3, config.s3.bucket, config.s3.prefix).catch(() => undefined);
    s3.destroy();
    await hook.close();
    await cluster.down();
    await rm(scratch, { recursive: true, force: true });
  }
}
