// The spool: the directory pg_receivewal writes into (<PGOPS_WAL_SPOOL_DIR>/<cluster>/<system
// identifier>). A file is complete when its name is 24 hex digits and its size the segment size;
// `<segment>.partial` is being written (or, when not the newest, abandoned); `.tmp` files are
// pg_receivewal's own and never touched.
import { mkdir, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkerConfig } from '../../shared/config';
import { parseSegmentName } from '../layout';

export function spoolDir(config: Pick<WorkerConfig, 'walSpoolDir'>, cluster: string, systemIdentifier: string): string {
  return path.join(config.walSpoolDir, cluster, systemIdentifier);
}

export interface SpoolSegment {
  name: string;
  file: string;
  timeline: number;
  segno: bigint;
  bytes: number;
}

export interface SpoolContents {
  /** Complete segments, oldest (timeline, segment) first. */
  complete: SpoolSegment[];
  /** Every .partial, oldest first: all but the last are abandoned. */
  partials: SpoolSegment[];
  histories: { timeline: number; file: string }[];
  /** Files of a segment's name but not yet its full size: being renamed, look again later. */
  incomplete: number;
}

const byPosition = (a: SpoolSegment, b: SpoolSegment) => (a.timeline - b.timeline) || (a.segno < b.segno ? -1 : a.segno > b.segno ? 1 : 0);

export async function readSpool(dir: string, segmentBytes: number): Promise<SpoolContents> {
  const contents: SpoolContents = { complete: [], partials: [], histories: [], incomplete: 0 };
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const history = /^([0-9A-F]{8})\.history$/.exec(name);
    if (history) {
      contents.histories.push({ timeline: parseInt(history[1], 16), file: path.join(dir, name) });
      continue;
    }
    const segmentName = name.endsWith('.partial') ? name.slice(0, -'.partial'.length) : name;
    const parsed = parseSegmentName(segmentName, segmentBytes);
    if (!parsed) continue;
    const file = path.join(dir, name);
    const bytes = await stat(file).then((s) => s.size, () => -1);
    if (bytes < 0) continue; // renamed under us
    const entry = { name: segmentName, file, ...parsed, bytes };
    if (name.endsWith('.partial')) contents.partials.push(entry);
    else if (bytes === segmentBytes) contents.complete.push(entry);
    else contents.incomplete += 1;
  }
  contents.complete.sort(byPosition);
  contents.partials.sort(byPosition);
  contents.histories.sort((a, b) => a.timeline - b.timeline);
  return contents;
}

export function hasWal(contents: SpoolContents): boolean {
  return contents.complete.length > 0 || contents.partials.length > 0;
}

export async function prepareSpool(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Makes pg_receivewal start at `segment`: it starts at the newest segment in its directory, and
 * rewrites a .partial from the segment's start (verified byte-identical). Only in an empty spool.
 */
export async function seedSpool(dir: string, segment: string, segmentBytes: number): Promise<string> {
  const file = path.join(dir, `${segment}.partial`);
  await writeFile(file, '', { mode: 0o600 });
  await truncate(file, segmentBytes);
  return file;
}

/** Removes every WAL file (after they are all in S3): pg_receivewal starts afresh. */
export async function clearSpool(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (/^[0-9A-F]{24}(\.partial)?$|^[0-9A-F]{8}\.history(\.tmp)?$|\.partial\.tmp$/.test(name)) await rm(path.join(dir, name), { force: true });
  }
}
