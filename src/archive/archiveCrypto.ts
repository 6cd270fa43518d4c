// How the physical archive uses src/shared/crypto (the one cipher construction and the one record
// authentication): every WAL object and base backup object is sealed after compression with its
// name relative to the archive root bound in, and backup.json and the WAL index are signed. The
// relative name (not the full key) is the context so an archive still opens after its bucket or
// PGOPS_S3_PREFIX changed, while a segment copied to another segment's name does not.
import { createReadStream, createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ManifestEncryption } from '../backup/manifest';
import { KeyMissing, type KeyRing } from '../shared/crypto/keyRing';
import { decryptStream, DEFAULT_CHUNK_BYTES, ENCRYPTION_CIPHER, ENCRYPTION_SCHEME, encryptStream } from '../shared/crypto/objectStream';
import { isTrusted, signRecord, verifyRecord, type AuthenticationStatus } from '../shared/crypto/manifestAuth';
import { hashingTap } from '../shared/storage/hashingTap';

/** The MAC domains: a signed WAL index block cannot pass as a base backup record, nor the reverse. */
export const BASE_BACKUP_RECORD_DOMAIN = 'base backup record';
export const WAL_INDEX_DOMAIN = 'wal index';

/** How a base backup's objects are encrypted (the same shape as a logical manifest's). */
export type ArchiveEncryption = ManifestEncryption;

/** Object metadata (names and ids, never secrets) saying an object is sealed and with which key. */
export const ENCRYPTION_METADATA = 'encryption';
export const KEY_ID_METADATA = 'key-id';
/** SHA-256 of the object as stored (ciphertext): what S3 holds, checkable without any key. */
export const STORED_SHA256_METADATA = 'stored-sha256';

export function archiveEncryption(ring: KeyRing): ArchiveEncryption {
  return { scheme: ENCRYPTION_SCHEME, cipher: ENCRYPTION_CIPHER, chunkBytes: DEFAULT_CHUNK_BYTES, keyId: ring.current };
}

/** The name an object is sealed under: its key relative to the archive root ("wal/00000001/….zst", "base/<id>/base.tar.zst"). */
export function archiveObjectContext(root: string, key: string): string {
  if (!key.startsWith(`${root}/`)) throw new Error(`object ${key} is not under the archive root ${root}`);
  return key.slice(root.length + 1);
}

export interface SealedFile {
  sizeBytes: number;
  /** SHA-256 of the ciphertext. */
  sha256: string;
  keyId: string;
}

/** `source` sealed into `destination` on disk (memory stays at a few chunks), for a PUT that needs its length and hash up front. */
export async function sealFile(ring: KeyRing, root: string, key: string, source: string, destination: string): Promise<SealedFile> {
  const tap = hashingTap();
  await pipeline(
    createReadStream(source, { highWaterMark: 1 << 20 }),
    encryptStream(ring, { context: archiveObjectContext(root, key) }),
    tap.stream,
    createWriteStream(destination, { mode: 0o600 }),
  );
  return { ...tap.result(), keyId: ring.current };
}

/** The Transform that seals an object streamed to `key` (multipart uploads of base backups). */
export function sealStream(ring: KeyRing, root: string, key: string): Transform {
  return encryptStream(ring, { context: archiveObjectContext(root, key) });
}

/**
 * The Transform that opens an object read from `key`, refusing (ObjectNotAuthentic) anything that
 * was not sealed under that name by a key of the ring; KeyMissing names a key the ring lacks.
 */
export function openStream(ring: KeyRing | undefined, root: string, key: string, expectKeyId?: string): Transform {
  if (!ring) throw new KeyMissing(expectKeyId ?? '(unknown)', `encrypted object ${key}`);
  return decryptStream(ring, { context: archiveObjectContext(root, key), ...(expectKeyId ? { expectKeyId } : {}) });
}

/** A stored object as a plaintext stream: opened when `ring` is given (the archive is then sealed), as is otherwise. */
export function plainBody(body: Readable, ring: KeyRing | undefined, root: string, key: string): Readable {
  return ring ? body.pipe(openStream(ring, root, key)) : body;
}

/** Reads a small sealed object whole (history files). */
export async function openBuffer(ring: KeyRing, root: string, key: string, stored: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  const open = openStream(ring, root, key);
  open.on('data', (b: Buffer) => parts.push(b));
  await new Promise<void>((resolve, reject) => {
    open.once('error', reject);
    open.once('end', resolve);
    open.end(stored);
  });
  return Buffer.concat(parts);
}

export function signArchiveRecord<T extends object>(ring: KeyRing | undefined, domain: string, record: T): T {
  return ring ? signRecord(ring, domain, record) : record;
}

/** Whether a record read from the bucket may be acted on, and its status for listings. */
export function checkArchiveRecord(ring: KeyRing | undefined, domain: string, record: object): { trusted: boolean; status: AuthenticationStatus; keyId?: string } {
  const { status, keyId } = verifyRecord(ring, domain, record);
  return { trusted: isTrusted(status), status, ...(keyId ? { keyId } : {}) };
}

/** The record without its authentication (what the archiver keeps in memory and signs again). */
export function withoutAuthentication<T extends object>(record: T): T {
  const rest = { ...(record as Record<string, unknown>) };
  delete rest.authentication;
  return rest as T;
}
