// Disk free where a full disk stops the database or the backups: each server's data directory,
// its WAL directory (often a mount of its own), and the worker's staging directory.
import { realpath, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { WorkerConfig } from '../../shared/config';
import type { DoctorLine } from '../contract';

const WARN_FREE = 0.15;
const FAIL_FREE = 0.05;

export function diskSpaceActivities(config: WorkerConfig) {
  async function checkDisks(): Promise<DoctorLine[]> {
    const places: [string, string][] = [['staging', config.stagingDir]];
    for (const [name, target] of Object.entries(config.targets)) {
      if (!target.server) continue;
      places.push([`${name} data`, target.server.dataDir], [`${name} WAL`, path.join(target.server.dataDir, 'pg_wal')]);
    }
    return Promise.all(places.map(([what, dir]) => diskLine(what, dir)));
  }
  return { checkDisks };
}

async function diskLine(what: string, dir: string): Promise<DoctorLine> {
  try {
    const fs = await statfs(await realpath(dir));
    const free = fs.bavail * fs.bsize;
    const share = free / (fs.blocks * fs.bsize);
    const status = share < FAIL_FREE ? 'fail' : share < WARN_FREE ? 'warn' : 'ok';
    return {
      check: 'disk',
      subject: `${what} ${dir}`,
      status,
      saw: `${(free / 1e9).toFixed(1)} GB free (${(share * 100).toFixed(0)}%)`,
      ...(status === 'ok' ? {} : { next: 'free space now: a full disk stops the server (WAL) or the backups (staging); prune old backups, drop unused slots' }),
    };
  } catch (err) {
    return { check: 'disk', subject: `${what} ${dir}`, status: 'warn', saw: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, next: 'run the doctor on the servers\' host, or fix the path in the configuration' };
  }
}
