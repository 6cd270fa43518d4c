// The read-ahead of the wal-fetch program: one background process per recovering instance that
// keeps the next segments in the cache while PostgreSQL replays the ones before them.
//
// Why a process of its own: restore_command blocks replay until it exits. Reading ahead inside it
// made replay and fetching take turns (replay 16 segments from the cache, then wait while the
// next 16 were downloaded and decompressed). Detached, the fetching overlaps the replay.
//
// It learns where replay is from the cache itself (a segment it placed there and that is gone has
// been taken by the shell wrapper) and from the name the last cache miss wrote to `.wanted`. It
// exits when the cache directory goes (the instance was removed), or after IDLE_EXIT_MS without
// replay taking anything (paused at the target, or stopped). One per cache: a pid lock file.
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseSegmentName, segmentName } from '../../archive/layout';
import { fetchWalFile, WalObjectCorrupt, type FetchOptions } from './fetchWal';
import type { WalFetchEvent } from './main';

const PARALLEL_FETCHES = 4;
const IDLE_EXIT_MS = 30_000;
const POLL_MS = 50;
/** After the archive had no next segment (it was behind): ask again this much later. */
const END_RETRY_MS = 2_000;

const WANTED_FILE = '.wanted';
const LOCK_FILE = '.read-ahead.pid';

/** Called by a cache miss: tells the read-ahead where replay is (atomically: it may be reading). */
export function markWanted(cache: string, name: string): void {
  const temporary = path.join(cache, `${WANTED_FILE}.${process.pid}`);
  writeFileSync(temporary, name, { mode: 0o600 });
  renameSync(temporary, path.join(cache, WANTED_FILE));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a live read-ahead holds the cache's lock. */
export function readAheadRunning(cache: string): boolean {
  const pid = Number(readFileSafe(path.join(cache, LOCK_FILE)));
  return Number.isInteger(pid) && pid > 0 && alive(pid);
}

function readFileSafe(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Takes the cache's lock for this process; false when a live read-ahead holds it. */
function takeLock(cache: string): boolean {
  const lock = path.join(cache, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (readAheadRunning(cache)) return false;
      rmSync(lock, { force: true }); // left by a read-ahead that was killed
    }
  }
  return false;
}

export interface ReadAheadOptions {
  fetch: FetchOptions;
  cache: string;
  /** How many segments past replay's position to keep in the cache. */
  window: number;
  record: (event: Omit<WalFetchEvent, 'at'>) => void;
}

export async function runReadAhead(options: ReadAheadOptions): Promise<void> {
  const { cache, fetch, record } = options;
  if (!takeLock(cache)) return;
  const placed = new Set<string>();
  const refused = new Set<string>();
  let position: { timeline: number; segno: bigint } | undefined;
  let lastActivity = Date.now();
  let endedAt: { segno: bigint; at: number } | undefined;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const advance = (name: string) => {
    const segment = parseSegmentName(name, fetch.segmentBytes);
    if (!segment) return;
    if (!position || segment.timeline !== position.timeline || segment.segno > position.segno) position = segment;
    lastActivity = Date.now();
  };

  try {
    while (existsSync(cache) && Date.now() - lastActivity < IDLE_EXIT_MS) {
      const wanted = readFileSafe(path.join(cache, WANTED_FILE));
      if (wanted) advance(wanted);
      for (const name of placed) {
        if (existsSync(path.join(cache, name))) continue;
        placed.delete(name);
        advance(name);
      }
      if (!position) {
        await sleep(POLL_MS);
        continue;
      }
      dropPassed(options, position, placed);
      const { timeline, segno } = position;
      const retryEnd = !endedAt || Date.now() - endedAt.at > END_RETRY_MS;
      const due = Array.from({ length: options.window }, (_, i) => segno + BigInt(i + 1))
        .filter((s) => retryEnd || s < endedAt!.segno)
        .map((s) => segmentName(timeline, s, fetch.segmentBytes))
        .filter((name) => !placed.has(name) && !refused.has(name) && !existsSync(path.join(cache, name)))
        .slice(0, PARALLEL_FETCHES);
      if (due.length === 0) {
        await sleep(POLL_MS);
        continue;
      }
      endedAt = undefined;
      await Promise.all(
        due.map(async (name) => {
          const started = Date.now();
          try {
            const fetched = await fetchWalFile({ ...fetch, allowPartial: false }, name, path.join(cache, name));
            if (!fetched) {
              const s = parseSegmentName(name, fetch.segmentBytes)!.segno;
              if (!endedAt || s < endedAt.segno) endedAt = { segno: s, at: Date.now() };
              return;
            }
            placed.add(name);
            record({ event: 'read-ahead', name, key: fetched.key, bytes: fetched.bytes, ms: Date.now() - started });
          } catch (err) {
            // Left for PostgreSQL to ask for: its own fetch then fails with the reason.
            refused.add(name);
            const error = (err as Error).message;
            record(err instanceof WalObjectCorrupt ? { event: 'corrupt', name, key: err.key, error, ahead: true } : { event: 'error', name, error, ahead: true });
          }
        }),
      );
    }
  } finally {
    try {
      unlinkSync(path.join(cache, LOCK_FILE));
    } catch {
      // the cache went with the instance
    }
  }
}

/** Segments read ahead that replay went past by fetching them itself (a miss while they were on their way). */
function dropPassed(options: ReadAheadOptions, position: { timeline: number; segno: bigint }, placed: Set<string>): void {
  for (const name of readdirSync(options.cache)) {
    const segment = parseSegmentName(name, options.fetch.segmentBytes);
    if (!segment || segment.timeline !== position.timeline || segment.segno > position.segno) continue;
    rmSync(path.join(options.cache, name), { force: true });
    placed.delete(name);
  }
}
