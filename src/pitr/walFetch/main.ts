// The restore_command of an instance a point-in-time restore recovers (run by PostgreSQL as the
// server's OS user, through the restore-command.sh pgops writes beside the data directory):
//
//   main.ts <env file> <%f> <%p>
//
// It fetches the file PostgreSQL asks for, then reads ahead the next segments into the cache the
// shell wrapper serves from, so replay is not one S3 round trip (and one process start) per
// segment. The env file holds the bucket's settings and credentials, and the encryption keys
// when the archive is sealed, readable by the server's user only: nothing secret is on a command line. Every fetch and every failure is appended to
// the instance's fetch log, where the restore workflow reads why replay stopped.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseEnvFile } from 'dotenv';
import { loadKeyRing, loadS3 } from '../../shared/config';
import { createS3Client } from '../../shared/storage/s3Client';
import { parseLsn, parseSegmentName, segmentName } from '../../archive/layout';
import { fetchWalFile, WalObjectCorrupt, type FetchOptions } from './fetchWal';

export interface WalFetchEvent {
  at: string;
  event: 'fetched' | 'read-ahead' | 'missing' | 'corrupt' | 'error';
  name: string;
  key?: string;
  bytes?: number;
  ms?: number;
  error?: string;
  /** Found while reading ahead: PostgreSQL has not asked for it (yet). */
  ahead?: boolean;
}

const PARALLEL_READ_AHEAD = 4;

async function main([envFile, name, destination]: string[]): Promise<number> {
  if (!envFile || !name || !destination) {
    console.error('usage: wal-fetch <env file> <%f> <%p>');
    return 2;
  }
  const env = parseEnvFile(readFileSync(envFile));
  const log = env.PGOPS_WAL_FETCH_LOG!;
  const cache = env.PGOPS_WAL_FETCH_CACHE!;
  const record = (event: Omit<WalFetchEvent, 'at'>) => appendFileSync(log, `${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`);
  const s3 = createS3Client(loadS3(env));
  const options: FetchOptions = {
    s3,
    bucket: env.PGOPS_S3_BUCKET!,
    root: env.PGOPS_WAL_FETCH_ROOT!,
    segmentBytes: Number(env.PGOPS_WAL_FETCH_SEGMENT_BYTES),
    zstdBin: env.PGOPS_ZSTD_BIN ?? 'zstd',
    // Only from the env file, never from a command line: the keys that open the sealed archive.
    ring: loadKeyRing(env),
    allowPartial: true,
    stop: env.PGOPS_WAL_FETCH_STOP_LSN ? { timeline: Number(env.PGOPS_WAL_FETCH_STOP_TIMELINE), lsn: parseLsn(env.PGOPS_WAL_FETCH_STOP_LSN) } : undefined,
  };
  try {
    const started = Date.now();
    const fetched = await fetchWalFile(options, name, destination);
    if (!fetched) {
      record({ event: 'missing', name });
      return 1;
    }
    record({ event: 'fetched', name, key: fetched.key, bytes: fetched.bytes, ms: Date.now() - started });
    const segment = parseSegmentName(name, options.segmentBytes);
    if (segment && !fetched.partial) await readAhead(options, segment.timeline, segment.segno, Number(env.PGOPS_WAL_FETCH_READ_AHEAD ?? 16), cache, record);
    return 0;
  } catch (err) {
    record(
      err instanceof WalObjectCorrupt
        ? { event: 'corrupt', name, key: err.key, error: err.message }
        : { event: 'error', name, error: (err as Error).message },
    );
    console.error(`pgops wal-fetch ${name}: ${(err as Error).message}`);
    return 1;
  } finally {
    s3.destroy();
  }
}

/**
 * The next `count` complete segments of the timeline into the cache, a few at a time, stopping at
 * the first one the archive does not have yet. A corrupt one is logged and left out: when
 * PostgreSQL asks for it, the fetch fails with the reason.
 */
async function readAhead(options: FetchOptions, timeline: number, segno: bigint, count: number, cache: string, record: (e: Omit<WalFetchEvent, 'at'>) => void): Promise<void> {
  const names = Array.from({ length: count }, (_, i) => segmentName(timeline, segno + BigInt(i + 1), options.segmentBytes)).filter((n) => !existsSync(path.join(cache, n)));
  let next = 0;
  let ended = false;
  const worker = async () => {
    while (!ended && next < names.length) {
      const name = names[next++];
      const started = Date.now();
      try {
        const fetched = await fetchWalFile({ ...options, allowPartial: false }, name, path.join(cache, name));
        if (!fetched) ended = true;
        else record({ event: 'read-ahead', name, key: fetched.key, bytes: fetched.bytes, ms: Date.now() - started });
      } catch (err) {
        ended = true;
        const error = (err as Error).message;
        record(err instanceof WalObjectCorrupt ? { event: 'corrupt', name, key: err.key, error, ahead: true } : { event: 'error', name, error, ahead: true });
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_READ_AHEAD }, worker));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`pgops wal-fetch: ${err.message}`);
    process.exit(1);
  },
);
