// nightlyBackup against the real stack: a seeded database, MinIO, the Temporal dev server.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../src/activities';
import { connectTarget } from '../src/shared/postgres/connection';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { countRows } from '../src/shared/postgres/rowCounts';
import { createS3Client } from '../src/shared/storage/s3Client';
import { startBackup } from '../src/client';
import type { WorkerConfig } from '../src/shared/config';
import type { NightlyBackupInput, NightlyBackupResult } from '../src/backup/contract';
import { createBackupFixture, downloadObject, downloadPlaintext, incompleteUploads, listKeys, schemaOnly, type BackupFixture } from './support/backupFixture';
import { readManifestObject } from '../src/backup/manifest/store';
import type { BackupManifest } from '../src/backup/manifest';
import { withScratchDatabase } from './support/scratchDatabase';
import { withWorker } from './support/stack';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhookReceiver';
import { waitUntil } from './support/workerProcess';

let fixture: BackupFixture;
let webhook: WebhookReceiver;

beforeAll(async () => {
  fixture = await createBackupFixture(0.1);
  webhook = await startWebhookReceiver();
}, 120_000);

afterAll(async () => {
  await fixture?.cleanup();
  await webhook?.close();
});

function configWith(changes: Partial<WorkerConfig> = {}): WorkerConfig {
  return { ...fixture.config, notifyWebhookUrl: webhook.url, ...changes };
}

async function runBackup(input: NightlyBackupInput, config = configWith(), activities?: Parameters<typeof withWorker>[2]) {
  return withWorker(
    config,
    async ({ client, taskQueue }) => {
      const handle = await startBackup(client, { taskQueue }, input);
      return { handle, result: await handle.result() };
    },
    activities,
  );
}

async function backupFailure(input: NightlyBackupInput, config = configWith(), activities?: Parameters<typeof withWorker>[2]) {
  try {
    await runBackup(input, config, activities);
  } catch (err) {
    if (err instanceof WorkflowFailedError) return err.cause?.message ?? err.message;
    throw err;
  }
  throw new Error('the backup succeeded');
}

