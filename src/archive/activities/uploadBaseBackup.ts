// The upload step: every staged file as a streaming multipart upload with its SHA-256 in the
// object's metadata, confirmed by HeadObject; backup_manifest after the data, backup.json last.
// Until backup.json is there the backup is not in the catalog: nothing restores from it, no
// incremental builds on it, retention ignores it.
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { BaseBackupUpload } from '../contract';
import { archiveRoot, BASE_BACKUP_RECORD, baseBackupObjectKey, baseBackupPrefix } from '../layout';
import { heartbeatWhile } from '../../shared/heartbeat';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { objectOptions, uploadFileOnce } from '../../shared/storage/multipartUpload';
import { baseBackupStaging, requireStagedBaseBackup } from './baseBackupStaging';

export function uploadBaseBackupActivities(config: WorkerConfig) {
  async function uploadBaseBackup(input: { backupId: string }): Promise<BaseBackupUpload> {
    const { record } = await requireStagedBaseBackup(config.stagingDir, input.backupId);
    const { data } = baseBackupStaging(config.stagingDir, input.backupId);
    const root = archiveRoot(config.s3, record.cluster, record.systemIdentifier);
    const s3 = createS3Client(config.s3);
    let uploadedBytes = 0;
    let writing = '';
    const heartbeats = heartbeatWhile(() => ({ stage: 'upload', uploadedBytes }));
    try {
      let reused = true;
      // record.files lists backup_manifest last: PostgreSQL's manifest only once the data it describes is stored.
      for (const file of record.files) {
        const before = uploadedBytes;
        writing = baseBackupObjectKey(root, record.backupId, file.name);
        const sent = await uploadFileOnce(s3, config.s3, {
          Key: writing,
          source: path.join(data, file.name),
          file,
          metadata: { 'backup-id': record.backupId, cluster: record.cluster },
          onProgress: (loaded) => {
            uploadedBytes = before + loaded;
            heartbeats.progressed();
          },
        });
        if (sent) reused = false;
        uploadedBytes = before + file.sizeBytes;
      }
      writing = baseBackupObjectKey(root, record.backupId, BASE_BACKUP_RECORD);
      await s3.send(
        new PutObjectCommand({
          Bucket: config.s3.bucket,
          Key: writing,
          Body: JSON.stringify(record, null, 2),
          ContentType: 'application/json',
          ...objectOptions(config.s3),
        }),
      );
      return { bucket: config.s3.bucket, prefix: baseBackupPrefix(root, record.backupId), uploadedBytes, reused };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err, writing);
    } finally {
      heartbeats.stop();
      s3.destroy();
    }
  }

  return { uploadBaseBackup };
}
