// pointInTimeRestore on an isolated primary + standby + PgBouncer (ports 26300-26302), restored
// instances on 26320-26329, a prefix of its own in the stack's bucket. The operator's question:
// rows written, the moment noted, the rows deleted — restore to that moment and the rows are
// back while the delete is not; by time, by LSN and by a named restore point. Targets outside the
// window are refused with nothing created; a corrupt WAL object stops the restore naming it; the
// requester cannot approve their own restore; rejected and expired restores remove the instance.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import execa from 'execa';
import { DecisionRefused, decidePointInTimeRestore, pitrStatus, startPointInTimeRestore, startRestoreDrill } from '../src/client';
import { physicalListing } from '../src/cli/commands/baseBackup';
import { archiveObjectContext } from '../src/archive/archiveCrypto';
import { encryptBuffer } from '../src/shared/crypto/objectStream';
import type { PitrHandle } from '../src/client/pitr';
import { pitrApproveSignal, type PitrStage, type PointInTimeRestoreInput, type RecoveryTarget } from '../src/pitr/contract';
import { createS3Client } from '../src/shared/storage/s3Client';
import { connectTarget } from '../src/shared/postgres/connection';
import { archivedSegmentKeys, createPitrFixture, instanceDir, instanceExists, objectMetadata, TEST_TABLE, type PitrFixture } from './support/pitrFixture';
import { startWorkerProcess, waitUntil } from './support/workerProcess';
import { activityAttempts } from './support/histories';

let f: PitrFixture;
const started: { dir: string; port: number }[] = [];

beforeAll(async () => {
  f = await createPitrFixture('pitr', 26300);
  await f.sql(`INSERT INTO ${TEST_TABLE} SELECT g, 'before the backup' FROM generate_series(1, 10) g`);
  await f.baseBackup();
  await f.archiveWal();
}, 180_000);

afterAll(async () => {
  // A restored instance a failed test left running would outlive its deleted directory.
  for (const { dir } of started) {
    await execa('runuser', ['-u', 'pgops', '--', `${f.config.pgBinDir}/pg_ctl`, '-D', dir, '-m', 'immediate', 'stop'], { reject: false });
  }
  await f?.down();
}, 60_000);

function restore(target: RecoveryTarget, port: number, extra: Partial<PointInTimeRestoreInput> = {}): Promise<PitrHandle> {
  const dir = instanceDir(f, String(port));
  started.push({ dir, port });
  return startPointInTimeRestore(
    f.client,
    { taskQueue: f.taskQueue, workflowId: `test-pitr-${port}-${randomUUID()}` },
    { cluster: f.cluster.name, target, instance: { dataDir: dir, port }, mode: 'side', requestedBy: 'alice', reason: 'undo the delete', ...extra },
  );
}

async function waitForStage(handle: PitrHandle, stage: PitrStage, timeoutMs = 90_000): Promise<void> {
  await waitUntil(`restore ${handle.workflowId} to reach ${stage}`, async () => {
    const status = await pitrStatus(f.client, handle.workflowId);
    if (status.stage === 'failed') throw new Error(`restore failed: ${status.error}`);
    return status.stage === stage;
  }, timeoutMs);
}

async function failureOf(handle: PitrHandle): Promise<string> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause!.message;
}

