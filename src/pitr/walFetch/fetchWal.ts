// Fetching one archived WAL file from S3 for a recovering instance: a history file as stored, a
// segment decompressed (zstd) and checked against the SHA-256 of its raw bytes that the archive
// recorded in the object's metadata, then renamed into place, so a half-written or corrupt file
// never reaches the server. The newest segment may exist only as the growing partial copy: it
// is served under its segment name (recovery stops at its zero padding).
//
// With a key ring (from the private env file) every object must be one a worker sealed under its
// own name (src/archive/archiveCrypto.ts): it is opened chunk by chunk on its way to zstd, and a
// flipped byte, a cut, a wrong key or an unsealed object fails the fetch naming the object,
// before the file is renamed to where PostgreSQL reads it.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { open, rename, rm, truncate } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { hashingTap } from '../../shared/storage/hashingTap';
import { historyKey, parseSegmentName, walPartialKey, walSegmentKey } from '../../archive/layout';
import { openStream } from '../../archive/archiveCrypto';
import type { KeyRing } from '../../shared/crypto/keyRing';

/** A stored object whose bytes are not what the archive recorded: retrying cannot help. */
export class WalObjectCorrupt extends Error {
  override name = 'WalObjectCorrupt';
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FetchedWal {
  key: string;
  bytes: number;
  partial: boolean;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

async function getObject(s3: S3Client, bucket: string, key: string) {
  try {
    return await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Streams `stored` (opened when `opening` is given, then zstd unless `raw`) into `file`, returning the SHA-256 and size of what was written. */
async function writeDecompressed(stored: Readable, opening: Transform | undefined, file: string, raw: boolean, zstdBin: string): Promise<{ sha256: string; bytes: number }> {
  const body: Readable[] = opening ? [stored, opening] : [stored];
  const tap = hashingTap();
  const out = createWriteStream(file, { mode: 0o600 });
  if (raw) {
    await pipeline([...body, tap.stream, out]);
  } else {
    const child = spawn(zstdBin, ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<void>((resolve, reject) => {
      child.once('error', (err) => reject(new Error(`cannot run ${zstdBin}: ${err.message}`)));
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd -d exited with ${code}: ${stderr.trim()}`))));
    });
    await Promise.all([pipeline([...body, child.stdin]), pipeline(child.stdout, tap.stream, out), exited]);
  }
  const { sha256, sizeBytes } = tap.result();
  return { sha256, bytes: sizeBytes };
}

export interface FetchOptions {
  s3: S3Client;
  bucket: string;
  root: string;
  segmentBytes: number;
  zstdBin: string;
  /** The archive is sealed with these keys; undefined: it is stored unencrypted (no key configured). */
  ring?: KeyRing;
  /** Serve the growing partial copy when the complete segment is not archived (never for read-ahead). */
  allowPartial: boolean;
  /**
   * The archive's head when the restore was planned: nothing past it is served (WAL after it is
   * cut off with zeros), so a restore recovers the archive as it was then, however it grew since.
   */
  stop?: { timeline: number; lsn: bigint };
}

/** Whether the stop position rules `name` out, or where in it the WAL must end (bytes from its start). */
function stopWithin(options: FetchOptions, name: string): 'beyond' | number | undefined {
  if (!options.stop) return undefined;
  const history = /^([0-9A-F]{8})\.history$/.exec(name);
  if (history) return parseInt(history[1], 16) > options.stop.timeline ? 'beyond' : undefined;
  const segment = parseSegmentName(name, options.segmentBytes);
  if (!segment || segment.timeline < options.stop.timeline) return undefined;
  if (segment.timeline > options.stop.timeline) return 'beyond';
  const start = segment.segno * BigInt(options.segmentBytes);
  if (options.stop.lsn <= start) return 'beyond';
  return options.stop.lsn - start < BigInt(options.segmentBytes) ? Number(options.stop.lsn - start) : undefined;
}

/** Zeros from `offset` to the end of the file: recovery reads the end of the WAL there. */
async function zeroFrom(file: string, offset: number, size: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.write(Buffer.alloc(size - offset), 0, size - offset, offset);
  } finally {
    await handle.close();
  }
}

/**
 * Fetches WAL file `name` (a segment or `<TLI>.history`) into `destination`; undefined when the
 * archive does not have it (PostgreSQL asks for files past the end on purpose).
 */
export async function fetchWalFile(options: FetchOptions, name: string, destination: string): Promise<FetchedWal | undefined> {
  const stop = stopWithin(options, name);
  if (stop === 'beyond') return undefined;
  const history = /^([0-9A-F]{8})\.history$/.exec(name);
  const candidates: { key: string; partial: boolean }[] = history
    ? [{ key: historyKey(options.root, parseInt(history[1], 16)), partial: false }]
    : /^[0-9A-F]{24}$/.test(name)
      ? [{ key: walSegmentKey(options.root, name), partial: false }, ...(options.allowPartial ? [{ key: walPartialKey(options.root, name), partial: true }] : [])]
      : [];
  for (const { key, partial } of candidates) {
    const object = await getObject(options.s3, options.bucket, key);
    if (!object) continue;
    const expected = object.Metadata?.sha256;
    if (!options.ring && object.Metadata?.encryption) {
      throw new WalObjectCorrupt(key, `s3://${options.bucket}/${key} is encrypted (key "${object.Metadata['key-id'] ?? '?'}"), but this restore has no encryption keys (PGOPS_ENCRYPTION_KEYS on the worker)`);
    }
    const temporary = `${destination}.pgops-fetch`;
    try {
      let written: { sha256: string; bytes: number };
      let opening: Transform | undefined;
      try {
        opening = options.ring ? openStream(options.ring, options.root, key) : undefined;
        written = await writeDecompressed(object.Body as Readable, opening, temporary, history !== null, options.zstdBin);
      } catch (err) {
        const e = err as Error;
        // zstd fails too once the opening stops: the reason is the opening's.
        const why = (opening?.errored as Error | null | undefined) ?? e;
        if (why.name === 'ObjectNotAuthentic' || why.name === 'KeyMissing') {
          throw new WalObjectCorrupt(key, `s3://${options.bucket}/${key} fails authentication: ${why.message}`);
        }
        throw new WalObjectCorrupt(key, `s3://${options.bucket}/${key} could not be decompressed: ${e.message}`);
      }
      if (!expected) throw new WalObjectCorrupt(key, `s3://${options.bucket}/${key} has no sha256 in its metadata: it was not written by the WAL archiver`);
      if (written.sha256 !== expected) {
        throw new WalObjectCorrupt(key, `s3://${options.bucket}/${key} failed its SHA-256 check: the archive recorded ${expected}, the stored object gives ${written.sha256}`);
      }
      if (!history && written.bytes !== options.segmentBytes) {
        if (!partial || written.bytes > options.segmentBytes) {
          throw new WalObjectCorrupt(key, `s3://${options.bucket}/${key} holds ${written.bytes} bytes, a WAL segment has ${options.segmentBytes}`);
        }
        // Recovery reads a segment of full size and stops at the zeros after the last record.
        await truncate(temporary, options.segmentBytes);
      }
      if (typeof stop === 'number') await zeroFrom(temporary, stop, options.segmentBytes);
      await rename(temporary, destination);
      return { key, bytes: written.bytes, partial };
    } finally {
      await rm(temporary, { force: true });
    }
  }
  return undefined;
}
