// guardedRestore on the real stack: nothing changes until an allowed second person approves;
// approval restores exactly the backup; rejection, expiry and a tampered backup change nothing.
import { watcherWorkflowId } from '../src/failover/contract';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import { withTarget } from '../src/shared/postgres/connection';
import { authenticateManifest, listCatalog } from '../src/backup/manifest/store';
import { createS3Client } from '../src/shared/storage/s3Client';
import { decideRestore, DecisionRefused, restoreStatus, startBackup, startRestore } from '../src/client';
import { loadWorkerConfig, type WorkerConfig } from '../src/shared/config';
import type { GuardedRestoreInput, RestoreStatus } from '../src/restore/contract';
import { createBackupFixture, type BackupFixture } from './support/backupFixture';
import { databasesLike, dropDatabase, fingerprint, type Fingerprint } from './support/databaseFingerprint';
import { stackEnv, withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

let fixture: BackupFixture;
let config: WorkerConfig;
let backupId: string;
let atBackup: Fingerprint;

beforeAll(async () => {
  fixture = await createBackupFixture(0.05);
  config = loadWorkerConfig({
    ...stackEnv(),
    ...fixture.env,
    PGOPS_RESTORE_APPROVERS: 'alice,bob,carol',
    PGOPS_RESTORE_TWO_PERSON_RULE: 'true',
    // demo as the primary of a cluster, so a replace restore pauses that cluster's watcher.
    PGOPS_CLUSTERS: 'restore-watch',
    PGOPS_CLUSTER_RESTORE_WATCH_PRIMARY: 'demo',
    PGOPS_CLUSTER_RESTORE_WATCH_STANDBYS: 'standby',
  });
  backupId = await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startBackup(client, { taskQueue, workflowId: `restore-test-backup-${randomUUID()}` }, { target: 'demo', verify: 'list' });
    return (await handle.result()).backupId;
  });
  atBackup = await fingerprint(config, fixture.target);
}, 180_000);

afterAll(async () => {
  for (const name of await databasesLike(fixture.target, `${fixture.target.database}%`)) {
    if (name !== fixture.target.database) await dropDatabase(fixture.target, name);
  }
  await fixture?.cleanup();
});

/** Work done on the target after the backup: a new table, edited rows. */
async function changeTarget(): Promise<Fingerprint> {
  await withTarget(fixture.target, async (c) => {
    await c.query('CREATE TABLE IF NOT EXISTS written_after_backup AS SELECT generate_series(1, 100) AS n');
    await c.query(`UPDATE questions SET content = content || ' (edited)' WHERE id % 7 = 0`);
  });
  return fingerprint(config, fixture.target);
}

function restore(client: Client, taskQueue: string, input: Partial<GuardedRestoreInput>) {
  return startRestore(
    client,
    { taskQueue, workflowId: `restore-test-${randomUUID()}` },
    { target: 'demo', backup: backupId, mode: 'replace', requestedBy: 'alice', approvalTimeout: '10 minutes', heartbeatTimeout: '5 seconds', ...input },
  );
}

async function waitForStatus(client: Client, workflowId: string, what: string, holds: (s: RestoreStatus) => boolean): Promise<RestoreStatus> {
  let last: RestoreStatus | undefined;
  await waitUntil(what, async () => holds((last = await restoreStatus(client, workflowId))), 120_000);
  return last!;
}