/** Rows 101-200 written and deleted again; `mark` notes the point between the two. */
async function writeThenDelete<T>(from: number, mark: () => Promise<T>, archive: { switchSegment?: boolean } = {}): Promise<T> {
  await f.sql(`INSERT INTO ${TEST_TABLE} SELECT g, 'deleted later' FROM generate_series($1::int, $1::int + 99) g`, [from]);
  const point = await mark();
  await f.sql(`DELETE FROM ${TEST_TABLE} WHERE note = 'deleted later'`);
  await f.archiveWal(archive);
  return point;
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

describe('pointInTimeRestore', () => {
  test('to a time: the deleted rows are back, the delete is not; the requester cannot approve it, a second person can', async () => {
    const [{ at }] = await writeThenDelete(101, () => f.sql<{ at: string }>('SELECT clock_timestamp()::text AS at'));
    const handle = await restore({ kind: 'time', time: at }, 26320);
    await waitForStage(handle, 'awaiting-approval');

    const status = await pitrStatus(f.client, handle.workflowId);
    expect(status.report).toMatchObject({ rowCounts: { [`public.${TEST_TABLE}`]: 110 }, liveRowCounts: { [`public.${TEST_TABLE}`]: 10 } });
    expect(status.report!.differences).toEqual([`public.${TEST_TABLE}: live 10, restored 110`]);
    expect(Date.parse(status.report!.lastCommitAt!)).toBeLessThanOrEqual(Date.parse(at));
    expect(await f.rows(26320)).toEqual([...range(1, 10), ...range(101, 100)]);
    expect(await f.rows()).toEqual(range(1, 10));

    // Alice asked: her approval is refused as an update (at once) and as a signal (recorded).
    await expect(decidePointInTimeRestore(f.client, handle.workflowId, 'approve', { approver: 'alice', reason: 'looks right' })).rejects.toThrow(DecisionRefused);
    await handle.signal(pitrApproveSignal, { approver: 'Alice', reason: 'looks right' });
    await waitUntil('the refused signal to be recorded', async () => (await pitrStatus(f.client, handle.workflowId)).ignored.length === 1);
    expect((await pitrStatus(f.client, handle.workflowId)).stage).toBe('awaiting-approval');

    await decidePointInTimeRestore(f.client, handle.workflowId, 'approve', { approver: 'bob', reason: 'row counts as expected' });
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'restored', mode: 'side', instanceRemoved: false, decision: { approver: 'bob', decision: 'approve' } });
    expect(result.ignored[0].why).toMatch(/two-person rule forbids approving your own point-in-time restore/);
    expect(result.auditKey).toMatch(/audit\/pitr\//);
    // Promoted: a writable server of its own, on a new timeline; the live cluster untouched.
    expect(result.promotion!.timeline).toBeGreaterThan(1);
    const client = await connectTarget({ ...f.cluster.target('pg1'), port: 26320 });
    await client.query(`INSERT INTO ${TEST_TABLE} VALUES (999, 'written on the restored instance')`);
    await client.end();
    expect(await f.rows()).toEqual(range(1, 10));
  }, 120_000);

  test('to an LSN, from an incremental base backup combined with its parent: the rows are there while it waits; rejected, the instance and its files are removed', async () => {
    const incremental = await f.baseBackup('auto');
    expect(incremental.record.kind).toBe('incremental');
    const [{ lsn }] = await writeThenDelete(201, () => f.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'));
    const handle = await restore({ kind: 'lsn', lsn }, 26321);
    await waitForStage(handle, 'awaiting-approval');
    expect((await pitrStatus(f.client, handle.workflowId)).recovery!.backup.chain).toEqual([incremental.record.parentBackupId, incremental.backupId]);
    expect(await f.rows(26321)).toEqual([...range(1, 10), ...range(201, 100)]);
    await decidePointInTimeRestore(f.client, handle.workflowId, 'reject', { approver: 'bob', reason: 'wrong point' });
    expect(await handle.result()).toMatchObject({ outcome: 'rejected', instanceRemoved: true });
    expect(instanceExists(instanceDir(f, '26321'))).toBe(false);
    expect(await f.rows()).toEqual(range(1, 10));
  }, 120_000);

  test('to a named restore point; unanswered, it expires and is removed', async () => {
    const name = `before-delete-${randomUUID().slice(0, 6)}`;
    await writeThenDelete(301, () => f.sql(`SELECT pg_create_restore_point('${name}')`));
    const handle = await restore({ kind: 'restorePoint', name }, 26322, { approvalTimeout: '8 seconds' });
    await waitForStage(handle, 'awaiting-approval');
    expect(await f.rows(26322)).toEqual([...range(1, 10), ...range(301, 100)]);
    expect(await handle.result()).toMatchObject({ outcome: 'expired', instanceRemoved: true });
    expect(instanceExists(instanceDir(f, '26322'))).toBe(false);
  }, 120_000);

  test('to the latest archived WAL: replay pauses at the archive head, with everything committed before the start', async () => {
    await f.sql(`INSERT INTO ${TEST_TABLE} VALUES (800, 'the newest row')`);
    await f.archiveWal();
    const handle = await restore({ kind: 'latest' }, 26328);
    await waitForStage(handle, 'awaiting-approval');
    expect(await f.rows(26328)).toEqual([...range(1, 10), 800]);
    expect((await pitrStatus(f.client, handle.workflowId)).report).toMatchObject({ pausedAtArchiveHead: true });
    await decidePointInTimeRestore(f.client, handle.workflowId, 'reject', { approver: 'bob', reason: 'only looking' });
    expect(await handle.result()).toMatchObject({ outcome: 'rejected', instanceRemoved: true });
    await f.sql(`DELETE FROM ${TEST_TABLE} WHERE id = 800`);
  }, 120_000);

  test('a target before the window or after the newest archived WAL is refused, saying what the window is, with nothing created', async () => {
    for (const target of [
      { kind: 'time', time: '2001-01-01 00:00:00+00' },
      { kind: 'time', time: new Date(Date.now() + 3_600_000).toISOString() },
      { kind: 'lsn', lsn: 'FF/0' },
      { kind: 'lsn', lsn: '0/100' },
    ] satisfies RecoveryTarget[]) {
      const handle = await restore(target, 26323);
      const message = await failureOf(handle);
      expect(message).toMatch(/it is (before the end of the oldest usable base backup|after the newest archived WAL); the recoverable window is from .* \(LSN .*, base backup base-.*\) to .* \(LSN .*, the newest archived WAL\)\. Nothing was created/);
      expect(instanceExists(instanceDir(f, '26323'))).toBe(false);
    }
  }, 60_000);

  test('a corrupt WAL object fails the restore at the fetch, naming the object; the live cluster is untouched', async () => {
    const [{ at }] = await writeThenDelete(401, () => f.sql<{ at: string }>('SELECT clock_timestamp()::text AS at'), { switchSegment: true });
    const keys = await archivedSegmentKeys(f);
    // The segment the rows went into (completed by the switch), with bytes that are not the archived ones.
    const key = keys.at(-1)!;
    const s3 = createS3Client(f.config.s3);
    const original = await s3.send(new GetObjectCommand({ Bucket: f.config.s3.bucket, Key: key }));
    const originalBody = Buffer.from(await original.Body!.transformToByteArray());
    const metadata = await objectMetadata(f, key);
    const { stdout: compressed } = await execa('zstd', ['-1', '-q', '-c'], { input: Buffer.alloc(16 * 1024 * 1024, 7), encoding: null });
    // Sealed under its own name by the stack's key (as a buggy worker would): it opens, and only the SHA-256 tells.
    const ring = f.config.encryption;
    const forged = ring ? await encryptBuffer(ring, compressed, { context: archiveObjectContext(f.root, key) }) : compressed;
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: forged, Metadata: metadata }));
    try {
      const handle = await restore({ kind: 'time', time: at }, 26324);
      const message = await failureOf(handle);
      expect(message).toContain(`s3://${f.config.s3.bucket}/${key} failed its SHA-256 check`);
      expect(message).toMatch(/the live cluster was not changed/);
      expect(instanceExists(instanceDir(f, '26324'))).toBe(false);
      expect(await f.rows()).toEqual(range(1, 10));
    } finally {
      await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: originalBody, Metadata: metadata }));
      s3.destroy();
    }
  }, 120_000);

  test('a worker SIGKILLed during WAL replay: a new worker finishes the same run', async () => {
    // Enough WAL after the backup that replay takes a while.
    await f.sql(`INSERT INTO pitr_filler SELECT g, repeat(md5(g::text), 16) FROM generate_series(100001, 250000) g`);
    const [{ at }] = await writeThenDelete(501, () => f.sql<{ at: string }>('SELECT clock_timestamp()::text AS at'));
    const taskQueue = `test-pitr-kill-${randomUUID()}`;
    const env = f.cluster.env('pg1', { PGOPS_S3_PREFIX: f.prefix, PGOPS_TASK_QUEUE: taskQueue, PGOPS_WORKER_SHUTDOWN_GRACE: '5 seconds' });
    let worker = await startWorkerProcess(env);
    try {
      const dir = instanceDir(f, '26325');
      started.push({ dir, port: 26325 });
      const handle = await startPointInTimeRestore(
        f.client,
        { taskQueue, workflowId: `test-pitr-kill-${randomUUID()}` },
        { cluster: f.cluster.name, target: { kind: 'time', time: at }, instance: { dataDir: dir, port: 26325 }, mode: 'side', requestedBy: 'alice', heartbeatTimeout: '5 seconds' },
      );
      await waitForStage(handle, 'replaying');
      await worker.kill('SIGKILL');
      worker = await startWorkerProcess(env);
      await waitForStage(handle, 'awaiting-approval', 120_000);
      expect(await activityAttempts(handle, 'replayToTarget')).toBeGreaterThan(1);
      expect(await f.rows(26325)).toEqual([...range(1, 10), ...range(501, 100)]);
      await decidePointInTimeRestore(f.client, handle.workflowId, 'reject', { approver: 'bob', reason: 'seen enough' });
      expect(await handle.result()).toMatchObject({ outcome: 'rejected', instanceRemoved: true });
      expect(instanceExists(dir)).toBe(false);
    } finally {
      await worker.kill('SIGKILL');
    }
  }, 180_000);

  test('a restore drill proves the newest base backup restorable (amcheck on its biggest indexes); backups list shows when', async () => {
    const dir = instanceDir(f, '26326');
    started.push({ dir, port: 26326 });
    const handle = await startRestoreDrill(f.client, { taskQueue: f.taskQueue, workflowId: `test-drill-${randomUUID()}` }, { cluster: f.cluster.name, instance: { dataDir: dir, port: 26326 } });
    const record = await handle.result();
    expect(record).toMatchObject({ ok: true, provedAt: expect.any(String) });
    expect(record.checks.map((c) => [c.name, c.ok])).toEqual([['fetch', true], ['reaches the target', true], ['row counts plausible', true], ['amcheck', true]]);
    expect(record.indexChecks.map((c) => c.index)).toEqual(expect.arrayContaining(['public.pitr_filler_pkey']));
    expect(instanceExists(dir)).toBe(false);
    const s3 = createS3Client(f.config.s3);
    try {
      expect(await physicalListing(s3, f.config.s3, f.config.encryption, f.cluster.name)).toContain(record.provedAt!);
    } finally {
      s3.destroy();
    }
  }, 120_000);

  // Last: it fences the cluster's primary.
  test('replace: clients through PgBouncer reach the restored primary; the old primary is fenced and kept', async () => {
    const [{ at }] = await writeThenDelete(601, () => f.sql<{ at: string }>('SELECT clock_timestamp()::text AS at'));
    const handle = await restore({ kind: 'time', time: at }, 26327, { mode: 'replace' });
    await waitForStage(handle, 'awaiting-approval');
    await decidePointInTimeRestore(f.client, handle.workflowId, 'approve', { approver: 'bob', reason: 'replace it' });
    const result = await handle.result();
    expect(result).toMatchObject({
      outcome: 'restored',
      mode: 'replace',
      oldPrimary: 'pg1',
      fence: { node: 'pg1', confirmed: true },
      repoint: { method: 'pgbouncer', verifiedWrite: true, endpointServerPort: 26327 },
      instanceRemoved: false,
    });
    expect(result.reminder).toMatch(/old primary pg1 is stopped and kept/);
    const throughPgBouncer = await f.cluster.sql<{ id: number }>('endpoint', `SELECT id FROM ${TEST_TABLE} WHERE id BETWEEN 601 AND 700`);
    expect(throughPgBouncer).toHaveLength(100);
    await expect(f.cluster.connect('pg1')).rejects.toThrow();
    expect(existsSync(f.cluster.dataDir.pg1)).toBe(true);
  }, 120_000);
});
