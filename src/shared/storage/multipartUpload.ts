// One way to put a large file in the bucket: a streaming multipart upload (the worker holds two
// parts in memory whatever the file's size), its SHA-256 in the object's metadata, confirmed by
// HeadObject, and no half-finished multipart upload left behind by a killed attempt.
import { createReadStream } from 'node:fs';
import { pipeline, type Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ApplicationFailure } from '@temporalio/common';
import type { S3Config } from '../config';
import { hashingTap } from './hashingTap';

/**
 * Parts are buffered in memory (two in flight): 8 MiB keeps the worker small while other steps
 * run beside the upload; a file too big for S3's 10,000 parts at that size gets larger parts.
 */
const MIN_PART_SIZE = 8 * 1024 * 1024;
const MAX_PARTS = 9_000;
export function partSizeFor(bytes: number): number {
  return Math.max(MIN_PART_SIZE, Math.ceil(bytes / MAX_PARTS));
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
export async function abortStaleUploads(s3: S3Client, bucket: string, key: string): Promise<number> {
  const { Uploads = [] } = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
  const stale = Uploads.filter((u) => u.Key === key);
  for (const u of stale) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }));
  return stale.length;
}

export interface StoredFile {
  sizeBytes: number;
  sha256: string;
}

/** True when the object is there with the file's size and SHA-256. */
export async function storedIntact(s3: S3Client, bucket: string, key: string, file: StoredFile): Promise<boolean> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return head.ContentLength === file.sizeBytes && head.Metadata?.sha256 === file.sha256;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound') return false;
    throw err;
  }
}

export interface FileUpload {
  Key: string;
  source: string;
  file: StoredFile;
  /** More object metadata beside the sha256 (names and ids, never secrets). */
  metadata?: Record<string, string>;
  /** Progress in the staged (plaintext) file's bytes. */
  onProgress?: (loadedBytes: number) => void;
  /** Sealed on the way: the encrypting stage, and the size it turns the file into. */
  seal?: { stream: Transform; sizeBytes: number };
}

export interface UploadedFile {
  etag: string;
  /** When sealed: the SHA-256 and size of what was stored, hashed as it went up. */
  stored?: { sha256: string; sizeBytes: number };
}

/** Streams `source` to `Key` in parts. Does not check the result: callers confirm with storedIntact. */
export async function uploadFile(s3: S3Client, config: S3Config, upload: FileUpload): Promise<UploadedFile> {
  await abortStaleUploads(s3, config.bucket, upload.Key);
  const read = createReadStream(upload.source, { highWaterMark: 1 << 20 });
  const tap = upload.seal ? hashingTap() : undefined;
  // pipeline carries a failure anywhere (an unreadable file) into the body the upload reads.
  const body = upload.seal && tap ? pipeline(read, upload.seal.stream, tap.stream, () => undefined) : read;
  const multipart = new Upload({
    client: s3,
    partSize: partSizeFor(upload.seal?.sizeBytes ?? upload.file.sizeBytes),
    queueSize: 2,
    leavePartsOnError: false,
    params: {
      Bucket: config.bucket,
      Key: upload.Key,
      Body: body,
      ContentType: 'application/octet-stream',
      Metadata: { ...upload.metadata, sha256: upload.file.sha256 },
      ...(config.checksumMode === 'when_supported' ? { ChecksumAlgorithm: 'SHA256' as const } : {}),
      ...objectOptions(config),
    },
  });
  multipart.on('httpUploadProgress', (p) => upload.onProgress?.(Math.min(upload.file.sizeBytes, p.loaded ?? 0)));
  const done = await multipart.done();
  const etag = (done as { ETag?: string }).ETag ?? '';
  if (!upload.seal || !tap) return { etag };
  const stored = tap.result();
  if (stored.sizeBytes !== upload.seal.sizeBytes) {
    throw ApplicationFailure.retryable(`sealing ${upload.source} gave ${stored.sizeBytes} bytes, expected ${upload.seal.sizeBytes}`, 'UploadMismatch');
  }
  return { etag, stored };
}

/** Uploads unless an intact copy is already stored (a retried step sends nothing twice); true when it sent. */
export async function uploadFileOnce(s3: S3Client, config: S3Config, upload: FileUpload): Promise<boolean> {
  if (await storedIntact(s3, config.bucket, upload.Key, upload.file)) return false;
  await uploadFile(s3, config, upload);
  if (!(await storedIntact(s3, config.bucket, upload.Key, upload.file))) {
    throw ApplicationFailure.retryable(`uploaded ${upload.Key} does not match the staged file's size and SHA-256`, 'UploadMismatch');
  }
  return true;
}