test('replace: the requester and strangers cannot approve, a second allowed approver can, and the target becomes the backup', async () => {
  const before = await changeTarget();
  expect(before.content).not.toEqual(atBackup.content);
  await withWorker(config, async ({ client, taskQueue }) => {
    // The cluster's watcher, on a task queue no worker polls: it only collects the signals sent to it.
    const watcher = await client.workflow.start('failoverWatcher', { taskQueue: `idle-${randomUUID()}`, workflowId: watcherWorkflowId('restore-watch'), args: [{ cluster: 'restore-watch' }] });
    const handle = await restore(client, taskQueue, { reason: 'undo a bad migration' });
    const waiting = await waitForStatus(client, handle.workflowId, 'the plan', (s) => s.stage === 'awaiting-approval');
    expect(waiting.plan!.current!.rowCounts).toEqual(before.rows);
    expect(waiting.plan!.backupRowCounts).toEqual(atBackup.rows);
    expect(waiting.plan!.differences.join('\n')).toContain('public.written_after_backup');

    // Signals that the rule refuses are recorded and ignored; updates are refused to the caller.
    await handle.signal('approve', { approver: 'alice', reason: 'looks right to me' });
    await handle.signal('approve', { approver: 42 });
    // Kept whole, two of these would overflow Temporal's payload limit in the status and the audit.
    await handle.signal('approve', { approver: 'alice', reason: 'x'.repeat(600_000) });
    await waitForStatus(client, handle.workflowId, 'three ignored signals', (s) => s.ignored.length === 3);
    expect(JSON.stringify((await restoreStatus(client, handle.workflowId)).ignored).length).toBeLessThan(1_000);
    await expect(decideRestore(client, handle.workflowId, 'approve', { approver: 'alice', reason: 'me again' })).rejects.toThrow(/two-person rule/);
    await expect(decideRestore(client, handle.workflowId, 'approve', { approver: 'mallory', reason: 'trust me' })).rejects.toThrow(DecisionRefused);
    const status = await restoreStatus(client, handle.workflowId);
    expect(status.ignored.map((i) => i.why).join('\n')).toMatch(/two-person rule[\s\S]*approver must be a name/);
    expect(status.decision).toBeUndefined();
    expect(await fingerprint(config, fixture.target)).toEqual(before);

    await waitForStatus(client, handle.workflowId, 'the staging copy', (s) => s.stagingReady);
    await decideRestore(client, handle.workflowId, 'approve', { approver: 'bob', reason: 'checked the plan' });
    const result = await handle.result();

    expect(result.outcome).toBe('restored');
    expect(result.decision).toMatchObject({ decision: 'approve', approver: 'bob', via: 'update' });
    expect(await fingerprint(config, fixture.target)).toEqual(atBackup);
    // The replaced database is kept (closed to connections) and holds what the target held.
    const preRestore = { ...fixture.target, database: result.preRestoreDatabase! };
    await withTarget({ ...fixture.target, database: 'postgres' }, (c) => c.query(`ALTER DATABASE ${result.preRestoreDatabase} ALLOW_CONNECTIONS true`));
    expect((await fingerprint(config, preRestore)).content).toEqual(before.content);
    // The safety snapshot of the replaced database is in the catalog, ready to undo this restore.
    const s3 = createS3Client(config.s3);
    try {
      const catalog = await listCatalog(s3, config.s3, 'demo', config.encryption);
      expect(catalog.map((e) => e.backupId)).toContain(result.safetySnapshotId);
      const audit = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: result.auditKey! }));
      const records = (await audit.Body!.transformToString()).trim().split('\n').map((l) => JSON.parse(l));
      expect(records.find((r) => r.workflowId === handle.workflowId)).toMatchObject({ outcome: 'restored', requestedBy: 'alice', reason: 'undo a bad migration' });
    } finally {
      s3.destroy();
    }
    expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
    // Refused updates never reach history: only bob's was accepted.
    const events = (await handle.fetchHistory()).events!;
    expect(events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length).toBe(1);
    expect(JSON.stringify(events)).not.toContain('mallory');
    expect(result.reminder).toContain(`pgops restore cleanup --target demo --database ${result.preRestoreDatabase}`);
    // The watcher of demo's cluster was paused for the swap and resumed after it, by this restore.
    const signals = ((await watcher.fetchHistory()).events ?? [])
      .map((e) => e.workflowExecutionSignaledEventAttributes)
      .filter((a) => a != null)
      .map((a) => `${a.signalName} ${JSON.parse(Buffer.from(a.input!.payloads![0].data!).toString()).by}`);
    await watcher.terminate('test over');
    const holder = `${handle.workflowId}/${(await handle.describe()).runId}`;
    expect(signals).toEqual([`pauseWatch ${holder}`, `resumeWatch ${holder}`]);
  });
});

test('new-database: an approval by signal restores beside the target and leaves the target alone', async () => {
  const before = await changeTarget();
  const newDatabase = `${fixture.target.database}_copy`;
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await restore(client, taskQueue, { mode: 'new-database', newDatabase });
    await waitForStatus(client, handle.workflowId, 'the plan', (s) => s.stage === 'awaiting-approval');
    await handle.signal('approve', { approver: 'carol', reason: 'compare with production' });
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'restored', database: newDatabase, decision: { approver: 'carol', via: 'signal' } });
    expect(result.safetySnapshotId).toBeUndefined();
  });
  expect(await fingerprint(config, { ...fixture.target, database: newDatabase })).toEqual(atBackup);
  expect(await fingerprint(config, fixture.target)).toEqual(before);
  await dropDatabase(fixture.target, newDatabase);
});

