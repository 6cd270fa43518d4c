// baseBackup against a cluster of its own (ports 26220-26222, the seeded CS Arena schema), into a
// prefix of its own in the stack's bucket: each base backup is proved by pg_verifybackup after a
// round trip through S3; an incremental is combined with its parent by pg_combinebackup and
// proved the same way; an auto run falls back to full when the server cannot take an incremental;
// retention keeps what the recovery window needs; bad input fails in one line naming the fix,
// with nothing in the bucket deleted.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import execa from 'execa';
import type { BaseBackupInput, BaseBackupResult, PhysicalPruneResult } from '../src/archive/contract';
import { archiveRoot, baseBackupPrefix, type BaseBackupRecord } from '../src/archive/layout';
import { describePhysicalArchive, listBaseBackups, listKeys } from '../src/archive/catalog';
import { openStream } from '../src/archive/archiveCrypto';
import { pruneBaseBackupActivities } from '../src/archive/activities/pruneBaseBackups';
import { physicalListing } from '../src/cli/commands/baseBackup';
import { startBaseBackup } from '../src/client';
import { migrate } from '../src/db/migrate';
import { seed } from '../src/db/seed';
import type { WorkerConfig } from '../src/shared/config';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { createS3Client } from '../src/shared/storage/s3Client';
import { createReplicaCluster, type ReplicaCluster } from './support/replicaCluster';
import { startReadOnlyS3 } from './support/readOnlyS3';
import { withWorker } from './support/stack';

let cluster: ReplicaCluster;
let config: WorkerConfig;
let scratch: string;
const prefix = `test-basebackup-${randomUUID().slice(0, 8)}`;
const made: Record<string, BaseBackupResult> = {};

beforeAll(async () => {
  cluster = await createReplicaCluster('basebackup', 26220);
  scratch = await mkdtemp(path.join(tmpdir(), 'pgops-basebackup-'));
  config = cluster.config('pg1', { PGOPS_S3_PREFIX: prefix, PGOPS_STAGING_DIR: path.join(scratch, 'staging') });
  const db = await cluster.connect('pg1');
  await migrate(db);
  await seed(db, { scale: 0.05 });
  await db.end();
}, 120_000);

afterAll(async () => {
  const s3 = createS3Client(config.s3);
  for (const Key of await listKeys(s3, config.s3.bucket, `${prefix}/`)) await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key }));
  s3.destroy();
  await cluster?.down();
  await rm(scratch, { recursive: true, force: true });
});

function run(input: Partial<BaseBackupInput>, workerConfig = config): Promise<BaseBackupResult> {
  return withWorker(workerConfig, async ({ client, taskQueue }) =>
    (await startBaseBackup(client, { taskQueue, workflowId: `test-basebackup-${randomUUID()}` }, { cluster: cluster.name, ...input })).result(),
  );
}

async function failure(input: Partial<BaseBackupInput>, workerConfig = config): Promise<string> {
  const err = await run(input, workerConfig).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause!.message;
}

/**
 * Downloads a backup's objects, checking each against the SHA-256s in its record as published
 * (backup.json, authenticated: the workflow's result is the staged record, before upload).
 */
