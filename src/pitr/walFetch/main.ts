// The restore_command of an instance a point-in-time restore recovers (run by PostgreSQL as the
// server's OS user, through the restore-command.sh pgops writes beside the data directory):
//
//   main.ts <env file> <%f> <%p>
//   main.ts --read-ahead <env file>      (started by the first, detached: readAhead.ts)
//
// It fetches the file PostgreSQL asks for and makes sure the read-ahead runs, which keeps the next
// segments in the cache the shell wrapper serves from while replay goes on, so replay is not one
// S3 round trip (and one process start) per segment, nor waits for the next batch. The env file
// holds the bucket's settings and credentials, and the encryption keys when the archive is sealed,
// readable by the server's user only: nothing secret is on a command line. Every fetch and every failure is appended to
// the instance's fetch log, where the restore workflow reads why replay stopped.
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { parse as parseEnvFile } from 'dotenv';
import { loadKeyRing, loadS3 } from '../../shared/config';
import { createS3Client } from '../../shared/storage/s3Client';
import { parseLsn, parseSegmentName } from '../../archive/layout';
import { fetchWalFile, WalObjectCorrupt, type FetchOptions } from './fetchWal';
import { markWanted, readAheadRunning, runReadAhead } from './readAhead';

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

const USAGE = 'usage: wal-fetch <env file> <%f> <%p> | wal-fetch --read-ahead <env file>';

async function main(args: string[]): Promise<number> {
  if (args[0] === '--read-ahead' && args[1]) return readAheadMain(args[1]);
  const [envFile, name, destination] = args;
  if (!envFile || !name || !destination) {
    console.error(USAGE);
    return 2;
  }
  const { env, options, record } = settings(envFile);
  try {
    const started = Date.now();
    const fetched = await fetchWalFile(options, name, destination);
    if (!fetched) {
      record({ event: 'missing', name });
      return 1;
    }
    record({ event: 'fetched', name, key: fetched.key, bytes: fetched.bytes, ms: Date.now() - started });
    if (parseSegmentName(name, options.segmentBytes) && !fetched.partial) {
      const cache = env.PGOPS_WAL_FETCH_CACHE!;
      markWanted(cache, name);
      if (!readAheadRunning(cache)) startReadAhead(envFile);
    }
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
    options.s3.destroy();
  }
}

/** This program again (under the same runtime flags: tsx in a checkout), detached from PostgreSQL's wait. */
function startReadAhead(envFile: string): void {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], '--read-ahead', envFile], { detached: true, stdio: 'ignore' });
  child.unref();
}

async function readAheadMain(envFile: string): Promise<number> {
  const { env, options, record } = settings(envFile);
  try {
    await runReadAhead({ fetch: options, cache: env.PGOPS_WAL_FETCH_CACHE!, window: Number(env.PGOPS_WAL_FETCH_READ_AHEAD ?? 16), record });
    return 0;
  } finally {
    options.s3.destroy();
  }
}

function settings(envFile: string) {
  const env = parseEnvFile(readFileSync(envFile));
  const log = env.PGOPS_WAL_FETCH_LOG!;
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
  return { env, options, record };
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`pgops wal-fetch: ${err.message}`);
    process.exit(1);
  },
);
