// The first step of a restore: find the backup in the S3 catalog and bring it to this worker,
// each file checked against the manifest's size and SHA-256. A mismatch stops the restore before
// any database is touched. Any later step that runs on another worker fetches it again.
//
// Only a manifest that verifies (src/shared/crypto/manifestAuth.ts) is acted on, and only once
// this worker holds every key it needs. Encrypted objects are checked as stored (ciphertext
// SHA-256), decrypted chunk by chunk (each authenticated before it is written) and checked as
// plaintext; the restore reads the files only after the whole fetch passed.
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
import type { BackupManifest, DataFile } from '../../backup/manifest';
import type { FetchedBackup } from '../contract';
import { heartbeatWhile, type Heartbeats } from '../../shared/heartbeat';
import { assertDumpFilesIntact, ensureStagingDir, mkdirPrivate, PRIVATE_FILE_MODE } from '../../backup/stagedBackup';
import { MANIFEST_FILE, objectContext } from '../../backup/manifest';
import { readManifestObject, requireTrustedManifest, writeManifest } from '../../backup/manifest/store';
import { backupKeys } from '../../backup/manifest';
import { listCatalog } from '../../backup/manifest/store';
import { decryptStream, ObjectNotAuthentic } from '../../shared/crypto/objectStream';
import { KeyMissing, type KeyRing } from '../../shared/crypto/keyRing';
import { describeStatus } from '../../shared/crypto/manifestAuth';
import { hashingTap } from '../../shared/storage/hashingTap';
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
    const catalog = await listCatalog(s3, config.s3, latest ? input.from : undefined, config.encryption);
    // `latest` is the newest backup that is restore-verified by an authentic manifest: a planted one is never it.
    const entry = latest ? catalog.find((e) => e.verified) : catalog.find((e) => e.backupId === input.backup && e.trusted) ?? catalog.find((e) => e.backupId === input.backup);
    if (!entry) {
      throw ApplicationFailure.nonRetryable(
        latest
          ? `no verified backup of target ${input.from} in ${where}${input.from}/` +
              (catalog.some((e) => !e.trusted) ? ` (${catalog.filter((e) => !e.trusted).length} whose manifest does not verify were ignored)` : '')
          : `backup ${input.backup} is not in the catalog at ${where} (see pgops backups list)`,
        'BackupNotFound',
      );
    }
    if (!entry.trusted) {
      throw ApplicationFailure.nonRetryable(
        `backup ${entry.backupId}'s manifest s3://${config.s3.bucket}/${entry.manifestKey} is ${describeStatus(entry.authentication, entry.authenticationKeyId)}: ` +
          `pgops fetches, plans and restores nothing from it (see pgops backups list)`,
        'BackupUnauthenticated',
      );
    }
    // Read again and checked again: what is fetched is what verified, not what the bucket holds a moment later.
    const manifest = await readManifestObject(s3, config.s3.bucket, entry.manifestKey);
    requireTrustedManifest(config.encryption, config.s3, entry.manifestKey, manifest);
    return manifest;
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
    const objects: [string, DataFile | string][] = [
      ...manifest.dataFiles.map((file, i) => [keys.dataKeys[i], file] as [string, DataFile]),
      [keys.globalsKey, manifest.globals ?? manifest.globalsFile],
    ];
    for (const [key, file] of objects) {
      const before = fetched;
      await download(config, client, key, dir, manifest, file, heartbeats, (bytes) => (fetched = before + bytes)).catch(async (err: Error) => {
        await rm(dir, { recursive: true, force: true });
        if (err instanceof ApplicationFailure || !(err instanceof ObjectNotAuthentic || err instanceof KeyMissing || err instanceof ObjectMismatch)) throw err;
        throw ApplicationFailure.nonRetryable(
          `backup ${manifest.backupId}: object s3://${config.s3.bucket}/${key} ${err instanceof ObjectNotAuthentic ? `fails authentication: ${err.message}` : err.message}; ` +
            'refusing to restore it, nothing was restored',
          err instanceof KeyMissing ? 'KeyMissing' : 'BackupCorrupt',
        );
      });
    }
    await writeManifest(dir, manifest); // last: its presence means the fetch completed
    return path.join(dir, manifest.dumpFile);
  } finally {
    heartbeats.stop();
    if (!s3) client.destroy();
  }
}

class ObjectMismatch extends Error {}

/** A manifest comes from the bucket: a file name in it must not reach outside the restore's workspace. */
function assertFileNamesInside(manifest: BackupManifest): void {
  for (const name of [...manifest.dataFiles.map((f) => f.name), manifest.dumpFile, manifest.globalsFile]) {
    if (typeof name !== 'string' || path.isAbsolute(name) || path.normalize(name) !== name || name.split('/').includes('..')) {
      throw ApplicationFailure.nonRetryable(`backup ${manifest.backupId}'s manifest names a file outside its folder: ${JSON.stringify(name)}`, 'BackupCorrupt');
    }
  }
}

/**
 * One object into the workspace: checked as stored, decrypted when the manifest says it is
 * encrypted, and checked as plaintext. `file` is the manifest's record of it (a bare name for
 * the globals of backups older than their checksum).
 */
async function download(
  config: WorkerConfig,
  s3: S3Client,
  Key: string,
  dir: string,
  manifest: BackupManifest,
  file: DataFile | string,
  heartbeats: Heartbeats,
  onBytes: (bytes: number) => void,
) {
  const name = typeof file === 'string' ? file : file.name;
  const expected = typeof file === 'string' ? undefined : file;
  const target = path.join(dir, name);
  await mkdirPrivate(path.dirname(target));
  // A cancelled restore stops downloading rather than writing files its cleanup is deleting.
  const abortSignal = Context.current().cancellationSignal;
  const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key }), { abortSignal });
  let bytes = 0;
  const counting = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      onBytes(bytes);
      heartbeats.progressed();
      done(null, chunk);
    },
  });
  const stored = hashingTap();
  const plain = hashingTap();
  const encrypted = expected?.stored;
  const stages: Transform[] = encrypted
    ? [stored.stream, decryptStream(requireRing(config.encryption, encrypted.keyId, manifest), { context: objectContext(manifest, name), expectKeyId: encrypted.keyId }), plain.stream]
    : [plain.stream];
  await pipeline([object.Body as Readable, counting, ...stages, createWriteStream(target, { mode: PRIVATE_FILE_MODE })], { signal: abortSignal });
  if (encrypted) {
    const got = stored.result();
    if (got.sha256 !== encrypted.sha256 || got.sizeBytes !== encrypted.sizeBytes) {
      throw new ObjectMismatch(`as stored has sha256 ${got.sha256} (${got.sizeBytes} bytes), its manifest records ${encrypted.sha256} (${encrypted.sizeBytes} bytes)`);
    }
  }
  if (expected) {
    const got = plain.result();
    if (got.sha256 !== expected.sha256 || got.sizeBytes !== expected.sizeBytes) {
      throw new ObjectMismatch(`does not match its manifest: sha256 ${got.sha256} (${got.sizeBytes} bytes), expected ${expected.sha256} (${expected.sizeBytes} bytes)`);
    }
  }
}

function requireRing(ring: KeyRing | undefined, keyId: string, manifest: BackupManifest): KeyRing {
  if (!ring?.has(keyId)) throw new KeyMissing(keyId, `backup ${manifest.backupId}`);
  return ring;
}
