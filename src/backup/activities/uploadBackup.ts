// The upload step: multipart upload of a staged backup, with the manifest's SHA-256 as metadata
// and S3 checksums where the store supports them. The data goes up while the test restore runs;
// the manifest object goes last, once verification passed, so a backup is in the catalog only
// once all of it is stored and verified. Confirmed by HeadObject.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ApplicationFailure } from '@temporalio/common';
import { readFile } from 'node:fs/promises';
import type { S3Config, WorkerConfig } from '../../shared/config';
import type { UploadResult, VerificationResult } from '../contract';
import type { BackupManifest, DataFile } from '../manifest';
import { heartbeatWhile } from '../../shared/heartbeat';
import { stagedDir } from '../stagedBackup';
import { requireStagedManifest } from '../manifest/store';
import { backupKeys, withVerification } from '../manifest';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';

/**
 * Parts are buffered in memory (two in flight): 8 MiB keeps the worker small while the test
 * restore runs beside the upload; a file too big for S3's 10,000 parts at that size gets larger
 * parts.
 */
const MIN_PART_SIZE = 8 * 1024 * 1024;
const MAX_PARTS = 9_000;
export function partSizeFor(bytes: number): number {
  return Math.max(MIN_PART_SIZE, Math.ceil(bytes / MAX_PARTS));
}

export interface UploadInput {
  backupId: string;
  verification: VerificationResult;
}

/** Storage class, encryption, object lock and tags an operator configured, for every object. */
export function objectOptions(s3: S3Config): Partial<PutObjectCommandInput> {
  return {
    StorageClass: s3.storageClass as PutObjectCommandInput['StorageClass'],
    ServerSideEncryption: s3.serverSideEncryption,
    SSEKMSKeyId: s3.sseKmsKeyId,
    Tagging: s3.tags,
    ...(s3.objectLock
      ? {
          ObjectLockMode: s3.objectLock.mode,
          ObjectLockRetainUntilDate: new Date(Date.now() + s3.objectLock.days * 86_400_000),
        }
      : {}),
  };
}

/** Multipart uploads left by a killed attempt would hold storage forever: abort them. */
async function abortStaleUploads(s3: S3Client, bucket: string, key: string): Promise<number> {
  const { Uploads = [] } = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
  const stale = Uploads.filter((u) => u.Key === key);
  for (const u of stale) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }));
  return stale.length;
}

/** True when the object is there with the data file's size and SHA-256. */
async function storedIntact(s3: S3Client, bucket: string, key: string, file: DataFile): Promise<boolean> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return head.ContentLength === file.sizeBytes && head.Metadata?.sha256 === file.sha256;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound') return false;
    throw err;
  }
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
    try {
      let reused = true;
      for (const [i, file] of manifest.dataFiles.entries()) {
        const Key = keys.dataKeys[i];
        const before = uploadedBytes;
        // A retry after some data landed (worker killed before the manifest went up) does not send it again.
        if (!(await storedIntact(s3, Bucket, Key, file))) {
          reused = false;
          await uploadDataFile(s3, Key, path.join(dir, file.name), file, manifest, (loaded) => {
            uploadedBytes = before + loaded;
            heartbeats.progressed();
          });
          if (!(await storedIntact(s3, Bucket, Key, file))) {
            throw ApplicationFailure.retryable(`uploaded ${Key} does not match the manifest's size and SHA-256`, 'UploadMismatch');
          }
        }
        uploadedBytes = before + file.sizeBytes;
      }
      await s3.send(
        new PutObjectCommand({ Bucket, Key: keys.globalsKey, Body: await readFile(path.join(dir, manifest.globalsFile)), ...objectOptions(config.s3) }),
      );
      return { bucket: Bucket, dumpKey: keys.dumpKey, globalsKey: keys.globalsKey, bytes: manifest.sizeBytes, reused };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      heartbeats.stop();
      s3.destroy();
    }
  }

  /** The manifest, with its verification, last: from now on the backup is in the catalog. */
  async function publishManifest(input: UploadInput): Promise<string> {
    const staged = await requireStagedManifest(config.stagingDir, input.backupId);
    const manifest = withVerification(staged, input.verification);
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

  async function uploadDataFile(
    s3: S3Client,
    Key: string,
    source: string,
    file: DataFile,
    manifest: BackupManifest,
    onProgress: (loaded: number) => void,
  ): Promise<void> {
    await abortStaleUploads(s3, Bucket, Key);
    const upload = new Upload({
      client: s3,
      partSize: partSizeFor(file.sizeBytes),
      queueSize: 2,
      leavePartsOnError: false,
      params: {
        Bucket,
        Key,
        Body: createReadStream(source, { highWaterMark: 1 << 20 }),
        ContentType: 'application/octet-stream',
        Metadata: { sha256: file.sha256, 'backup-id': manifest.backupId, target: manifest.target },
        ...(config.s3.checksumMode === 'when_supported' ? { ChecksumAlgorithm: 'SHA256' as const } : {}),
        ...objectOptions(config.s3),
      },
    });
    upload.on('httpUploadProgress', (p) => onProgress(p.loaded ?? 0));
    await upload.done();
  }

  return { uploadBackup, uploadBackupData, publishManifest, discardUploadedData };
}
