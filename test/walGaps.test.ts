// Gaps in the WAL archive, on an isolated primary + standby (ports 26340-26342) whose slots may
// hold back only 64 MB: a slot that lost its WAL while the archiver was paused is reported loudly
// (a gap record under gaps/, the webhook, the archiver's status), a fresh full base backup starts,
// the archiver carries on from a new slot, and the audit still shows the hole. The scheduled audit
// leaves a gapless archive alone; over a deleted segment it tells the webhook and starts one full
// base backup however many audits find the hole.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { WorkflowHandle } from '@temporalio/client';
import { auditWalChain } from '../src/archive/activities/walChain';
import { describePhysicalArchive, listKeys } from '../src/archive/catalog';
import { gapSegment } from '../src/archive/chainHoles';
import { archiveSlotName, gapBaseBackupWorkflowId, walChainAuditScheduleId, type BaseBackupResult, type WalChainAuditResult } from '../src/archive/contract';
import { walSegmentKey } from '../src/archive/layout';
import { installWalChainAuditSchedule, pauseWalArchiver, resumeWalArchiver, runWalChainAudit, startBaseBackup } from '../src/client';
import type { WorkerConfig } from '../src/shared/config';
import { createS3Client } from '../src/shared/storage/s3Client';
import { auditLines } from '../src/cli/commands/wal';
import { createReplicaCluster, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhookReceiver';
import { waitUntil } from './support/workerProcess';
import { archiveState, dropArchiveSlots, isArchived, receiverPid, removePrefix, startArchiving } from './support/walArchive';

jest.setTimeout(150_000);

let cluster: ReplicaCluster;
let hook: WebhookReceiver;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'pgops-wal-gaps-'));
const prefixes: string[] = [];

beforeAll(async () => {
  // A slot more than 64 MB behind is lost at the next checkpoint; nothing else keeps WAL around.
  cluster = await createReplicaCluster('walgap', 26340, ['max_slot_wal_keep_size = 64MB', 'wal_keep_size = 0', 'min_wal_size = 32MB', 'max_wal_size = 64MB'].join('\n'));
  await cluster.sql('pg1', 'CREATE TABLE filler (x text)');
  hook = await startWebhookReceiver();
});

