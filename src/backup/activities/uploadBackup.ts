// The upload step: multipart upload of a staged backup, with the manifest's SHA-256 as metadata
// and S3 checksums where the store supports them. The data goes up while the test restore runs;
// the manifest object goes last, once verification passed, so a backup is in the catalog only
// once all of it is stored and verified. Confirmed by HeadObject.
//
// With a key ring, every object is encrypted on the way (src/shared/crypto): the staged files stay
// plaintext on the worker's private disk, what leaves it is ciphertext. Ciphertext differs on every
// encryption, so what each stored object turned out to be (size, SHA-256, ETag) is recorded beside
// the staged backup (stored.json) for the manifest, and for a retry to recognise what already landed.
import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { readFile } from 'node:fs/promises';
import type { WorkerConfig } from '../../shared/config';
import type { UploadResult, VerificationResult } from '../contract';
import type { BackupManifest, DataFile } from '../manifest';
import { heartbeatWhile } from '../../shared/heartbeat';
import { stagedDir } from '../stagedBackup';
import { authenticateManifest, requireStagedManifest } from '../manifest/store';
import { backupKeys, objectContext, withVerification } from '../manifest';
import { encryptBuffer, encryptedSize, encryptStream } from '../../shared/crypto/objectStream';
import type { KeyRing } from '../../shared/crypto/keyRing';
import { readStoredRecords, writeStoredRecord, type StoredRecord } from '../../shared/storage/storedRecords';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { abortStaleUploads, objectOptions, uploadFile } from '../../shared/storage/multipartUpload';

export interface UploadInput {
  backupId: string;
  verification: VerificationResult;
}

async function headObject(s3: S3Client, bucket: string, key: string) {
  try {
    return await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound') return undefined;
    throw err;
  }
}

/**
 * True when the object is there as this backup put it: plaintext of the data file's size and
 * SHA-256, or the very ciphertext stored.json recorded (same size and ETag) of that plaintext.
 */
async function storedIntact(s3: S3Client, bucket: string, key: string, file: DataFile, record: StoredRecord | undefined, encrypted: boolean): Promise<boolean> {
  const head = await headObject(s3, bucket, key);
  if (!head || head.Metadata?.sha256 !== file.sha256) return false;
  if (!encrypted) return head.ContentLength === file.sizeBytes && head.Metadata?.encryption === undefined;
  return record !== undefined && head.ContentLength === record.sizeBytes && head.ETag === record.etag;
}

/** The manifest with what each object turned out to be in S3 (encrypted objects only). */
function withStoredObjects(manifest: BackupManifest, records: Record<string, StoredRecord>): BackupManifest {
  if (!manifest.encryption) return manifest;
  const stored = (file: DataFile): DataFile => {
    const record = records[file.name];
    if (!record) {
      throw ApplicationFailure.nonRetryable(`backup ${manifest.backupId}: no record of how ${file.name} was stored (stored.json); the upload step must run first`, 'BackupNotStaged');
    }
    return { ...file, stored: { sizeBytes: record.sizeBytes, sha256: record.sha256, keyId: record.keyId } };
  };
  return { ...manifest, dataFiles: manifest.dataFiles.map(stored), ...(manifest.globals ? { globals: stored(manifest.globals) } : {}) };
}

