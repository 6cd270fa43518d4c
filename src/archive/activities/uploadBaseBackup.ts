// The upload step: every staged file as a streaming multipart upload with its SHA-256 in the
// object's metadata, confirmed by HeadObject; backup_manifest after the data, backup.json last.
// Until backup.json is there the backup is not in the catalog: nothing restores from it, no
// incremental builds on it, retention ignores it.
//
// With a key ring every object is sealed on the way (src/archive/archiveCrypto.ts; the staged
// files stay plaintext on the worker's private disk), and backup.json records each object as
// stored (ciphertext size, SHA-256, key) and is signed. Ciphertext differs on every encryption, so
// what each object turned out to be is kept beside the staged backup (stored.json): a retry
// recognises what already landed by its size and ETag instead of sending it again.
import path from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { KeyRing } from '../../shared/crypto/keyRing';
import { encryptedSize, ENCRYPTION_SCHEME } from '../../shared/crypto/objectStream';
import type { BaseBackupUpload } from '../contract';
import { archiveRoot, BASE_BACKUP_RECORD, baseBackupObjectKey, baseBackupPrefix, type BaseBackupRecord } from '../layout';
import {
  archiveEncryption,
  BASE_BACKUP_RECORD_DOMAIN,
  ENCRYPTION_METADATA,
  KEY_ID_METADATA,
  sealStream,
  signArchiveRecord,
} from '../archiveCrypto';
import { heartbeatWhile } from '../../shared/heartbeat';
import { readStoredRecords, writeStoredRecord, type StoredRecord } from '../../shared/storage/storedRecords';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { objectOptions, uploadFile, uploadFileOnce } from '../../shared/storage/multipartUpload';
import { baseBackupStaging, requireStagedBaseBackup } from './baseBackupStaging';

type BaseBackupFile = BaseBackupRecord['files'][number];

/** True when the object is the very ciphertext `record` describes, of this file's plaintext. */
async function sealedIntact(s3: S3Client, bucket: string, key: string, file: BaseBackupFile, record: StoredRecord | undefined): Promise<boolean> {
  if (!record) return false;
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return head.Metadata?.sha256 === file.sha256 && head.ContentLength === record.sizeBytes && head.ETag === record.etag;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound') return false;
    throw err;
  }
}

export function uploadBaseBackupActivities(config: WorkerConfig) {
  /** Streams one staged file sealed under its key; returns what was stored. */
  async function uploadSealed(s3: S3Client, ring: KeyRing, root: string, key: string, source: string, file: BaseBackupFile, metadata: Record<string, string>, onProgress: (loaded: number) => void): Promise<StoredRecord> {
    const seal = { stream: sealStream(ring, root, key), sizeBytes: encryptedSize(file.sizeBytes, ring.current) };
    const sent = await uploadFile(s3, config.s3, {
      Key: key,
      source,
      file,
      metadata: { ...metadata, [ENCRYPTION_METADATA]: ENCRYPTION_SCHEME, [KEY_ID_METADATA]: ring.current },
      onProgress,
      seal,
    });
    return { ...sent.stored!, keyId: ring.current, etag: sent.etag };
  }

  async function uploadBaseBackup(input: { backupId: string }): Promise<BaseBackupUpload> {
    const { record } = await requireStagedBaseBackup(config.stagingDir, input.backupId);
    const staging = baseBackupStaging(config.stagingDir, input.backupId);
    const root = archiveRoot(config.s3, record.cluster, record.systemIdentifier);
    const ring = config.encryption;
    const s3 = createS3Client(config.s3);
    let uploadedBytes = 0;
    let writing = '';
    const heartbeats = heartbeatWhile(() => ({ stage: 'upload', uploadedBytes }));
    try {
      let reused = true;
      const stored = ring ? await readStoredRecords(staging.dir) : {};
      const files: BaseBackupFile[] = [];
      // record.files lists backup_manifest last: PostgreSQL's manifest only once the data it describes is stored.
      for (const file of record.files) {
        const before = uploadedBytes;
        writing = baseBackupObjectKey(root, record.backupId, file.name);
        const source = path.join(staging.data, file.name);
        const metadata = { 'backup-id': record.backupId, cluster: record.cluster };
        const onProgress = (loaded: number) => {
          uploadedBytes = before + loaded;
          heartbeats.progressed();
        };
        if (!ring) {
          if (await uploadFileOnce(s3, config.s3, { Key: writing, source, file, metadata, onProgress })) reused = false;
          files.push(file);
        } else {
          if (!(await sealedIntact(s3, config.s3.bucket, writing, file, stored[file.name]))) {
            reused = false;
            const sent = await uploadSealed(s3, ring, root, writing, source, file, metadata, onProgress);
            if (!(await sealedIntact(s3, config.s3.bucket, writing, file, sent))) {
              throw ApplicationFailure.retryable(`uploaded ${writing} does not match the size and ETag of what was sent`, 'UploadMismatch');
            }
            stored[file.name] = sent;
            await writeStoredRecord(staging.dir, file.name, sent);
          }
          const { sizeBytes, sha256, keyId } = stored[file.name];
          files.push({ ...file, stored: { sizeBytes, sha256, keyId } });
        }
        uploadedBytes = before + file.sizeBytes;
      }
      writing = baseBackupObjectKey(root, record.backupId, BASE_BACKUP_RECORD);
      const published: BaseBackupRecord = signArchiveRecord(ring, BASE_BACKUP_RECORD_DOMAIN, { ...record, files, ...(ring ? { encryption: archiveEncryption(ring) } : {}) });
      await s3.send(
        new PutObjectCommand({
          Bucket: config.s3.bucket,
          Key: writing,
          Body: JSON.stringify(published, null, 2),
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
