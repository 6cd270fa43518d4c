// Real faults during nightlyBackup: the worker SIGKILLed mid-dump and mid-upload, MinIO stopped
// mid-upload. Each ends with exactly one complete backup and no multipart upload left behind.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import execa from 'execa';
import { backupProgress, connectClient, startBackup } from '../src/client';
import type { BackupProgress, NightlyBackupInput, NightlyBackupResult } from '../src/backup/contract';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createBackupFixture, downloadPlaintext, incompleteUploads, listKeys, type BackupFixture } from './support/backupFixture';
import { readManifestObject } from '../src/backup/manifest/store';
import { createS3Client } from '../src/shared/storage/s3Client';
import { activityAttempts as attempts, activityCompletions as completions } from './support/histories';
import { REPO_DIR } from './support/stack';
import { startS3Proxy } from './support/s3Proxy';
import { startWorkerProcess, waitUntil, type WorkerProcess } from './support/workerProcess';

let fixture: BackupFixture;
let client: Client;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  fixture = await createBackupFixture(1);
  client = await connectClient(fixture.config.temporal);
}, 180_000);

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await client?.connection.close();
  await fixture?.cleanup();
});

async function worker(taskQueue: string, options: { compiled?: boolean; env?: Record<string, string> } = {}): Promise<WorkerProcess> {
  const w = await startWorkerProcess({ ...fixture.env, PGOPS_TASK_QUEUE: taskQueue, ...options.env }, options);
  workers.push(w);
  return w;
}

async function start(taskQueue: string, input: Partial<NightlyBackupInput> = {}) {
  return startBackup(client, { taskQueue, workflowId: `fault-${randomUUID()}` }, { target: 'demo', format: 'custom', heartbeatTimeout: '5 seconds', ...input });
}

async function expectExactlyOneCompleteBackup(result: NightlyBackupResult) {
  const keys = await listKeys(fixture.config, `${fixture.prefix}/demo/${result.backupId}/`);
  expect(keys.map((k) => path.basename(k))).toEqual(['dump.pgdump', 'globals.sql', 'manifest.json']);
  expect(await incompleteUploads(fixture.config, `${fixture.prefix}/`)).toBe(0);
}

/** Starts a backup, SIGKILLs its worker's whole process group once `underWay` holds, and lets a new worker finish the run. */
async function killWorkerDuring(step: string, underWay: (p: BackupProgress) => boolean, input: Partial<NightlyBackupInput>) {
  const taskQueue = `fault-${step}-${randomUUID()}`;
  const first = await worker(taskQueue);
  const handle = await start(taskQueue, { verify: 'list', ...input });
  await waitUntil(`the ${step} to be under way`, async () => underWay(await backupProgress(handle)));
  await first.kill('SIGKILL');
  await worker(taskQueue);
  return { handle, result: await handle.result() };
}

const stack = (command: string) => execa(path.join(REPO_DIR, 'scripts/stack'), [command]);

describe('nightlyBackup under faults', () => {
  test('SIGKILL of the worker during the dump: a new worker finishes the same run', async () => {
    const { handle, result } = await killWorkerDuring('dump', (p) => (p.dumpedBytes ?? 0) > 0, { compression: 'gzip:9' });
    expect(await attempts(handle, 'dumpDatabase')).toBe(2);
    await expectExactlyOneCompleteBackup(result);
  });

  test('SIGKILL of the worker during the (encrypted) upload: resumes without re-dumping, no orphaned multipart upload, what landed decrypts to the dump', async () => {
    const { handle, result } = await killWorkerDuring('upload', (p) => (p.uploadedBytes ?? 0) > 0, { compression: 'none' });
    expect(await attempts(handle, 'uploadBackupData')).toBe(2);
    expect(await attempts(handle, 'dumpDatabase')).toBe(1);
    await expectExactlyOneCompleteBackup(result);
    const s3 = createS3Client(fixture.config.s3);
    const manifest = await readManifestObject(s3, fixture.config.s3.bucket, `${fixture.prefix}/demo/${result.backupId}/manifest.json`).finally(() => s3.destroy());
    expect(manifest.dataFiles[0].stored?.keyId).toBe(fixture.config.encryption!.current);
    // The object the second attempt stored is the one the manifest describes, and it opens to the staged dump.
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgops-fault-')), 'dump.pgdump');
    await downloadPlaintext(fixture.config, manifest, 'dump.pgdump', file);
  });

  test('SIGTERM during the dump (a deploy): the worker lets the dump finish before it exits', async () => {
    // The deployed worker, as `docker stop` would signal it: SIGTERM to the worker process only.
    await execa('npm', ['run', '--silent', 'build'], { cwd: REPO_DIR });
    const taskQueue = `fault-term-${randomUUID()}`;
    const first = await worker(taskQueue, { compiled: true });
    const handle = await start(taskQueue, { compression: 'gzip:9', verify: 'list' });
    await waitUntil('the dump to be under way', async () => ((await backupProgress(handle)).dumpedBytes ?? 0) > 0);
    await first.kill('SIGTERM');
    // The worker exited only after the in-flight dump completed and was recorded.
    expect(await completions(handle, 'dumpDatabase')).toBe(1);
    await worker(taskQueue);
    await expectExactlyOneCompleteBackup(await handle.result());
    expect(await attempts(handle, 'dumpDatabase')).toBe(1);
  });

  test('S3 stopped for 30 s during the upload: the upload is retried and completes when it returns', async () => {
    // The worker reaches MinIO through a proxy that holds the upload's first write until MinIO is
    // stopped: on a quiet machine a small upload could otherwise finish before the stop does.
    const proxy = await startS3Proxy(fixture.config.s3.endpoint!);
    try {
      proxy.setMode('hold-writes');
      const taskQueue = `fault-s3-${randomUUID()}`;
      await worker(taskQueue, { env: { PGOPS_S3_ENDPOINT: proxy.endpoint } });
      const handle = await start(taskQueue, { compression: 'none', verify: 'list' });
      // The data goes up while verification runs (stage "verify"), the manifest after it ("upload").
      await waitUntil('the upload to be under way', async () => proxy.held() > 0 && ['verify', 'upload'].includes((await backupProgress(handle)).stage));
      await stack('stop-minio');
      const stoppedAt = Date.now();
      try {
        proxy.release();
        await new Promise((r) => setTimeout(r, 30_000));
      } finally {
        await stack('start-minio');
      }
      const result = await handle.result();
      expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(30_000);
      expect(await attempts(handle, 'uploadBackupData')).toBeGreaterThan(1);
      await expectExactlyOneCompleteBackup(result);
    } finally {
      await proxy.close();
    }
  });
});
