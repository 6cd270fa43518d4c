// The WAL archive in S3: segments and history files written once (a conditional PUT, so a
// segment is never replaced by different content), read back before the local copy goes, and the
// index that lists them. Keys come from layout.ts.
//
// With a key ring (config.encryption) every segment, partial and history file is sealed after
// compression (src/archive/archiveCrypto.ts) on the staging disk, so its length and ciphertext
// SHA-256 are known before the PUT; the metadata keeps the raw SHA-256 (what a conflict and a
// fetch compare) beside the stored one. Index blocks are signed as they are written.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { createS3Client, readObjectIfPresent, storageFailure } from '../../shared/storage/s3Client';
import { objectOptions } from '../../shared/storage/multipartUpload';
import type { ArchiveGap } from '../contract';
import {
  gapKey,
  historyKey,
  parseSegmentName,
  SEGMENTS_PER_INDEX_BLOCK,
  walIndexKey,
  walPartialKey,
  walSegmentKey,
  type ArchivedSegment,
  type WalIndexBlock,
} from '../layout';
import { compressFile, decompressedDigest } from './zstd';
import {
  checkArchiveRecord,
  ENCRYPTION_METADATA,
  KEY_ID_METADATA,
  plainBody,
  sealFile,
  signArchiveRecord,
  STORED_SHA256_METADATA,
  WAL_INDEX_DOMAIN,
  withoutAuthentication,
} from '../archiveCrypto';
import { ENCRYPTION_SCHEME } from '../../shared/crypto/objectStream';

/** Written once at the archive's root: what it is an archive of. */
export interface ArchiveDescriptor {
  cluster: string;
  systemIdentifier: string;
  segmentBytes: number;
  createdAt: string;
}

export function archiveDescriptorKey(root: string): string {
  return `${root}/archive.json`;
}

function isPreconditionFailed(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}

/** S3 errors as failures that say where; failures of our own pass through. */
export function asArchiveFailure(config: Pick<WorkerConfig, 's3'>, err: unknown): Error {
  return err instanceof ApplicationFailure ? err : storageFailure(config.s3, err);
}

export class WalArchiveStore {
  readonly s3: S3Client;
  private readonly bucket: string;
  private readonly blocks = new Map<string, WalIndexBlock>();

  constructor(
    private readonly config: WorkerConfig,
    readonly root: string,
    /** The node the WAL came from, recorded with each object. */
    private readonly node: string,
    /** Where compressed copies are staged on their way up. */
    private readonly uploadDir: string,
  ) {
    this.s3 = createS3Client(config.s3);
    this.bucket = config.s3.bucket;
  }

  destroy(): void {
    this.s3.destroy();
  }

  /**
   * A complete segment, compressed, PUT only if absent, read back and checked. Returns its index
   * entry. The same content already there is fine; different content is an ArchiveConflict.
   */
  async uploadSegment(file: string, segment: string): Promise<ArchivedSegment> {
    const key = walSegmentKey(this.root, segment);
    await mkdir(this.uploadDir, { recursive: true, mode: 0o700 });
    const staged = path.join(this.uploadDir, `${segment}.zst`);
    try {
      const compressed = await compressFile(file, staged);
      const archivedAt = new Date().toISOString();
      const body = await this.seal(key, staged, compressed.storedBytes);
      const metadata = { sha256: compressed.sha256, 'raw-size': String(compressed.rawBytes), node: this.node, 'archived-at': archivedAt, ...body.metadata };
      const stored = await this.putOnce(key, () => createReadStream(body.file), body.sizeBytes, metadata, `segment ${segment}`);
      if (stored === 'created') await this.readBack(key, compressed.sha256, `segment ${segment}`, true);
      return { segment, sha256: compressed.sha256, storedBytes: body.sizeBytes, ...body.entry, archivedAt };
    } finally {
      await rm(staged, { force: true });
      await rm(`${staged}.sealed`, { force: true });
    }
  }