test('reject: nothing changes and the staging copy is dropped', async () => {
  const before = await changeTarget();
  const preRestoreBefore = await databasesLike(fixture.target, '%_pre_restore_%');
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await restore(client, taskQueue, {});
    const ready = await waitForStatus(client, handle.workflowId, 'the staging copy', (s) => s.stagingReady);
    expect(await databasesLike(fixture.target, ready.plan!.stagingDatabase)).toEqual([ready.plan!.stagingDatabase]);
    await decideRestore(client, handle.workflowId, 'reject', { approver: 'bob', reason: 'wrong backup' });
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'rejected', decision: { decision: 'reject', approver: 'bob' } });
    expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
  });
  expect(await fingerprint(config, fixture.target)).toEqual(before);
  expect(await databasesLike(fixture.target, '%_pre_restore_%')).toEqual(preRestoreBefore);
});

test('no decision before the approval timeout: the restore expires with nothing changed', async () => {
  const before = await changeTarget();
  const preRestoreBefore = await databasesLike(fixture.target, '%_pre_restore_%');
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await restore(client, taskQueue, { approvalTimeout: '3 seconds' });
    const result = await handle.result();
    expect(result.outcome).toBe('expired');
    expect(result.decision).toBeUndefined();
  });
  expect(await fingerprint(config, fixture.target)).toEqual(before);
  expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
  expect(await databasesLike(fixture.target, '%_pre_restore_%')).toEqual(preRestoreBefore);
});

test('bad input gets one clear error before anything runs', async () => {
  const before = await fingerprint(config, fixture.target);
  await withWorker(config, async ({ client, taskQueue }) => {
    const bad = await restore(client, taskQueue, { mode: 'overwrite' as never });
    await expect(bad.result()).rejects.toThrow(WorkflowFailedError);
    await expect(bad.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/input.mode must be "replace" or "new-database"/) } });
    const missing = await restore(client, taskQueue, { backup: 'demo-19990101T000000Z-000000' });
    await expect(missing.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/not in the catalog/) } });
    const unknownTarget = await restore(client, taskQueue, { target: 'nope' });
    await expect(unknownTarget.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/unknown target "nope" \(configured in PGOPS_TARGETS: primary, standby, verify, demo\)/) } });
    const notAName = await restore(client, taskQueue, { target: 'Demo; DROP DATABASE x' });
    await expect(notAName.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/input.target must name a configured target/) } });
    for (const handle of [missing, unknownTarget]) expect((await restoreStatus(client, handle.workflowId)).plan).toBeUndefined();
  });
  expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
  expect(await fingerprint(config, fixture.target)).toEqual(before);
});

test('a manifest naming files outside its folder is refused before anything is downloaded', async () => {
  const s3 = createS3Client(config.s3);
  const entry = (await listCatalog(s3, config.s3, 'demo', config.encryption)).find((e) => e.backupId === backupId)!;
  const manifest = JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: entry.manifestKey }))).Body!.transformToString());
  const evilId = 'demo-20000101T000000Z-e71100';
  // Signed with the workers' key, as only a worker (or a thief of its key) could: the name is refused all the same.
  const evil = authenticateManifest(config.encryption, { ...manifest, backupId: evilId, dataFiles: [{ ...manifest.dataFiles[0], name: '../../../escaped.pgdump' }] });
  await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: entry.manifestKey.replace(backupId, evilId), Body: JSON.stringify(evil) }));
  s3.destroy();
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await restore(client, taskQueue, { backup: evilId });
    await expect(handle.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/names a file outside its folder: "..\/..\/..\/escaped.pgdump"/) } });
  });
  // Where the name would have led from <stagingDir>/restore-<id>/.
  expect(existsSync(path.resolve(fixture.stagingDir, '../../escaped.pgdump'))).toBe(false);
});

test('a tampered backup object fails the restore before any database is touched', async () => {
  const before = await fingerprint(config, fixture.target);
  const s3 = createS3Client(config.s3);
  const entry = (await listCatalog(s3, config.s3, 'demo', config.encryption)).find((e) => e.backupId === backupId)!;
  // A data object of the dump (in directory format, dumpKey is a folder, not an object).
  const objectKey = entry.dataKeys[0];
  const original = await (await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: objectKey }))).Body!.transformToByteArray();
  const tampered = Buffer.from(original);
  tampered[Math.floor(tampered.length / 2)] ^= 0xff;
  await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: objectKey, Body: tampered }));
  s3.destroy();
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await restore(client, taskQueue, {});
    // Stored encrypted, the flipped byte fails its chunk's authentication; stored plain, the checksum.
    await expect(handle.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/object s3:\/\/\S+ (does not match its manifest|fails authentication)/) } });
    const status = await restoreStatus(client, handle.workflowId);
    expect(status.stage).toBe('failed');
    expect(status.plan).toBeUndefined();
  });
  expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
  expect(await fingerprint(config, fixture.target)).toEqual(before);
});
