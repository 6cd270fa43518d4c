// The first step of a restore: find the backup in the S3 catalog and bring it to this worker,
// each file checked against the manifest's size and SHA-256. A mismatch stops the restore before
// any database is touched. Any later step that runs on another worker fetches it again.
import { createWriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { BackupManifest } from '../../backup/manifest';
import type { FetchedBackup } from '../contract';
import { heartbeatWhile, type Heartbeats } from '../../shared/heartbeat';
import { assertDumpFilesIntact, ensureStagingDir, mkdirPrivate, PRIVATE_FILE_MODE } from '../../backup/stagedBackup';
import { MANIFEST_FILE } from '../../backup/manifest';
import { writeManifest } from '../../backup/manifest/store';
import { backupKeys } from '../../backup/manifest';
import { listCatalog } from '../../backup/manifest/store';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';

export interface FetchBackupInput {
  /** A backup id, or `latest`. */
  backup: string;
  /** Whose backups `latest` means. */
  from: string;
  restoreId: string;
}

export const RESTORE_WORKSPACE_PREFIX = 'restore-';

/** Where a restore keeps what it fetched: <stagingDir>/restore-<restoreId>/. */
export function restoreWorkspace(config: WorkerConfig, restoreId: string): string {
  if (!/^[a-z0-9-]+$/.test(restoreId)) throw ApplicationFailure.nonRetryable(`restore id "${restoreId}" is malformed`, 'BadInput');
  return path.join(config.stagingDir, `${RESTORE_WORKSPACE_PREFIX}${restoreId}`);
}

export function fetchActivities(config: WorkerConfig) {
  async function fetchBackup(input: FetchBackupInput): Promise<FetchedBackup> {
    const started = Date.now();
    const s3 = createS3Client(config.s3);
    try {
      const manifest = await findInCatalog(s3, input);
      await ensureFetched(config, input.restoreId, manifest, s3);
      return { manifest, location: `s3://${config.s3.bucket}/${backupKeys(config.s3, manifest).dumpKey}`, fetchMs: Date.now() - started };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }

  async function findInCatalog(s3: S3Client, input: FetchBackupInput): Promise<BackupManifest> {
    const where = `s3://${config.s3.bucket}/${config.s3.prefix}/`;
    const latest = input.backup === 'latest';
    const catalog = await listCatalog(s3, config.s3, latest ? input.from : undefined);
    const entry = latest ? catalog.find((e) => e.verified) : catalog.find((e) => e.backupId === input.backup);
    if (!entry) {
      throw ApplicationFailure.nonRetryable(
        latest
          ? `no verified backup of target ${input.from} in ${where}${input.from}/`
          : `backup ${input.backup} is not in the catalog at ${where} (see pgops backups list)`,
        'BackupNotFound',
      );
    }
    const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: entry.manifestKey }));
    return JSON.parse(await object.Body!.transformToString()) as BackupManifest;
  }

  /** Removes what a restore fetched; safe to run when nothing was. */
  async function discardFetchedBackup(input: { restoreId: string }): Promise<void> {
    await rm(restoreWorkspace(config, input.restoreId), { recursive: true, force: true });
  }

  return { fetchBackup, discardFetchedBackup };
}

/**
 * Makes sure this worker holds an intact copy of the backup in the restore's workspace and
 * returns the path pg_restore reads. An intact copy is reused; anything else is fetched again.
 */
export async function ensureFetched(config: WorkerConfig, restoreId: string, manifest: BackupManifest, s3?: S3Client): Promise<string> {
  const dir = restoreWorkspace(config, restoreId);
  assertFileNamesInside(manifest);
  await ensureStagingDir(config.stagingDir);
  const local = await readFile(path.join(dir, MANIFEST_FILE), 'utf8').catch(() => undefined);
  if (local && (JSON.parse(local) as BackupManifest).backupId === manifest.backupId) {
    const intact = await assertDumpFilesIntact(dir, manifest).then(
      (file) => file,
      () => undefined,
    );
    if (intact) return intact;
  }
  await rm(dir, { recursive: true, force: true });
  const client = s3 ?? createS3Client(config.s3);
  let fetched = 0;
  const heartbeats = heartbeatWhile(() => ({ stage: 'fetch', fetchedBytes: fetched }));
  try {
    const keys = backupKeys(config.s3, manifest);
    for (const [i, file] of manifest.dataFiles.entries()) {
      const before = fetched;
      await download(client, config.s3.bucket, keys.dataKeys[i], path.join(dir, file.name), heartbeats, (bytes) => (fetched = before + bytes));
    }
    await download(client, config.s3.bucket, keys.globalsKey, path.join(dir, manifest.globalsFile), heartbeats, () => undefined);
    // The same check a backup passes before upload: size and SHA-256 of every file.
    const dumpPath = await assertDumpFilesIntact(dir, manifest).catch(async (err: Error) => {
      await rm(dir, { recursive: true, force: true });
      throw ApplicationFailure.nonRetryable(
        `backup ${manifest.backupId} in s3://${config.s3.bucket} does not match its manifest; refusing to restore it (${err.message})`,
        'BackupCorrupt',
      );
    });
    await writeManifest(dir, manifest); // last: its presence means the fetch completed
    return dumpPath;
  } finally {
    heartbeats.stop();
    if (!s3) client.destroy();
  }
}

/** A manifest comes from the bucket: a file name in it must not reach outside the restore's workspace. */
function assertFileNamesInside(manifest: BackupManifest): void {
  for (const name of [...manifest.dataFiles.map((f) => f.name), manifest.dumpFile, manifest.globalsFile]) {
    if (typeof name !== 'string' || path.isAbsolute(name) || path.normalize(name) !== name || name.split('/').includes('..')) {
      throw ApplicationFailure.nonRetryable(`backup ${manifest.backupId}'s manifest names a file outside its folder: ${JSON.stringify(name)}`, 'BackupCorrupt');
    }
  }
}

async function download(s3: S3Client, Bucket: string, Key: string, file: string, heartbeats: Heartbeats, onBytes: (bytes: number) => void) {
  await mkdirPrivate(path.dirname(file));
  // A cancelled restore stops downloading rather than writing files its cleanup is deleting.
  const abortSignal = Context.current().cancellationSignal;
  const object = await s3.send(new GetObjectCommand({ Bucket, Key }), { abortSignal });
  let bytes = 0;
  const counting = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      onBytes(bytes);
      heartbeats.progressed();
      done(null, chunk);
    },
  });
  await pipeline(object.Body as Readable, counting, createWriteStream(file, { mode: PRIVATE_FILE_MODE }), { signal: abortSignal });
}