afterAll(async () => {
  await hook?.close();
  await cluster?.down();
  const s3 = createS3Client(cluster.config('pg1').s3);
  for (const prefix of prefixes) await removePrefix(s3, cluster.config('pg1').s3.bucket, prefix).catch(() => undefined);
  s3.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

/** A worker config archiving under a prefix and spool of its own, telling the test's webhook. */
function archiveConfig(name: string): WorkerConfig {
  const prefix = `test-wal/${name}-${randomUUID().slice(0, 8)}`;
  prefixes.push(prefix);
  return cluster.config('pg1', {
    PGOPS_S3_PREFIX: prefix,
    PGOPS_WAL_SPOOL_DIR: path.join(scratch, `${name}-spool`),
    PGOPS_STAGING_DIR: path.join(scratch, `${name}-staging`),
    PGOPS_NOTIFY_WEBHOOK_URL: hook.url,
    PGOPS_WORKER_SHUTDOWN_GRACE: '10 seconds',
  });
}

/**
 * Ends the current segment (with a row in it, or the switch is a no-op) and returns where the
 * ended segment's WAL ends (the next one holds nothing yet, so it is in no archive yet either).
 */
async function switchSegment(): Promise<string> {
  await cluster.sql('pg1', "INSERT INTO filler VALUES (md5(random()::text))");
  return (await cluster.sql<{ lsn: string }>('pg1', 'SELECT pg_switch_wal()::text AS lsn'))[0].lsn;
}

async function untilArchived(config: WorkerConfig, handle: WorkflowHandle, lsn: string): Promise<void> {
  const s3 = createS3Client(config.s3);
  try {
    await waitUntil(`the archive to reach ${lsn}`, async () => {
      const { root, timeline } = await archiveState(handle);
      return root !== undefined && (await isArchived(s3, config.s3.bucket, root, timeline!, lsn));
    }, 30_000);
  } finally {
    s3.destroy();
  }
}

let lapAt = Date.now();
/** Where a test's time goes, for docs/tests.md. */
function lap(what: string): void {
  console.log(`walgap: ${what} ${Date.now() - lapAt} ms`);
  lapAt = Date.now();
}

const received = (kind: string) => hook.received.filter((n) => (n as { kind: string }).kind === kind) as Record<string, unknown>[];

test('a slot that lost its WAL while the archiver was paused: the gap is reported loudly, a full base backup starts, archiving goes on from a new slot', async () => {
  const config = archiveConfig('walgap-lost');
  lapAt = Date.now();
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startArchiving(client, taskQueue, cluster.name);
    await waitUntil('the archiver to stream', async () => receiverPid(config.walSpoolDir) !== undefined, 30_000);
    await untilArchived(config, handle, await switchSegment());
    lap('archiving');
    const before = await (await startBaseBackup(client, { taskQueue, workflowId: `walgap-before-${randomUUID().slice(0, 8)}` }, { cluster: cluster.name, mode: 'full' })).result();

    await pauseWalArchiver(handle, { by: 'test', reason: 'let the slot fall behind' });
    await waitUntil('pg_receivewal to stop', async () => (await archiveState(handle)).paused !== undefined && receiverPid(config.walSpoolDir) === undefined, 30_000);
    // More WAL than the slot may hold, then checkpoints: the server removes it and the slot is lost.
    await waitUntil('the archive slot to be lost', async () => {
      for (let i = 0; i < 3; i++) await switchSegment();
      await cluster.sql('pg1', 'CHECKPOINT');
      const [slot] = await cluster.sql<{ wal_status: string }>('pg1', 'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [archiveSlotName(cluster.name)]);
      return slot?.wal_status === 'lost';
    }, 30_000);

    lap('base backup, pause, slot lost');
    await resumeWalArchiver(handle);
    await waitUntil('the archiver to report the gap', async () => (await archiveState(handle)).gaps.length > 0, 30_000);
    const state = await archiveState(handle);
    const [gap] = state.gaps;
    expect(gap.reason).toMatch(/slot pgops_wal_walgap on pg1 had lost its WAL \(wal_status lost/);
    const segment = gapSegment(gap)!;
    expect(gap.baseBackup).toEqual({ workflowId: gapBaseBackupWorkflowId(cluster.name, state.systemIdentifier!, segment), outcome: 'started' });

    // Loudly: in the bucket, on the webhook, in the status.
    const s3 = createS3Client(config.s3);
    expect(await listKeys(s3, config.s3.bucket, `${state.root}/gaps/`)).toEqual([gap.key]);
    s3.destroy();
    await waitUntil('the webhook to hear of the gap', async () => received('wal-archive').some((n) => n.status === 'gap'), 10_000);
    expect(received('wal-archive').find((n) => n.status === 'gap')).toMatchObject({ cluster: cluster.name, gap: { fromLsn: gap.fromLsn, key: gap.key }, baseBackup: { outcome: 'started' } });

    lap('gap reported');
    // The fresh full base backup runs on its own, and archiving goes on from the new slot.
    const after = await client.workflow.getHandle(gap.baseBackup!.workflowId).result() as BaseBackupResult;
    expect(after.record.kind).toBe('full');
    await untilArchived(config, handle, await switchSegment());
    expect((await archiveState(handle)).paused).toBeUndefined();

    lap('gap base backup, archiving again');
    // Nothing skipped in silence: the audit shows the hole, the window restarts at the new backup.
    const audit = await auditWalChain(config, { cluster: cluster.name });
    expect(audit.gapless).toBe(false);
    expect(audit.timelines[0].missing[0]).toBe(segment);
    expect(audit.recordedGaps).toHaveLength(1);
    const viewS3 = createS3Client(config.s3);
    const view = await describePhysicalArchive(viewS3, config.s3, config.encryption, cluster.name);
    viewS3.destroy();
    expect(view.window?.backups.find((b) => b.backupId === before.backupId)).toMatchObject({ complete: false, reason: expect.stringContaining(segment) });
    expect(view.window?.from?.backupId).toBe(after.backupId);
    const scheduled = await runWalChainAudit(client, { taskQueue }, { cluster: cluster.name });
    expect(scheduled).toMatchObject({ status: 'gap-covered', recoverableFrom: after.backupId, holes: [expect.objectContaining({ fromSegment: segment, kind: 'missing' })] });
    expect(scheduled.baseBackup).toBeUndefined();
    console.log(`walgap: gap ${gap.fromLsn} to ${gap.toLsn}: ${audit.timelines[0].missing.length} segment(s) lost; full base backup ${after.backupId}`);
    // No clean stop needed (its slots are dropped next): a cancel would wait for the round's next heartbeat.
    await handle.terminate('test over');
  });
  await dropArchiveSlots(cluster.name, [cluster.target('pg1'), cluster.target('pg2')]);
});

test('the scheduled audit: a gapless archive is left alone; a deleted segment is reported and starts one full base backup, however many audits find it', async () => {
  const config = archiveConfig('walgap-audit');
  lapAt = Date.now();
  const scheduleId = walChainAuditScheduleId(cluster.name);
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startArchiving(client, taskQueue, cluster.name);
    try {
      await waitUntil('the archiver to stream', async () => receiverPid(config.walSpoolDir) !== undefined, 30_000);
      // One segment at a time: a burst past the 64 MB the slot may hold would be a real gap.
      for (let i = 0; i < 3; i++) await untilArchived(config, handle, await switchSegment());
      lap('archiving');

      // Through the schedule, as it runs in production.
      expect(await installWalChainAuditSchedule(client, { taskQueue, cluster: cluster.name, every: '1 hour' })).toMatch(/created|updated/);
      const schedule = client.schedule.getHandle(scheduleId);
      await schedule.trigger();
      let runId: string | undefined;
      await waitUntil('the schedule to start an audit', async () => (runId = (await schedule.describe()).info.recentActions.at(-1)?.action.workflow.workflowId) !== undefined, 15_000);
      const ok = (await client.workflow.getHandle(runId!).result()) as WalChainAuditResult;
      expect(ok).toMatchObject({ status: 'ok', holes: [] });
      expect(ok.baseBackup).toBeUndefined();
      expect(received('wal-chain-audit')).toEqual([]);

      lap('scheduled audit');
      // A segment in the middle of the chain disappears from the bucket.
      const audit = await auditWalChain(config, { cluster: cluster.name });
      const lost = audit.timelines[0].lastSegment!;
      const middle = `${lost.slice(0, 16)}${(parseInt(lost.slice(16), 16) - 1).toString(16).toUpperCase().padStart(8, '0')}`;
      const s3 = createS3Client(config.s3);
      await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key: walSegmentKey(audit.root!, middle) }));
      s3.destroy();

      // A dry run finds the same hole and starts nothing.
      const workflowId = gapBaseBackupWorkflowId(cluster.name, audit.systemIdentifier!, middle);
      const dry = await runWalChainAudit(client, { taskQueue, workflowId: `walgap-dry-${randomUUID().slice(0, 8)}` }, { cluster: cluster.name, dryRun: true });
      expect(dry).toMatchObject({ status: 'gap', holes: [{ fromSegment: middle, toSegment: middle }], notified: true });
      expect(dry.baseBackup).toBeUndefined();
      await expect(client.workflow.getHandle(workflowId).describe()).rejects.toThrow(/not found/i);

      // Two audits at once: one starts the gap's full base backup, the other finds it started.
      const found = await Promise.all([0, 1].map(() => runWalChainAudit(client, { taskQueue, workflowId: `walgap-audit-${randomUUID().slice(0, 8)}` }, { cluster: cluster.name })));
      for (const r of found) expect(r).toMatchObject({ status: 'gap', holes: [{ timeline: 1, fromSegment: middle, toSegment: middle, segments: 1, kind: 'absent' }], notified: true, baseBackup: { workflowId } });
      expect(found.map((r) => r.baseBackup!.outcome).sort()).toEqual(['already-started', 'started']);
      // What `pgops wal audit now` prints (and exits 2 on).
      expect(auditLines(found[0]).split('\n')).toEqual([
        expect.stringMatching(/^GAP: no base backup of walgap reaches the archive's head \S+ on timeline 1 across these gaps$/),
        `  timeline 1: ${middle} indexed but the object is gone`,
        expect.stringMatching(new RegExp(`^  full base backup ${workflowId} (started|already started)$`)),
        '  webhook told',
      ]);
      expect(received('wal-chain-audit')).toEqual([
        expect.not.objectContaining({ baseBackup: expect.anything() }),
        expect.objectContaining({ cluster: cluster.name, status: 'gap', baseBackup: expect.objectContaining({ workflowId }) }),
        expect.objectContaining({ cluster: cluster.name, status: 'gap', baseBackup: expect.objectContaining({ workflowId }) }),
      ]);

      lap('audits');
      const backup = (await client.workflow.getHandle(workflowId).result()) as BaseBackupResult;
      expect(backup.record.kind).toBe('full');
      lap('base backup');
      // Its retention removed the WAL before it (no older base backup could use it), hole and all.
      await untilArchived(config, handle, await switchSegment());
      const after = await runWalChainAudit(client, { taskQueue }, { cluster: cluster.name });
      expect(after).toMatchObject({ status: 'ok', holes: [] });
      expect(backup.prune.deletedWalObjects).toBeGreaterThan(0);
      expect(after.baseBackup).toBeUndefined();
      lap('after');
    } finally {
      await client.schedule.getHandle(scheduleId).delete().catch(() => undefined);
      await handle.terminate('test over').catch(() => undefined);
    }
  });
});