export function uploadActivities(config: WorkerConfig) {
  const Bucket = config.s3.bucket;

  /** Data files and globals, then the manifest: the whole backup in one step (safety snapshots). */
  async function uploadBackup(input: UploadInput): Promise<UploadResult> {
    const data = await uploadBackupData({ backupId: input.backupId });
    const manifestKey = await publishManifest(input);
    return { ...data, manifestKey, reused: data.reused };
  }

  /**
   * The data files and globals of a staged backup, without its manifest: nothing in the catalog
   * yet. Runs while the test restore does; the manifest follows only once that passed.
   */
  async function uploadBackupData(input: { backupId: string }): Promise<Omit<UploadResult, 'manifestKey'>> {
    // No SHA-256 pass of its own: the test restore that runs beside it rechecks every file, and a
    // failed check deletes what went up; S3's per-part checksums guard the transfer itself.
    const manifest = await requireStagedManifest(config.stagingDir, input.backupId);
    const keys = backupKeys(config.s3, manifest);
    const dir = stagedDir(config.stagingDir, manifest.backupId);
    const s3 = createS3Client(config.s3);
    let uploadedBytes = 0;
    // Parts can take longer than the heartbeat timeout on a slow link; liveness must not depend on them.
    const heartbeats = heartbeatWhile(() => ({ stage: 'upload', uploadedBytes }));
    const ring = manifest.encryption ? requireRing(manifest) : undefined;
    try {
      let reused = true;
      const stored = await readStoredRecords(dir);
      for (const [i, file] of manifest.dataFiles.entries()) {
        const Key = keys.dataKeys[i];
        const before = uploadedBytes;
        // A retry after some data landed (worker killed before the manifest went up) does not send it again.
        if (!(await storedIntact(s3, Bucket, Key, file, stored[file.name], ring !== undefined))) {
          reused = false;
          const record = await uploadDataFile(s3, Key, path.join(dir, file.name), file, manifest, ring, (loaded) => {
            uploadedBytes = before + loaded;
            heartbeats.progressed();
          });
          if (!(await storedIntact(s3, Bucket, Key, file, record, ring !== undefined))) {
            throw ApplicationFailure.retryable(`uploaded ${Key} does not match the manifest's size and SHA-256`, 'UploadMismatch');
          }
          if (record) await writeStoredRecord(dir, file.name, record);
        }
        uploadedBytes = before + file.sizeBytes;
      }
      await uploadGlobals(s3, keys.globalsKey, dir, manifest, ring);
      return { bucket: Bucket, dumpKey: keys.dumpKey, globalsKey: keys.globalsKey, bytes: manifest.sizeBytes, reused };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      heartbeats.stop();
      s3.destroy();
    }
  }

  /** The key ring a backup's staged manifest says it is encrypted with, or a failure naming the key. */
  function requireRing(manifest: BackupManifest): KeyRing {
    const keyId = manifest.encryption!.keyId;
    if (!config.encryption?.has(keyId)) {
      throw ApplicationFailure.nonRetryable(
        `backup ${manifest.backupId} was dumped to be encrypted with key id "${keyId}", which this worker's key ring does not hold (PGOPS_ENCRYPTION_KEYS)`,
        'KeyMissing',
      );
    }
    return config.encryption;
  }

  /** Globals are small: encrypted in memory and sent whole, every attempt. */
  async function uploadGlobals(s3: S3Client, Key: string, dir: string, manifest: BackupManifest, ring: KeyRing | undefined): Promise<void> {
    const plain = await readFile(path.join(dir, manifest.globalsFile));
    const body = ring ? await encryptBuffer(ring, plain, { context: objectContext(manifest, manifest.globalsFile), keyId: manifest.encryption!.keyId }) : plain;
    const put = await s3.send(
      new PutObjectCommand({ Bucket, Key, Body: body, Metadata: objectMetadata(manifest, manifest.globals?.sha256), ...objectOptions(config.s3) }),
    );
    if (ring) {
      const sha256 = createHash('sha256').update(body).digest('hex');
      await writeStoredRecord(dir, manifest.globalsFile, { sizeBytes: body.length, sha256, keyId: manifest.encryption!.keyId, etag: put.ETag! });
    }
  }

  /** What every object carries: which backup, the plaintext's SHA-256, and how it is encrypted (no secret). */
  function objectMetadata(manifest: BackupManifest, sha256: string | undefined): Record<string, string> {
    return {
      ...(sha256 ? { sha256 } : {}),
      'backup-id': manifest.backupId,
      target: manifest.target,
      ...(manifest.encryption ? { encryption: manifest.encryption.scheme, 'key-id': manifest.encryption.keyId } : {}),
    };
  }

  /** The manifest, with its verification, last: from now on the backup is in the catalog. */
  async function publishManifest(input: UploadInput): Promise<string> {
    const staged = await requireStagedManifest(config.stagingDir, input.backupId);
    const manifest = authenticateManifest(config.encryption, withStoredObjects(withVerification(staged, input.verification), await readStoredRecords(stagedDir(config.stagingDir, staged.backupId))));
    const keys = backupKeys(config.s3, manifest);
    const s3 = createS3Client(config.s3);
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket,
          Key: keys.manifestKey,
          Body: JSON.stringify(manifest, null, 2),
          ContentType: 'application/json',
          Metadata: { sha256: manifest.sha256 },
          ...objectOptions(config.s3),
        }),
      );
      return keys.manifestKey;
    } catch (err) {
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }

  /** A backup that failed verification: its data objects go, so nothing unverified stays in the bucket. */
  async function discardUploadedData(input: { backupId: string }): Promise<number> {
    const manifest = await requireStagedManifest(config.stagingDir, input.backupId);
    const keys = backupKeys(config.s3, manifest);
    const s3 = createS3Client(config.s3);
    try {
      for (const Key of [...keys.dataKeys, keys.globalsKey]) {
        await abortStaleUploads(s3, Bucket, Key);
        await s3.send(new DeleteObjectCommand({ Bucket, Key }));
      }
      return keys.dataKeys.length + 1;
    } catch (err) {
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }

  /** Sends one data file, encrypted on the way when `ring` is given; returns what was stored then. */
  async function uploadDataFile(
    s3: S3Client,
    Key: string,
    source: string,
    file: DataFile,
    manifest: BackupManifest,
    ring: KeyRing | undefined,
    onProgress: (loaded: number) => void,
  ): Promise<StoredRecord | undefined> {
    const keyId = manifest.encryption?.keyId;
    const seal = ring
      ? { stream: encryptStream(ring, { context: objectContext(manifest, file.name), keyId }), sizeBytes: encryptedSize(file.sizeBytes, keyId!, manifest.encryption!.chunkBytes) }
      : undefined;
    // uploadFile adds the plaintext's sha256 to the metadata.
    const sent = await uploadFile(s3, config.s3, { Key, source, file, metadata: objectMetadata(manifest, undefined), onProgress, seal });
    return sent.stored ? { ...sent.stored, keyId: keyId!, etag: sent.etag } : undefined;
  }

  return { uploadBackup, uploadBackupData, publishManifest, discardUploadedData };
}
