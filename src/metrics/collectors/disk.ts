// Free space on the filesystems pgops writes to: the staging directory (dumps, fetched backups) and
// each data directory of a server on this machine (PGOPS_TARGET_<NAME>_DATA_DIR). statfs is cheap;
// it is read at each scrape. A directory not created yet is measured on the filesystem that will
// hold it (its nearest existing parent).
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Registry } from 'prom-client';
import type { WorkerConfig } from '../../shared/config';
import { sampledGauge } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';

export interface WatchedDirectory {
  /** `staging` or `data`. */
  dir: 'staging' | 'data';
  /** The server's target name for a data directory, empty for staging. */
  target: string;
  path: string;
}

export interface DirectorySpace extends WatchedDirectory {
  freeBytes: number;
  sizeBytes: number;
}

export function watchedDirectories(config: Pick<WorkerConfig, 'stagingDir' | 'targets'>): WatchedDirectory[] {
  return [
    { dir: 'staging', target: '', path: config.stagingDir },
    ...Object.values(config.targets).flatMap((t) => (t.server ? [{ dir: 'data' as const, target: t.name, path: t.server.dataDir }] : [])),
  ];
}

async function spaceOf(dir: string): Promise<{ freeBytes: number; sizeBytes: number }> {
  for (let p = dir; ; p = path.dirname(p)) {
    try {
      const fs = await statfs(p);
      // bavail, not bfree: the blocks reserved for root are not ours to fill.
      return { freeBytes: fs.bavail * fs.bsize, sizeBytes: fs.blocks * fs.bsize };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || p === path.dirname(p)) throw err;
    }
  }
}

export async function directorySpace(dirs: WatchedDirectory[]): Promise<DirectorySpace[]> {
  const measured = await Promise.all(dirs.map(async (d) => ({ ...d, ...(await spaceOf(d.path).catch(() => undefined)) })));
  return measured.filter((d): d is DirectorySpace => d.freeBytes !== undefined);
}

export function registerDiskMetrics(registry: Registry, dirs: WatchedDirectory[], options: ScrapeSourceOptions): ScrapeSource<unknown>[] {
  const source = new ScrapeSource('disk', () => directorySpace(dirs), options);
  const gauge = (name: string, help: string, value: (d: DirectorySpace) => number) =>
    sampledGauge(registry, source, {
      name,
      help,
      labelNames: ['dir', 'target', 'path'],
      *samples(spaces) {
        for (const d of spaces) yield [{ dir: d.dir, target: d.target, path: d.path }, value(d)];
      },
    });
  gauge('pgops_disk_free_bytes', 'Bytes free (for unprivileged users) on the filesystem of a staging or data directory.', (d) => d.freeBytes);
  gauge('pgops_disk_size_bytes', 'Size of the filesystem of a staging or data directory.', (d) => d.sizeBytes);
  gauge('pgops_disk_free_ratio', 'Free share (0-1) of the filesystem of a staging or data directory.', (d) => (d.sizeBytes > 0 ? d.freeBytes / d.sizeBytes : 0));
  return [source];
}