  /** A timeline's history file, raw (it is small and a restore fetches it as is), under the same rule. */
  async uploadHistory(file: string, timeline: number): Promise<void> {
    const key = historyKey(this.root, timeline);
    await mkdir(this.uploadDir, { recursive: true, mode: 0o700 });
    const staged = path.join(this.uploadDir, `${timeline}.history.zst`);
    try {
      // Compressed only to learn the SHA-256 and size in one pass; the raw file is what goes up.
      const { sha256, rawBytes } = await compressFile(file, staged);
      const body = await this.seal(key, file, rawBytes, `${staged}.sealed`);
      const metadata = { sha256, 'raw-size': String(rawBytes), node: this.node, 'archived-at': new Date().toISOString(), ...body.metadata };
      const stored = await this.putOnce(key, () => createReadStream(body.file), body.sizeBytes, metadata, `history file of timeline ${timeline}`);
      if (stored === 'created') await this.readBack(key, sha256, `history file of timeline ${timeline}`, false);
    } finally {
      await rm(staged, { force: true });
      await rm(`${staged}.sealed`, { force: true });
    }
  }

  /** The segment being written, valid up to `validToLsn`: replaced as it grows, `final` once abandoned. */
  async uploadPartial(file: string, segment: string, validToLsn: string, final: boolean): Promise<number> {
    await mkdir(this.uploadDir, { recursive: true, mode: 0o700 });
    const staged = path.join(this.uploadDir, `${segment}.partial.zst`);
    const key = walPartialKey(this.root, segment);
    try {
      const compressed = await compressFile(file, staged);
      const body = await this.seal(key, staged, compressed.storedBytes);
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: createReadStream(body.file),
          ContentLength: body.sizeBytes,
          Metadata: { sha256: compressed.sha256, 'valid-to-lsn': validToLsn, final: String(final), node: this.node, 'archived-at': new Date().toISOString(), ...body.metadata },
          ...objectOptions(this.config.s3),
        }),
      );
      return body.sizeBytes;
    } finally {
      await rm(staged, { force: true });
      await rm(`${staged}.sealed`, { force: true });
    }
  }

  /**
   * What goes up for `staged` (of `plainBytes`) at `key`: the file itself without a key ring;
   * with one, the file sealed beside it (`<staged>.sealed` unless named), its size, and the
   * metadata and index fields that say how.
   */
  private async seal(
    key: string,
    staged: string,
    plainBytes: number,
    sealed = `${staged}.sealed`,
  ): Promise<{ file: string; sizeBytes: number; metadata: Record<string, string>; entry: Pick<ArchivedSegment, 'storedSha256' | 'keyId'> }> {
    const ring = this.config.encryption;
    if (!ring) return { file: staged, sizeBytes: plainBytes, metadata: {}, entry: {} };
    const result = await sealFile(ring, this.root, key, staged, sealed);
    return {
      file: sealed,
      sizeBytes: result.sizeBytes,
      metadata: { [ENCRYPTION_METADATA]: ENCRYPTION_SCHEME, [KEY_ID_METADATA]: result.keyId, [STORED_SHA256_METADATA]: result.sha256 },
      entry: { storedSha256: result.sha256, keyId: result.keyId },
    };
  }

  /** An index block as stored, when it verifies (or nothing can be checked); otherwise ignored, like any record a worker did not write. */
  private async readIndexBlock(key: string): Promise<WalIndexBlock | undefined> {
    const existing = await readObjectIfPresent(this.s3, this.bucket, key);
    if (!existing) return undefined;
    const block = JSON.parse(existing.body) as WalIndexBlock;
    return checkArchiveRecord(this.config.encryption, WAL_INDEX_DOMAIN, block).trusted ? withoutAuthentication(block) : undefined;
  }

  /** Once its segment is complete in S3, the partial copy is only in the way. */
  async deletePartial(segment: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: walPartialKey(this.root, segment) }));
  }

  /** Adds (or confirms) a segment in its index block. The index is written after the object, so it lags, never leads. */
  async recordInIndex(entry: ArchivedSegment, segmentBytes: number): Promise<void> {
    const parsed = parseSegmentName(entry.segment, segmentBytes)!;
    const block = Number(parsed.segno / BigInt(SEGMENTS_PER_INDEX_BLOCK));
    const key = walIndexKey(this.root, parsed.timeline, block);
    let index = this.blocks.get(key);
    if (!index) {
      // A block that does not verify (planted, or written before keys were configured) is started again.
      index = (await this.readIndexBlock(key)) ?? { timeline: parsed.timeline, block, segments: [] };
      this.blocks.set(key, index);
    }
    const at = index.segments.findIndex((s) => s.segment === entry.segment);
    if (at >= 0 && index.segments[at].sha256 === entry.sha256) return;
    if (at >= 0) index.segments[at] = entry;
    else index.segments.push(entry);
    index.segments.sort((a, b) => a.segment.localeCompare(b.segment));
    const body = JSON.stringify(signArchiveRecord(this.config.encryption, WAL_INDEX_DOMAIN, index));
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/json' }));
  }

  /** The newest segment the index lists, on the newest timeline it has (blocks that do not verify are skipped). */
  async indexHead(): Promise<string | undefined> {
    const keys = await listKeys(this.s3, this.bucket, `${this.root}/wal-index/`);
    for (const key of keys.filter((k) => k.endsWith('.json')).sort().reverse()) {
      const block = await this.readIndexBlock(key);
      if (block) return block.segments.at(-1)?.segment;
    }
    return undefined;
  }

  /** Writes <root>/archive.json unless it is there: also the proof that the bucket takes writes. */
  async ensureDescriptor(descriptor: ArchiveDescriptor): Promise<void> {
    const key = archiveDescriptorKey(this.root);
    try {
      await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: JSON.stringify(descriptor), ContentType: 'application/json', IfNoneMatch: '*' }));
    } catch (err) {
      if (!isPreconditionFailed(err)) throw err;
    }
  }

  async recordGap(gap: ArchiveGap): Promise<string> {
    const key = gapKey(this.root, gap.timeline, gap.fromLsn);
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: JSON.stringify({ ...gap, key }), ContentType: 'application/json' }));
    return key;
  }

  /** PUT with If-None-Match: *. On 412 the object there must carry the same SHA-256. */
  private async putOnce(key: string, body: () => Readable, length: number, metadata: Record<string, string>, what: string): Promise<'created' | 'already-there'> {
    try {
      await this.s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body(), ContentLength: length, Metadata: metadata, IfNoneMatch: '*', ...objectOptions(this.config.s3) }),
      );
      return 'created';
    } catch (err) {
      if (!isPreconditionFailed(err)) throw err;
    }
    const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    const theirs = head.Metadata?.sha256;
    if (theirs === metadata.sha256) return 'already-there';
    throw ApplicationFailure.nonRetryable(
      `ArchiveConflict: the ${what} is already in S3 (s3://${this.bucket}/${key}, written by ${head.Metadata?.node ?? 'an unknown node'}) ` +
        `with SHA-256 ${theirs ?? 'unrecorded'}, but ${this.node}'s copy has ${metadata.sha256}. Two servers wrote different WAL under one ` +
        `system identifier and timeline (a restored copy archiving into this prefix?). Nothing was overwritten or deleted; see docs/wal-archive.md`,
      'ArchiveConflict',
      { key, storedSha256: theirs, localSha256: metadata.sha256, node: this.node },
    );
  }

  /** GETs the object back and checks the raw bytes' SHA-256 before the local copy may go. */
  private async readBack(key: string, sha256: string, what: string, compressed: boolean): Promise<void> {
    const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    const body = plainBody(object.Body as Readable, this.config.encryption, this.root, key);
    const digest = compressed ? await decompressedDigest(body) : await rawDigest(body);
    if (digest.sha256 !== sha256) {
      throw ApplicationFailure.retryable(`read-back of the ${what} (${key}) gave SHA-256 ${digest.sha256}, expected ${sha256}; the local copy is kept`, 'ArchiveReadBackMismatch');
    }
  }
}

async function rawDigest(body: Readable): Promise<{ sha256: string }> {
  const hash = createHash('sha256');
  for await (const chunk of body) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex') };
}

export async function listKeys(s3: S3Client, Bucket: string, Prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return keys;
}

/** An object's user metadata, or undefined when there is none. */
export async function headMetadata(s3: S3Client, Bucket: string, Key: string): Promise<Record<string, string> | undefined> {
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket, Key }))).Metadata ?? {};
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function fileSize(file: string): Promise<number> {
  return (await stat(file)).size;
}