async function download(staged: BaseBackupRecord, into: string): Promise<string> {
  const dir = path.join(scratch, into);
  await mkdir(dir, { recursive: true });
  const s3 = createS3Client(config.s3);
  try {
    const record = (await listBaseBackups(s3, config.s3, config.encryption, cluster.name)).find((b) => b.record.backupId === staged.backupId)!.record;
    expect(record.files.map(({ name, sizeBytes, sha256 }) => ({ name, sizeBytes, sha256 }))).toEqual(staged.files);
    for (const file of record.files) {
      const root = archiveRoot(config.s3, cluster.name, record.systemIdentifier);
      const key = `${baseBackupPrefix(root, record.backupId)}${file.name}`;
      const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }));
      expect(object.Metadata?.sha256).toBe(file.sha256);
      // The stack configures a key: every object is sealed, and its record says with which.
      expect(file.stored?.keyId).toBe(config.encryption?.current);
      const tap = (hash: ReturnType<typeof createHash>) => new Transform({ transform: (chunk: Buffer, _e, done) => done(null, hash.update(chunk) && chunk) });
      const stored = createHash('sha256');
      const plain = createHash('sha256');
      const opening = file.stored ? [openStream(config.encryption, root, key, file.stored.keyId)] : [];
      await pipeline([object.Body as Readable, tap(stored), ...opening, tap(plain), createWriteStream(path.join(dir, file.name))]);
      if (file.stored) expect(stored.digest('hex')).toBe(file.stored.sha256);
      expect(plain.digest('hex')).toBe(file.sha256);
    }
  } finally {
    s3.destroy();
  }
  return dir;
}

/** The tar backup as a plain data directory (what pg_combinebackup reads): base.tar.zst, pg_wal.tar.zst, backup_manifest. */
async function extract(tarDir: string): Promise<string> {
  const plain = `${tarDir}-plain`;
  await mkdir(path.join(plain, 'pg_wal'), { recursive: true });
  await execa('tar', ['--zstd', '-xf', path.join(tarDir, 'base.tar.zst'), '-C', plain]);
  await execa('tar', ['--zstd', '-xf', path.join(tarDir, 'pg_wal.tar.zst'), '-C', path.join(plain, 'pg_wal')]);
  await execa('cp', [path.join(tarDir, 'backup_manifest'), plain]);
  return plain;
}

const pgTool = (tool: 'pg_verifybackup' | 'pg_combinebackup', args: string[]) => runPgTool(config, tool, args, undefined, { all: true, reject: false });

