// What an upload of sealed objects left in S3, kept beside the staged files in stored.json: a
// retried upload recognises an object that already landed (its size and ETag) instead of sealing
// it again under a new data key, and the published record lists each object as stored.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface StoredRecord {
  sizeBytes: number;
  /** SHA-256 of the object as stored (the ciphertext). */
  sha256: string;
  /** The master key that wraps its data key. */
  keyId: string;
  etag: string;
}

const STORED_FILE = 'stored.json';

export async function readStoredRecords(dir: string): Promise<Record<string, StoredRecord>> {
  try {
    return JSON.parse(await readFile(path.join(dir, STORED_FILE), 'utf8')) as Record<string, StoredRecord>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

/** Adds (or replaces) one object's record; written whole and renamed, so a kill leaves the old file or the new. */
export async function writeStoredRecord(dir: string, name: string, record: StoredRecord): Promise<void> {
  const records = { ...(await readStoredRecords(dir)), [name]: record };
  const tmp = path.join(dir, `${STORED_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(records, null, 2), { mode: 0o600 });
  await rename(tmp, path.join(dir, STORED_FILE));
}
