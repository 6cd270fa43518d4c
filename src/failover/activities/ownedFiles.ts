// Writing, as root, into directories the database's OS user owns (the data directory, PgBouncer's
// config directory). That user (or a database superuser through COPY ... TO PROGRAM) can plant a
// symbolic or hard link under any name there, so no open here follows a link, every file is
// checked after it is opened, and new files are created exclusively under unpredictable names.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchownSync, fstatSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';

export interface FileOwner {
  uid: number;
  gid: number;
}

const { O_RDONLY, O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

function unsafe(file: string, problem: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `refusing to use ${file}: it ${problem}. Whoever controls the database's OS user may have planted it to make the worker (root) ` +
      'write or hand over another file; inspect it and put a regular file there',
    'UnsafeFile',
  );
}

/** Opens an existing regular file (no symlink, no second hard link, of `owner` when given). */
function openChecked(file: string, flags: number, owner?: FileOwner): number {
  let fd: number;
  try {
    fd = openSync(file, flags | O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(file, 'is a symbolic link');
    throw err;
  }
  const stats = fstatSync(fd);
  const problem = !stats.isFile()
    ? 'is not a regular file'
    : stats.nlink !== 1
      ? `has ${stats.nlink} hard links`
      : owner && stats.uid !== owner.uid
        ? `belongs to uid ${stats.uid}, not to the data directory's owner ${owner.uid}`
        : undefined;
  if (problem) {
    closeSync(fd);
    throw unsafe(file, problem);
  }
  return fd;
}

function writeAllAndClose(fd: number, text: string): void {
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** Creates a file that did not exist (O_EXCL: not even as a dangling link), owned by `owner`. */
function createExclusively(file: string, text: string, owner: FileOwner, mode: number): void {
  const fd = openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    fchownSync(fd, owner.uid, owner.gid);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  writeAllAndClose(fd, text);
}

export function appendToOwnedFile(file: string, text: string, owner: FileOwner): void {
  writeAllAndClose(openChecked(file, O_WRONLY | O_APPEND, owner), text);
}

/** Writes `file` afresh: whatever stands at its name (a link included) is unlinked, never followed. */
export function recreateOwnedFile(file: string, text: string, owner: FileOwner, mode = 0o600): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  createExclusively(file, text, owner, mode);
}

/** Reads a regular file, with the owner and mode a replacement should keep. */
export function readRegularFile(file: string): { text: string; owner: FileOwner; mode: number } {
  const fd = openChecked(file, O_RDONLY);
  try {
    const { uid, gid, mode } = fstatSync(fd);
    return { text: readFileSync(fd, 'utf8'), owner: { uid, gid }, mode: mode & 0o777 };
  } finally {
    closeSync(fd);
  }
}

/** Replaces `file` in one rename (a reader never sees half of it), through a temporary name nobody can guess. */
export function replaceFileAtomically(file: string, text: string, owner: FileOwner, mode: number): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.pgops-${randomBytes(12).toString('hex')}`);
  createExclusively(temporary, text, owner, mode);
  try {
    renameSync(temporary, file);
  } catch (err) {
    unlinkSync(temporary);
    throw err;
  }
}