async function publishedManifest(key: string): Promise<BackupManifest> {
  const s3 = createS3Client(fixture.config.s3);
  try {
    return await readManifestObject(s3, fixture.config.s3.bucket, key);
  } finally {
    s3.destroy();
  }
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('nightlyBackup', () => {
  let backup: NightlyBackupResult;

  test('backs up, verifies by test restore, uploads with checksums, and the upload restores to an identical database', async () => {
    ({ result: backup } = await runBackup({ target: 'demo', format: 'custom', notifyOnSuccess: true }));
    const m = backup.manifest;
    const source = await connectTarget(fixture.target);
    const sourceCounts = await countRows(source);
    await source.end();
    expect(m.rowCounts).toEqual(sourceCounts);
    expect(m.rowCounts['public.round_answers']).toBeGreaterThan(1000);
    expect(m).toMatchObject({ target: 'demo', format: 'custom', compression: 'zstd:1', serverVersion: expect.stringMatching(/^18\./) });
    expect(m.verification).toMatchObject({ level: 'restore', restoreServer: 'verify', tablesCompared: Object.keys(sourceCounts).length });

    // Exactly one backup's objects, the manifest among them, and no multipart upload left open.
    const prefix = `${fixture.prefix}/demo/${backup.backupId}/`;
    expect(await listKeys(fixture.config, `${fixture.prefix}/`)).toEqual([
      `${prefix}dump.pgdump`,
      `${prefix}globals.sql`,
      `${prefix}manifest.json`,
    ]);
    expect(await incompleteUploads(fixture.config, `${fixture.prefix}/`)).toBe(0);
    const s3 = createS3Client(fixture.config.s3);
    const head = await s3.send(new HeadObjectCommand({ Bucket: fixture.config.s3.bucket, Key: `${prefix}dump.pgdump` }));
    s3.destroy();
    // The object is stored encrypted: the published manifest records it as stored (ciphertext) and as dumped (plaintext).
    const published = await publishedManifest(`${prefix}manifest.json`);
    const stored = published.dataFiles[0].stored!;
    expect(stored).toMatchObject({ keyId: fixture.config.encryption!.current });
    expect(head).toMatchObject({ ContentLength: stored.sizeBytes, Metadata: expect.objectContaining({ sha256: m.sha256, 'key-id': stored.keyId }) });
    const raw = path.join(mkdtempSync(path.join(tmpdir(), 'pgops-stored-')), 'dump.pgdump');
    await downloadObject(fixture.config, `${prefix}dump.pgdump`, raw);
    expect(sha256(raw)).toBe(stored.sha256);

    // Restore what S3 holds into a fresh database: same rows, same schema.
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgops-restore-')), 'dump.pgdump');
    await downloadPlaintext(fixture.config, published, 'dump.pgdump', file);
    expect(sha256(file)).toBe(m.sha256);
    await withScratchDatabase(fixture.config.targets.primary, async (db, name) => {
      const restoredTarget = { ...fixture.target, database: name };
      await runPgTool(fixture.config, 'pg_restore', ['--exit-on-error', '--no-owner', `--dbname=${name}`, file], restoredTarget);
      expect(await countRows(db)).toEqual(sourceCounts);
      expect(await schemaOnly(fixture.config, restoredTarget)).toEqual(await schemaOnly(fixture.config, fixture.target));
    });

    const globals = readFileSync(path.join(fixture.stagingDir, backup.backupId, 'globals.sql'), 'utf8');
    expect(globals).toMatch(/CREATE ROLE replicator;/);
    expect(globals).not.toMatch(/PASSWORD/);
    expect(webhook.received).toContainEqual(expect.objectContaining({ status: 'succeeded', backupId: backup.backupId, target: 'demo' }));
  });

  test('by default: directory format dumped with parallel jobs, every file checksummed, restores from S3', async () => {
    const { result } = await runBackup({ target: 'demo' });
    const m = result.manifest;
    expect(m).toMatchObject({ format: 'directory', jobs: 2, dumpFile: 'dump.dir' });
    expect(m.dataFiles.map((f) => f.name)).toContain('dump.dir/toc.dat');
    expect(m.dataFiles.length).toBeGreaterThan(Object.keys(m.rowCounts).length);
    const prefix = `${fixture.prefix}/demo/${result.backupId}/`;
    expect(await listKeys(fixture.config, prefix)).toEqual(
      [...m.dataFiles.map((f) => prefix + f.name), `${prefix}globals.sql`, `${prefix}manifest.json`].sort(),
    );
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'pgops-restore-')), 'dump.dir');
    mkdirSync(dir);
    const published = await publishedManifest(`${prefix}manifest.json`);
    for (const f of m.dataFiles) {
      const file = path.join(dir, path.basename(f.name));
      await downloadPlaintext(fixture.config, published, f.name, file);
      expect(sha256(file)).toBe(f.sha256);
    }
    await withScratchDatabase(fixture.config.targets.primary, async (db, name) => {
      const restoredTarget = { ...fixture.target, database: name };
      await runPgTool(fixture.config, 'pg_restore', ['--exit-on-error', '--no-owner', '--jobs=2', `--dbname=${name}`, dir], restoredTarget);
      expect(await countRows(db)).toEqual(m.rowCounts);
    });
  });

  test('a staged dump corrupted before verify is never uploaded, and the webhook hears of it', async () => {
    const real = createActivities(configWith());
    const message = await backupFailure({ target: 'demo', format: 'custom' }, configWith(), {
      async dumpDatabase(input) {
        const manifest = await real.dumpDatabase(input);
        const file = path.join(fixture.stagingDir, input.backupId, manifest.dumpFile);
        const fd = openSync(file, 'r+');
        writeSync(fd, Buffer.from('garbage!'), 0, 8, Math.floor(statSync(file).size / 2));
        closeSync(fd);
        return manifest;
      },
    });
    expect(message).toMatch(/failed at verify: staged dump .* does not match its manifest: sha256 [0-9a-f]{64}/);
    const backupId = /nightly backup (\S+) of demo/.exec(message)![1];
    expect(await listKeys(fixture.config, `${fixture.prefix}/demo/${backupId}/`)).toEqual([]);
    expect(webhook.received).toContainEqual(
      expect.objectContaining({ status: 'failed', stage: 'verify', backupId, error: expect.stringContaining('does not match its manifest') }),
    );
  });

  test('the data goes up while the test restore runs; a verification that fails takes it away, and no manifest appears', async () => {
    const real = createActivities(configWith());
    let sawDataDuringVerify = false;
    const message = await backupFailure({ target: 'demo', format: 'custom' }, configWith(), {
      async verifyByTestRestore(input) {
        const prefix = `${fixture.prefix}/demo/${input.backupId}/`;
        // Still verifying when the data has landed: the two overlap.
        await waitUntil('the dump to be uploaded during verify', async () => (await listKeys(fixture.config, prefix)).includes(`${prefix}dump.pgdump`), 60_000);
        sawDataDuringVerify = true;
        await real.verifyByTestRestore(input);
        throw ApplicationFailure.nonRetryable('the test restore found something wrong', 'BackupUnrestorable');
      },
    });
    expect(sawDataDuringVerify).toBe(true);
    expect(message).toMatch(/failed at verify: the test restore found something wrong/);
    const backupId = /nightly backup (\S+) of demo/.exec(message)![1];
    expect(await listKeys(fixture.config, `${fixture.prefix}/demo/${backupId}/`)).toEqual([]);
    expect(await incompleteUploads(fixture.config, `${fixture.prefix}/`)).toBe(0);
  });

  test('verifying on the backed-up server itself is possible when asked for, and says so', async () => {
    const { result } = await runBackup({ target: 'demo', verifyTarget: 'demo' });
    expect(result.manifest.verification).toMatchObject({ level: 'restore', restoreServer: 'demo', warning: expect.stringMatching(/ran on demo, the server that was backed up/) });
  });

  // The local stack's PostgreSQL is built with zstd and lz4 (scripts/stack-lib.sh checks it).
  test.each(['lz4', 'gzip:6'])('compression %s is selectable and restores', async (compression) => {
    const { result } = await runBackup({ target: 'demo', compression, verify: 'restore' });
    expect(result.manifest.compression).toBe(compression);
    expect(result.manifest.verification?.level).toBe('restore');
  });

  describe('bad input fails with one clear error and deletes nothing', () => {
    let keysBefore: string[];
    beforeEach(async () => {
      keysBefore = await listKeys(fixture.config, `${fixture.prefix}/`);
    });
    afterEach(async () => {
      expect(await listKeys(fixture.config, `${fixture.prefix}/`)).toEqual(keysBefore);
    });

    test('unknown target', async () => {
      expect(await backupFailure({ target: 'nope' })).toMatch(
        /failed at dump: unknown target "nope" \(configured in PGOPS_TARGETS: primary, standby, verify, demo\)$/,
      );
    });

    test('unwritable staging dir', async () => {
      // Tests run as root, which may write anywhere a directory exists; below a file, nobody can.
      const blocker = path.join(mkdtempSync(path.join(tmpdir(), 'pgops-blocker-')), 'a-file');
      writeFileSync(blocker, '');
      const stagingDir = path.join(blocker, 'staging');
      const message = await backupFailure({ target: 'demo' }, configWith({ stagingDir }));
      expect(message).toContain(`failed at dump: staging dir ${stagingDir} is not writable (ENOTDIR); fix PGOPS_STAGING_DIR`);
    });

    test('missing bucket', async () => {
      const config = configWith();
      config.s3 = { ...config.s3, bucket: 'no-such-bucket-pgops' };
      expect(await backupFailure({ target: 'demo', verify: 'list' }, config)).toMatch(
        /failed at upload: bucket "no-such-bucket-pgops" does not exist at http:\/\/127\.0\.0\.1:9000; create it or fix PGOPS_S3_BUCKET$/,
      );
    });

    test('retention that would delete everything is refused before anything runs', async () => {
      const stagedBefore = existsSync(fixture.stagingDir) ? statSync(fixture.stagingDir).mtimeMs : 0;
      expect(await backupFailure({ target: 'demo', retention: { minKeep: 0 } })).toBe(
        'retention.minKeep=0 would allow deleting every backup; it must be at least 1',
      );
      expect(statSync(fixture.stagingDir).mtimeMs).toBe(stagedBefore);
    });
  });
});
