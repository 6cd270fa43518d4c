// One S3 client factory, and one place that explains S3 errors.
// The SDK warns on every process that Node 20 support ends in 2027; docs/development.md notes it once.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { S3Config } from '../config';

export function createS3Client(config: S3Config): S3Client {
  const checksum = config.checksumMode === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials:
      config.accessKeyId && config.secretAccessKey
        ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey }
        : undefined,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    // Temporal retries the activity; keep the SDK's own retries short so failures surface.
    maxAttempts: 3,
  });
}

/**
 * An S3 error as one line naming the fix. `writing` names the object being written: a refusal
 * then is about write permission (a read-only key, a bucket policy), not the credentials as such.
 */
export function storageFailure(config: S3Config, err: unknown, writing?: string): Error {
  const e = err as { name?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const code = e.name ?? e.Code ?? '';
  const where = config.endpoint ?? `AWS S3 (${config.region})`;
  if (writing !== undefined && ['AccessDenied', 'Forbidden'].includes(code)) {
    return ApplicationFailure.nonRetryable(
      `S3 at ${where} refused to write ${writing} in bucket "${config.bucket}" (${code}): ` +
        `give the worker's key (PGOPS_S3_ACCESS_KEY_ID) s3:PutObject on ${config.prefix}/* or lift the bucket policy that denies it`,
      'S3WriteRefused',
    );
  }
  if (code === 'NoSuchBucket') {
    return ApplicationFailure.nonRetryable(
      `bucket "${config.bucket}" does not exist at ${where}; create it or fix PGOPS_S3_BUCKET`,
      'BucketMissing',
    );
  }
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden'].includes(code)) {
    return ApplicationFailure.nonRetryable(
      `S3 at ${where} refused the credentials for bucket "${config.bucket}" (${code}); check PGOPS_S3_ACCESS_KEY_ID / PGOPS_S3_SECRET_ACCESS_KEY`,
      'S3AuthFailed',
    );
  }
  // Network errors reach us wrapped by the SDK; the innermost cause says what happened.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const reason = cause?.code ? `${cause.code}: ${cause.message}` : `${code || 'error'}: ${e.message ?? ''}`;
  return ApplicationFailure.retryable(`S3 at ${where}, bucket "${config.bucket}": ${reason}`, 'S3Unavailable');
}

/** An object's body and ETag, or undefined when there is no such key. */
export async function readObjectIfPresent(s3: S3Client, Bucket: string, Key: string): Promise<{ body: string; etag: string } | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket, Key }));
    return { body: await object.Body!.transformToString(), etag: object.ETag! };
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}
