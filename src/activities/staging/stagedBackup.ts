// The local staging folder of one backup: <stagingDir>/<backupId>/{dump, globals, manifest.json}.
// manifest.json is written last, atomically, so its presence means the staged backup is complete.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { BackupManifest, DataFile } from '../../types';

export const DUMP_FILE = 'dump.pgdump';
export const DUMP_DIR = 'dump.dir';
export const GLOBALS_FILE = 'globals.sql';
export const MANIFEST_FILE = 'manifest.json';

export function stagedDir(stagingDir: string, backupId: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(backupId)) {
    throw ApplicationFailure.nonRetryable(`backup id "${backupId}" has characters not allowed in a file name`, 'BadInput');
  }
  return path.join(stagingDir, backupId);
}

/** Creates the folder and proves it is writable, or fails for good naming the setting. */
export async function prepareStagedDir(stagingDir: string, backupId: string): Promise<string> {
  const dir = stagedDir(stagingDir, backupId);
  try {
    await mkdir(dir, { recursive: true });
    // Root passes access() checks everywhere; only a real write proves the directory takes files.
    await writeFile(path.join(dir, '.write-test'), '');
    await rm(path.join(dir, '.write-test'));
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `staging dir ${stagingDir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); fix PGOPS_STAGING_DIR`,
      'StagingUnwritable',
    );
  }
  return dir;
}

export async function writeManifest(dir: string, manifest: BackupManifest): Promise<void> {
  const tmp = path.join(dir, `${MANIFEST_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(manifest, null, 2));
  await rename(tmp, path.join(dir, MANIFEST_FILE));
}

export async function readStagedManifest(stagingDir: string, backupId: string): Promise<BackupManifest | undefined> {
  try {
    return JSON.parse(await readFile(path.join(stagedDir(stagingDir, backupId), MANIFEST_FILE), 'utf8')) as BackupManifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // not staged (yet)
    throw err;
  }
}

export async function requireStagedManifest(stagingDir: string, backupId: string): Promise<BackupManifest> {
  const manifest = await readStagedManifest(stagingDir, backupId);
  if (!manifest) {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} is not staged in ${stagingDir} (no ${MANIFEST_FILE}); the dump step must run first on a worker sharing this staging dir`,
      'BackupNotStaged',
    );
  }
  return manifest;
}

export async function sha256File(file: string, onBytes?: (bytes: number) => void): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onBytes?.(bytes);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** The files of a directory-format dump, each hashed, in name order; names relative to `dir`'s parent. */
export async function hashDumpDirectory(dir: string, onBytes?: (bytes: number) => void): Promise<DataFile[]> {
  const files: DataFile[] = [];
  let done = 0;
  for (const name of (await readdir(dir)).sort()) {
    const { sha256, bytes } = await sha256File(path.join(dir, name), (b) => onBytes?.(done + b));
    done += bytes;
    files.push({ name: `${path.basename(dir)}/${name}`, sizeBytes: bytes, sha256 });
  }
  return files;
}

/** One checksum for a list of files: SHA-256 over "sha256  size  name" lines. */
export function digestOfFiles(files: DataFile[]): string {
  return createHash('sha256')
    .update(files.map((f) => `${f.sha256}  ${f.sizeBytes}  ${f.name}\n`).join(''))
    .digest('hex');
}

/** Rechecks every staged data file against the manifest and returns what pg_restore reads. A mismatch is final. */
export async function assertStagedDumpIntact(stagingDir: string, manifest: BackupManifest, onBytes?: (bytes: number) => void) {
  return assertDumpFilesIntact(stagedDir(stagingDir, manifest.backupId), manifest, onBytes);
}

/** The same check for a backup's files in any folder (a restore fetches them into its own). */
export async function assertDumpFilesIntact(dir: string, manifest: BackupManifest, onBytes?: (bytes: number) => void) {
  let done = 0;
  for (const expected of manifest.dataFiles) {
    const file = path.join(dir, expected.name);
    const actual = await sha256File(file, (b) => onBytes?.(done + b)).catch((err: NodeJS.ErrnoException) => {
      throw ApplicationFailure.nonRetryable(`staged dump ${file} cannot be read: ${err.code ?? err.message}`, 'BackupCorrupt');
    });
    done += actual.bytes;
    if (actual.sha256 !== expected.sha256 || actual.bytes !== expected.sizeBytes) {
      throw ApplicationFailure.nonRetryable(
        `staged dump ${file} does not match its manifest: sha256 ${actual.sha256} (${actual.bytes} bytes), ` +
          `expected ${expected.sha256} (${expected.sizeBytes} bytes)`,
        'BackupCorrupt',
      );
    }
  }
  return path.join(dir, manifest.dumpFile);
}