describe('baseBackup', () => {
  test('a full base backup of the seeded database passes pg_verifybackup after a round trip through S3', async () => {
    const result = (made.full = await run({ mode: 'full' }));
    const r = result.record;
    expect(r).toMatchObject({ kind: 'full', cluster: cluster.name, node: 'pg1', startTimeline: 1, stopTimeline: 1, serverVersion: expect.stringMatching(/^18\./) });
    expect(r.files.map((f) => f.name)).toEqual(['base.tar.zst', 'pg_wal.tar.zst', 'backup_manifest']);
    expect(result.location).toBe(`s3://${config.s3.bucket}/${baseBackupPrefix(archiveRoot(config.s3, cluster.name, r.systemIdentifier), r.backupId)}`);

    const tarDir = await download(r, 'full');
    const tarCheck = await pgTool('pg_verifybackup', ['--no-parse-wal', tarDir]);
    expect(tarCheck.all).toBe('backup successfully verified');
    // Extracted, its own streamed WAL takes it from start to stop: restorable without any archive.
    const plainCheck = await pgTool('pg_verifybackup', [await extract(tarDir)]);
    expect(plainCheck.all).toBe('backup successfully verified');
    expect(await readdir(config.stagingDir)).toEqual([]);
  });

  test('backups list shows it, and says there is no WAL archive yet', async () => {
    const s3 = createS3Client(config.s3);
    try {
      const view = await describePhysicalArchive(s3, config.s3, config.encryption, cluster.name);
      expect(view.backups.map((b) => b.backupId)).toEqual([made.full.backupId]);
      expect(view.window).toBeUndefined();
      const listing = await physicalListing(s3, config.s3, config.encryption);
      expect(listing).toContain(made.full.backupId);
      expect(listing).toContain(`no WAL archive found for cluster ${cluster.name}`);
    } finally {
      s3.destroy();
    }
  });

  test('an auto run takes an incremental that pg_combinebackup combines with its parent and pg_verifybackup passes', async () => {
    await cluster.sql('pg1', 'CREATE TABLE after_full AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g');
    const result = (made.incremental = await run({ mode: 'auto' }));
    expect(result.record).toMatchObject({ kind: 'incremental', parentBackupId: made.full.backupId });
    expect(result.fullBecause).toBeUndefined();
    expect(result.record.sizeBytes).toBeLessThan(made.full.record.sizeBytes);

    const full = await extract(await download(made.full.record, 'combine-full'));
    const incremental = await extract(await download(result.record, 'combine-incremental'));
    const combined = path.join(scratch, 'combined');
    const combine = await pgTool('pg_combinebackup', ['--manifest-checksums=SHA256', '-o', combined, full, incremental]);
    expect(combine.exitCode).toBe(0);
    const verify = await pgTool('pg_verifybackup', ['--wal-directory', path.join(incremental, 'pg_wal'), combined]);
    expect(verify.all).toBe('backup successfully verified');
  });

  test('an auto run on a server that cannot take an incremental (summarize_wal off) takes a full one and says why', async () => {
    await cluster.sql('pg1', 'ALTER SYSTEM SET summarize_wal = off');
    await cluster.sql('pg1', 'SELECT pg_reload_conf()');
    try {
      const result = (made.fallback = await run({ mode: 'auto' }));
      expect(result.record.kind).toBe('full');
      expect(result.record.parentBackupId).toBeUndefined();
      expect(result.fullBecause).toMatch(/cannot take an incremental on base-.*: incremental backups cannot be taken unless WAL summarization is enabled$/);
    } finally {
      await cluster.sql('pg1', 'ALTER SYSTEM RESET summarize_wal');
      await cluster.sql('pg1', 'SELECT pg_reload_conf()');
    }
  });

  test('retention by recovery window keeps the window, its anchor and every parent of a kept incremental; a dry run deletes nothing', async () => {
    // The next incremental builds on the fallback full: four backups, two chains.
    await cluster.sql('pg1', 'INSERT INTO after_full SELECT g, md5(g::text) FROM generate_series(50001, 60000) g');
    made.incremental2 = await run({ mode: 'auto' });
    expect(made.incremental2.record).toMatchObject({ kind: 'incremental', parentBackupId: made.fallback.backupId });

    const root = archiveRoot(config.s3, cluster.name, made.full.record.systemIdentifier);
    const s3 = createS3Client(config.s3);
    // WAL objects as the archiver lays them out: segments before and after the kept chain's start, and a history file.
    const startSegno = parseInt(made.fallback.record.startLsn.split('/')[1], 16) >>> 24;
    const hi = made.fallback.record.startLsn.split('/')[0].padStart(8, '0');
    const walKey = (n: number) => `${root}/wal/00000001/00000001${hi}${n.toString(16).toUpperCase().padStart(8, '0')}.zst`;
    const before = walKey(startSegno - 1);
    const after = walKey(startSegno);
    const history = `${root}/wal/history/00000002.history`;
    for (const Key of [before, after, history]) await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key, Body: 'x' }));

    const prune = (dryRun: boolean): Promise<PhysicalPruneResult> =>
      new MockActivityEnvironment().run(pruneBaseBackupActivities(config).pruneBaseBackups, {
        cluster: cluster.name,
        recoveryWindow: '1 second',
        dryRun,
        now: new Date(Date.parse(made.incremental2.record.stoppedAt) + 500).toISOString(),
      });
    const ids = async () => (await listBaseBackups(s3, config.s3, config.encryption, cluster.name)).map((b) => b.record.backupId);
    try {
      const all = await ids();
      const dry = await prune(true);
      expect(dry.deletedBackups).toEqual([made.full.backupId, made.incremental.backupId]);
      expect(dry.kept.map((k) => k.backupId)).toEqual([made.fallback.backupId, made.incremental2.backupId]);
      expect(dry.kept[0].reasons).toContain(`parent of ${made.incremental2.backupId}`);
      expect(dry.deletedWalObjects).toBe(1);
      expect(await ids()).toEqual(all);

      const real = await prune(false);
      expect(real.deletedBackups).toEqual(dry.deletedBackups);
      expect(await ids()).toEqual([made.fallback.backupId, made.incremental2.backupId]);
      const left = await listKeys(s3, config.s3.bucket, `${root}/`);
      expect(left.filter((k) => k.includes(made.full.backupId) || k.includes(made.incremental.backupId))).toEqual([]);
      expect(left).toEqual(expect.arrayContaining([after, history]));
      expect(left).not.toContain(before);
    } finally {
      s3.destroy();
    }
  });

  test('an auto run whose newest full base backup is older than fullEvery takes a full one and says why', async () => {
    const result = await run({ mode: 'auto', fullEvery: '1 second' });
    expect(result.record.kind).toBe('full');
    expect(result.fullBecause).toBe(`the newest full base backup, ${made.fallback.backupId}, is older than 1 second (fullEvery)`);
  });

  describe('bad input and bad state: one line naming the fix, nothing in the bucket deleted', () => {
    let keysBefore: string[];
    const keysNow = async () => {
      const s3 = createS3Client(config.s3);
      try {
        return (await listKeys(s3, config.s3.bucket, `${prefix}/`)).sort();
      } finally {
        s3.destroy();
      }
    };
    beforeAll(async () => {
      keysBefore = await keysNow();
    });
    afterEach(async () => {
      expect(await keysNow()).toEqual(keysBefore);
      expect(await readdir(config.stagingDir)).toEqual([]);
    });

    test('fullEvery that is not a duration', async () => {
      expect(await failure({ fullEvery: 'daily' })).toBe('input.fullEvery must be a duration such as "24 hours", got "daily"');
    });

    test('unknown cluster', async () => {
      expect(await failure({ cluster: 'nosuchcluster' })).toMatch(
        new RegExp(`^base backup base-nosuchcluster-\\S+ of cluster nosuchcluster failed at starting: unknown cluster "nosuchcluster" \\(configured in PGOPS_CLUSTERS: ${cluster.name}\\)$`),
      );
    });

    test('a bucket that refuses writes', async () => {
      const proxy = await startReadOnlyS3(config.s3.endpoint!);
      try {
        const message = await failure({ mode: 'full' }, { ...config, s3: { ...config.s3, endpoint: proxy.endpoint } });
        expect(message).toMatch(
          new RegExp(
            `failed at upload: S3 at ${proxy.endpoint} refused to write ${prefix}/physical/${cluster.name}/\\d+/base/base-\\S+/base.tar.zst in bucket "${config.s3.bucket}" \\(AccessDenied\\): ` +
              `give the worker's key \\(PGOPS_S3_ACCESS_KEY_ID\\) s3:PutObject on ${prefix}/\\* or lift the bucket policy that denies it$`,
          ),
        );
        expect(proxy.refusedWrites()).toBeGreaterThan(0);
      } finally {
        await proxy.close();
      }
    });

    test('a server without wal_level=replica', async () => {
      await cluster.asServerUser('pg_ctl', ['-D', cluster.dataDir.pg2, '-m', 'fast', '-w', 'stop']);
      await cluster.sql('pg1', 'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots');
      for (const setting of ["wal_level = 'minimal'", 'max_wal_senders = 0', 'summarize_wal = off']) await cluster.sql('pg1', `ALTER SYSTEM SET ${setting}`);
      await cluster.asServerUser('pg_ctl', ['-D', cluster.dataDir.pg1, '-l', `${cluster.dataDir.pg1}.log`, '-o', `-p ${cluster.ports.pg1}`, '-m', 'fast', '-w', 'restart']);
      expect(await failure({ mode: 'full' })).toMatch(
        /failed at backup: pg1 \(127\.0\.0\.1:26220\) runs with wal_level=minimal: base backups need wal_level=replica \(or logical\) and max_wal_senders > 0; set both in postgresql\.conf and restart the server$/,
      );
    });
  });
});

