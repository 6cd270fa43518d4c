// For the history recorder: the gaps of the WAL archive, each on a cluster of its own archived into
// a prefix of its own, removed afterwards. walChainAudit (ports 26350-26352) `ok`: over a gapless
// archive; `gap`: a segment in the middle deleted, so the audit starts the gap's full base backup (a
// child) and tells the webhook. The archiver finding a lost slot (below).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { auditWalChain } from '../../src/archive/activities/walChain';
import { walSegmentKey } from '../../src/archive/layout';
import { archiveSlotName } from '../../src/archive/contract';
import { pauseWalArchiver, resumeWalArchiver, runWalChainAudit, startWalArchiver, walArchiveStatus } from '../../src/client';
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

/**
 * For the history recorder: the archiver of a cluster of its own (ports 26356-26358) whose slots may
 * hold 64 MB, paused while more WAL than that is written and checkpointed (its slot is lost),
 * resumed: it records the gap, starts the gap's full base backup (a child) and is stopped.
 */
export async function recordWalArchiverGap(client: Client, workflowId: string): Promise<void> {
  const cluster = await createReplicaCluster('record-walgap', 26356, ['max_slot_wal_keep_size = 64MB', 'wal_keep_size = 0', 'min_wal_size = 32MB', 'max_wal_size = 64MB'].join('\n'));
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'pgops-record-walgap-'));
  const config = cluster.config('pg1', {
    PGOPS_S3_PREFIX: `record-walgap-${Date.now()}`,
    PGOPS_WAL_SPOOL_DIR: path.join(scratch, 'spool'),
    PGOPS_STAGING_DIR: path.join(scratch, 'staging'),
  });
  const s3 = createS3Client(config.s3);
  try {
    await withWorker(config, async ({ taskQueue }) => {
      const handle = await startWalArchiver(client, { taskQueue, workflowId }, { cluster: cluster.name, roundMs: 60_000 });
      await waitUntil('the archiver to prepare', async () => (await archiveState(handle)).root !== undefined, 30_000);
      await pauseWalArchiver(handle, { by: 'recorder', reason: 'let the slot fall behind' });
      await waitUntil('the round to end', async () => (await walArchiveStatus(handle)).live === undefined, 30_000);
      await cluster.sql('pg1', 'CREATE TABLE filler (x text)');
      await waitUntil('the archive slot to be lost', async () => {
        for (let i = 0; i < 3; i++) await cluster.sql('pg1', 'INSERT INTO filler VALUES (md5(random()::text)); SELECT pg_switch_wal()');
        await cluster.sql('pg1', 'CHECKPOINT');
        const [slot] = await cluster.sql<{ wal_status: string }>('pg1', 'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [archiveSlotName(cluster.name)]);
        return slot?.wal_status === 'lost';
      }, 30_000);
      await resumeWalArchiver(handle);
      await waitUntil('the gap to be reported', async () => (await archiveState(handle)).gaps.length > 0, 30_000);
      const [gap] = (await archiveState(handle)).gaps;
      await client.workflow.getHandle(gap.baseBackup!.workflowId).result();
      await handle.cancel();
      await handle.result().catch(() => undefined);
    });
  } finally {
    await removePrefix(s3, config.s3.bucket, config.s3.prefix).catch(() => undefined);
    s3.destroy();
    await cluster.down();
    await rm(scratch, { recursive: true, force: true });
  }
}
