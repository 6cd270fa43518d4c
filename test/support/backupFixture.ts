// A backup test's own world on the real stack: a seeded database as target "demo", a private S3
// prefix, a private staging dir. Nothing it does touches csarena or another test's backups.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectsCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { backupPrefix, objectContext, storedFiles, type BackupManifest } from '../../src/backup/manifest';
import { decryptStream } from '../../src/shared/crypto/objectStream';
import { connectTarget } from '../../src/shared/postgres/connection';
import { runPgTool } from '../../src/shared/postgres/pgTools';
import { createS3Client } from '../../src/shared/storage/s3Client';
import { loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../../src/shared/config';
import { migrate } from '../../src/db/migrate';
import { seed } from '../../src/db/seed';
import { stackEnv } from './stack';

export interface BackupFixture {
  /** Environment overrides that make a worker (in-process or child) see this fixture. */
  env: Record<string, string>;
  config: WorkerConfig;
  target: TargetConfig;
  prefix: string;
  stagingDir: string;
  cleanup(): Promise<void>;
}

/**
 * A fresh key ring for a fixture's workers, as a worker's environment carries one (and any keys
 * file of the stack's environment set aside): backups made in tests are encrypted and signed.
 */
export function encryptionEnv(keys: Record<string, string>, current: string): Record<string, string> {
  return {
    PGOPS_ENCRYPTION_KEYS: Object.entries(keys).map(([id, key]) => `${id}:${key}`).join(','),
    PGOPS_ENCRYPTION_KEY_ID: current,
    PGOPS_ENCRYPTION_KEYS_FILE: '',
  };
}

export const newMasterKey = () => randomBytes(32).toString('base64');

export async function createBackupFixture(scale: number, options: { encrypted?: boolean } = {}): Promise<BackupFixture> {
  const id = randomUUID().replace(/-/g, '').slice(0, 10);
  const database = `pgops_backup_test_${id}`;
  const base = loadWorkerConfig(stackEnv());
  const primary = base.targets.primary;
  const admin = await connectTarget(primary);
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const target: TargetConfig = { ...primary, name: 'demo', database, source: 'PGOPS_TARGET_DEMO_URL' };
  const db = await connectTarget(target);
  await migrate(db);
  await seed(db, { scale });
  await db.end();

  const stagingDir = mkdtempSync(path.join(tmpdir(), 'pgops-staging-'));
  const prefix = `test-${id}/backups`;
  const env = {
    PGOPS_TARGETS: 'primary,standby,verify,demo',
    PGOPS_TARGET_DEMO_URL: targetUrl({ ...primary, database }),
    PGOPS_S3_PREFIX: prefix,
    PGOPS_STAGING_DIR: stagingDir,
    ...(options.encrypted === false ? { PGOPS_ENCRYPTION_KEYS: '', PGOPS_ENCRYPTION_KEYS_FILE: '', PGOPS_ENCRYPTION_KEY_ID: '' } : encryptionEnv({ [`test-${id}`]: newMasterKey() }, `test-${id}`)),
  };
  const config = loadWorkerConfig({ ...stackEnv(), ...env });
  return {
    env,
    config,
    target: config.targets.demo,
    prefix,
    stagingDir,
    async cleanup() {
      await deletePrefix(config, `test-${id}/`);
      rmSync(stagingDir, { recursive: true, force: true });
      const c = await connectTarget(primary);
      await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** The PGOPS_TARGET_<NAME>_URL value that describes `target`, for a worker's environment. */
export function targetUrl(target: TargetConfig): string {
  return `postgres://${encodeURIComponent(target.user)}:${encodeURIComponent(target.password ?? '')}@${target.host}:${target.port}/${encodeURIComponent(target.database)}`;
}

export async function listKeys(config: WorkerConfig, prefix: string): Promise<string[]> {
  const s3 = createS3Client(config.s3);
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: prefix, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  } finally {
    s3.destroy();
  }
}

export async function incompleteUploads(config: WorkerConfig, prefix: string): Promise<number> {
  const s3 = createS3Client(config.s3);
  try {
    const { Uploads = [] } = await s3.send(new ListMultipartUploadsCommand({ Bucket: config.s3.bucket, Prefix: prefix }));
    return Uploads.length;
  } finally {
    s3.destroy();
  }
}

export async function deletePrefix(config: WorkerConfig, prefix: string): Promise<void> {
  const keys = await listKeys(config, prefix);
  if (keys.length === 0) return;
  const s3 = createS3Client(config.s3);
  try {
    for (let i = 0; i < keys.length; i += 1000) {
      await s3.send(
        new DeleteObjectsCommand({ Bucket: config.s3.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } }),
      );
    }
  } finally {
    s3.destroy();
  }
}

export async function downloadObject(config: WorkerConfig, key: string, file: string): Promise<void> {
  const s3 = createS3Client(config.s3);
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }));
    await pipeline(object.Body as Readable, createWriteStream(file));
  } finally {
    s3.destroy();
  }
}

/**
 * A backup's file as the restore sees it: downloaded, and decrypted with the config's keys when
 * its manifest records it as encrypted; checked against the manifest's plaintext SHA-256.
 */
export async function downloadPlaintext(config: WorkerConfig, manifest: BackupManifest, name: string, file: string): Promise<void> {
  const record = storedFiles(manifest).find((f) => f.name === name);
  if (!record) throw new Error(`${name} is not a file of backup ${manifest.backupId}`);
  const s3 = createS3Client(config.s3);
  try {
    const key = backupPrefix(config.s3, manifest.target, manifest.backupId) + name;
    const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }));
    const hash = createHash('sha256');
    const stages: Transform[] = record.stored ? [decryptStream(config.encryption!, { context: objectContext(manifest, name) })] : [];
    stages.push(new Transform({ transform: (c: Buffer, _e, done) => (hash.update(c), done(null, c)) }));
    await pipeline([object.Body as Readable, ...stages, createWriteStream(file)]);
    const sha256 = hash.digest('hex');
    if (sha256 !== record.sha256) throw new Error(`${name} decrypts to sha256 ${sha256}, the manifest records ${record.sha256}`);
  } finally {
    s3.destroy();
  }
}

/** pg_dump --schema-only without the lines that differ between any two dumps (PG 18's \restrict keys, comments). */
export async function schemaOnly(config: WorkerConfig, target: TargetConfig): Promise<string> {
  const { stdout } = await runPgTool(config, 'pg_dump', ['--schema-only', '--no-owner'], target);
  return stdout
    .split('\n')
    .filter((line) => !/^\\(un)?restrict /.test(line) && !line.startsWith('--'))
    .join('\n');
}
