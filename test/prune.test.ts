// Remote retention over a crafted catalog in the real S3 server.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { authenticateManifest, writeManifest } from '../src/backup/manifest/store';
import { restoreWorkspace } from '../src/restore/activities/fetchBackup';
import { pruneActivities } from '../src/backup/activities/pruneBackups';
import { backupKeys } from '../src/backup/manifest';
import { createS3Client } from '../src/shared/storage/s3Client';
import type { PruneResult } from '../src/backup/contract';
import type { BackupManifest } from '../src/backup/manifest';
import { deletePrefix, listKeys } from './support/backupFixture';
import { stackConfig } from './support/stack';

const config = stackConfig();
config.s3 = { ...config.s3, prefix: `test-prune-${randomUUID().slice(0, 8)}/backups` };
config.stagingDir = mkdtempSync(path.join(tmpdir(), 'pgops-prune-'));
const STRAY = `${config.s3.prefix}/demo/hand-made-copy/dump.pgdump`;

/** One verified backup a day at 03:00 UTC for 60 days ending 2026-11-27, plus an object no manifest names. */
async function craftCatalog(): Promise<void> {
  const s3 = createS3Client(config.s3);
  const put = (Key: string, Body: string) => s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key, Body }));
  try {
    for (let i = 0; i < 60; i++) {
      const finishedAt = new Date(Date.UTC(2026, 10, 27, 3) - i * 86_400_000).toISOString();
      const backupId = `demo-${finishedAt.slice(0, 10)}`;
      const dataFiles = [{ name: 'dump.pgdump', sizeBytes: 4, sha256: '-' }];
      const manifest = { backupId, target: 'demo', finishedAt, sizeBytes: 4, dumpFile: 'dump.pgdump', dataFiles, verification: { level: 'restore' } } as BackupManifest;
      const keys = backupKeys(config.s3, manifest);
      await put(keys.dumpKey, 'dump');
      await put(keys.globalsKey, '-- globals');
      // Signed as a worker holding the stack's keys would: prune acts on authentic manifests only.
      await put(keys.manifestKey, JSON.stringify(authenticateManifest(config.encryption, manifest)));
    }
    await put(STRAY, 'an operator copied this here by hand');
  } finally {
    s3.destroy();
  }
}

const remainingBackups = async () =>
  (await listKeys(config, `${config.s3.prefix}/`)).filter((k) => k.endsWith('/manifest.json')).map((k) => k.split('/').at(-2));

describe('pruneBackups', () => {
  const prune = pruneActivities(config).pruneBackups;
  const retention = { keepLast: 2, keepDaily: 3, keepWeekly: 3, keepMonthly: 3, minKeep: 1, localKeepDays: 7 };

  beforeAll(craftCatalog, 120_000);

  test('a dry run lists what it would delete and deletes nothing', async () => {
    const before = await listKeys(config, `${config.s3.prefix}/`);
    const result: PruneResult = await new MockActivityEnvironment().run(prune, { target: 'demo', retention, dryRun: true });
    expect(result.deletedRemote).toEqual([]);
    expect(result.remote.filter((d) => !d.keep)).toHaveLength(60 - 7);
    expect(await listKeys(config, `${config.s3.prefix}/`)).toEqual(before);
  });

  test('exactly the backups the policy keeps remain, and an object no manifest names is left alone', async () => {
    const result: PruneResult = await new MockActivityEnvironment().run(prune, { target: 'demo', retention, dryRun: false });
    expect(result.deletedRemote).toHaveLength(53);
    expect((await remainingBackups()).sort()).toEqual(
      ['demo-2026-09-30', 'demo-2026-10-31', 'demo-2026-11-15', 'demo-2026-11-22', 'demo-2026-11-25', 'demo-2026-11-26', 'demo-2026-11-27'],
    );
    const keys = await listKeys(config, `${config.s3.prefix}/`);
    expect(keys).toContain(STRAY);
    expect(keys).toHaveLength(7 * 3 + 1);
  });

  test('a retention that would delete everything is refused before anything is deleted', async () => {
    const before = await listKeys(config, `${config.s3.prefix}/`);
    await expect(
      new MockActivityEnvironment().run(prune, { target: 'demo', retention: { ...retention, minKeep: 0 }, dryRun: false }),
    ).rejects.toThrow('retention.minKeep=0 would allow deleting every backup; it must be at least 1');
    expect(await listKeys(config, `${config.s3.prefix}/`)).toEqual(before);
  });

  test('local pruning deletes an old staged backup but never the workspace of a restore of an old backup', async () => {
    const old = (backupId: string) => ({ backupId, target: 'demo', finishedAt: '2026-01-01T03:00:00.000Z', dumpFile: 'dump.pgdump', dataFiles: [] }) as unknown as BackupManifest;
    const staged = path.join(config.stagingDir, 'demo-2026-01-01');
    mkdirSync(staged, { recursive: true });
    await writeManifest(staged, old('demo-2026-01-01'));
    // A restore that fetched a months-old backup a moment ago, and is restoring from it now.
    const workspace = restoreWorkspace(config, 'a1b2c3d4e5f6');
    mkdirSync(workspace, { recursive: true });
    writeFileSync(path.join(workspace, 'dump.pgdump'), 'dump');
    await writeManifest(workspace, old('demo-2026-01-01'));
    const result: PruneResult = await new MockActivityEnvironment().run(prune, { target: 'demo', retention, dryRun: false });
    expect(result.deletedLocal).toEqual(['demo-2026-01-01']);
    expect(existsSync(staged)).toBe(false);
    expect(existsSync(path.join(workspace, 'dump.pgdump'))).toBe(true);
  });

  afterAll(() => deletePrefix(config, `${config.s3.prefix.split('/')[0]}/`));
});
