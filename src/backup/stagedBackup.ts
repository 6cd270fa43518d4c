// The local staging folder of one backup: <stagingDir>/<backupId>/{dump, globals, manifest.json}.
// manifest.json is written last, atomically, so its presence means the staged backup is complete.
// Dumps hold every row of a database (and maybe role password hashes): staging folders are 0700
// and files 0600, so no other local user can read them.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { BackupManifest, DataFile } from './manifest';

export function stagedDir(stagingDir: string, backupId: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(backupId)) {
    throw ApplicationFailure.nonRetryable(`backup id "${backupId}" has characters not allowed in a file name`, 'BadInput');
  }
  return path.join(stagingDir, backupId);
}

const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) readable by this user only; an existing one keeps its mode. */
export function mkdirPrivate(dir: string): Promise<string | undefined> {
  return mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Creates the folder of one backup and proves it is writable, or fails for good naming the setting. */
export async function prepareStagedDir(stagingDir: string, backupId: string): Promise<string> {
  await ensureStagingDir(stagingDir);
  const dir = stagedDir(stagingDir, backupId);
  await provingWritable(stagingDir, async () => {
    await mkdirPrivate(dir);
    // Root passes access() checks everywhere; only a real write proves the directory takes files.
    await writeFile(path.join(dir, '.write-test'), '', { mode: PRIVATE_FILE_MODE });
    await rm(path.join(dir, '.write-test'));
  });
  return dir;
}

/**
 * Creates the staging dir if it is missing and refuses one that another user owns or may write
 * to: they could read the dumps, or swap a dump for their own before it is uploaded or restored.
 */
export async function ensureStagingDir(stagingDir: string): Promise<void> {
  await provingWritable(stagingDir, () => mkdirPrivate(stagingDir));
  const me = process.getuid?.();
  if (me === undefined) return; // no owners to compare (Windows)
  const [link, target] = await Promise.all([lstat(stagingDir), stat(stagingDir)]);
  const stranger = [link, target].find((s) => s.uid !== me);
  const mode = (target.mode & 0o777).toString(8).padStart(4, '0');
  if (stranger || (target.mode & 0o022) !== 0) {
    throw ApplicationFailure.nonRetryable(
      `staging dir ${stagingDir} is owned by uid ${(stranger ?? target).uid} with mode ${mode}, but must belong to this worker's user (uid ${me}) ` +
        `and be writable by it alone; chown ${me} and chmod 0700 it, or point PGOPS_STAGING_DIR at a directory that is`,
      'StagingUnsafe',
    );
  }
}

async function provingWritable(stagingDir: string, work: () => Promise<unknown>): Promise<void> {
  try {
    await work();
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `staging dir ${stagingDir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); fix PGOPS_STAGING_DIR`,
      'StagingUnwritable',
    );
  }
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

/** Bytes written so far below a directory (for progress; a directory pg_dump or pg_basebackup is still filling). */
export function directoryBytes(dir: string): number {
  try {
    return readdirSync(dir).reduce((sum, name) => sum + statSync(path.join(dir, name)).size, 0);
  } catch {
    return 0;
  }
}
