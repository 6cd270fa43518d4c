// The upload step: multipart upload of a staged backup, with the manifest's SHA-256 as metadata
// and S3 checksums where the store supports them. The data goes up while the test restore runs;
// the manifest object goes last, once verification passed, so a backup is in the catalog only
// once all of it is stored and verified. Confirmed by HeadObject.
import path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { readFile } from 'node:fs/promises';
import type { WorkerConfig } from '../../shared/config';
import type { UploadResult, VerificationResult } from '../contract';
import { heartbeatWhile } from '../../shared/heartbeat';
import { stagedDir } from '../stagedBackup';
import { requireStagedManifest } from '../manifest/store';
import { backupKeys, withVerification } from '../manifest';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { abortStaleUploads, objectOptions, uploadFileOnce } from '../../shared/storage/multipartUpload';

export interface UploadInput {
  backupId: string;
  verification: VerificationResult;
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
        const sent = await uploadFileOnce(s3, config.s3, {
          Key,
          source: path.join(dir, file.name),
          file,
          metadata: { 'backup-id': manifest.backupId, target: manifest.target },
          onProgress: (loaded) => {
            uploadedBytes = before + loaded;
            heartbeats.progressed();
          },
        });
        if (sent) reused = false;
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

  return { uploadBackup, uploadBackupData, publishManifest, discardUploadedData };
}
