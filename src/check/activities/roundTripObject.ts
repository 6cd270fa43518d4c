// Activity behind stackCheck: put, read back, delete one small object.
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { StorageProbe } from '../contract';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';

export function roundTripActivities(config: WorkerConfig) {
  async function roundTripObject(key: string): Promise<StorageProbe> {
    const s3 = createS3Client(config.s3);
    const Bucket = config.s3.bucket;
    const body = `pgops stack check ${key}`;
    const started = Date.now();
    try {
      await s3.send(new PutObjectCommand({ Bucket, Key: key, Body: body, ContentType: 'text/plain' }));
      const read = await s3.send(new GetObjectCommand({ Bucket, Key: key }));
      const text = await read.Body?.transformToString();
      if (text !== body) {
        throw ApplicationFailure.nonRetryable(`object ${key} read back differs from what was written`, 'S3Corrupt');
      }
      await s3.send(new DeleteObjectCommand({ Bucket, Key: key }));
      const gone = await s3.send(new HeadObjectCommand({ Bucket, Key: key })).then(
        () => false,
        (err: { name?: string }) => err.name === 'NotFound',
      );
      if (!gone) throw ApplicationFailure.retryable(`object ${key} still exists after delete`, 'S3DeleteFailed');
      const ring = config.encryption;
      const encryption = ring
        ? `backups encrypted and manifests authenticated with key ${ring.current}${ring.retired.length ? ` (retired keys: ${ring.retired.join(', ')})` : ''}`
        : 'backups NOT encrypted or authenticated: no key configured (PGOPS_ENCRYPTION_KEYS or PGOPS_ENCRYPTION_KEYS_FILE)';
      return { bucket: Bucket, key, bytes: Buffer.byteLength(body), roundTripMs: Date.now() - started, encryption };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }
  return { roundTripObject };
}
