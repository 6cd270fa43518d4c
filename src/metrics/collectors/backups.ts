// The last successful backup of each target, per kind, from the catalog in S3 (the catalog, not the
// worker's memory: it is what a restore would use, and it is the same whichever worker is scraped).
//
// Kinds: `logical` (nightlyBackup's pg_dump, read from the manifests) and `physical` (each
// cluster's base backups, src/archive); the gauges, the dashboard and the alert rules carry the
// `kind` label.
import type { Registry } from 'prom-client';
import type { WorkerConfig } from '../../shared/config';
import { listCatalog } from '../../backup/manifest/store';
import { listBaseBackups } from '../../archive/catalog';
import type { BackupManifest } from '../../backup/manifest';
import { createS3Client } from '../../shared/storage/s3Client';
import { epochSeconds, sampledGauge } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';

export type BackupKind = 'logical' | 'physical';

/** The newest backup of one target and kind, and when the newest verified one finished. */
export interface LastBackup {
  target: string;
  kind: BackupKind;
  startedAt?: string;
  finishedAt: string;
  sizeBytes: number;
  verified: boolean;
  lastVerifiedFinishedAt?: string;
}

export interface BackupKindReader {
  kind: BackupKind;
  /** One entry per target that has at least one backup of this kind. */
  lastBackups(): Promise<LastBackup[]>;
}

export function logicalBackups(config: Pick<WorkerConfig, 's3' | 'encryption'>): BackupKindReader {
  const manifests = new Map<string, BackupManifest>();
  return {
    kind: 'logical',
    async lastBackups() {
      const s3 = createS3Client(config.s3);
      try {
        const newest = new Map<string, LastBackup>();
        // Newest first: a target's first entry is its last backup.
        for (const entry of await listCatalog(s3, config.s3, undefined, config.encryption, manifests)) {
          let last = newest.get(entry.target);
          if (!last) {
            last = {
              target: entry.target,
              kind: 'logical',
              startedAt: manifests.get(entry.manifestKey)?.startedAt,
              finishedAt: entry.finishedAt,
              sizeBytes: entry.sizeBytes,
              verified: entry.verified,
            };
            newest.set(entry.target, last);
          }
          if (entry.verified) last.lastVerifiedFinishedAt ??= entry.finishedAt;
        }
        return [...newest.values()];
      } finally {
        s3.destroy();
      }
    },
  };
}

/** Each cluster's newest base backup (src/archive), as the cluster's physical backup; pg_verifybackup passed before upload. */
export function physicalBackups(config: Pick<WorkerConfig, 's3' | 'clusters' | 'encryption'>): BackupKindReader {
  return {
    kind: 'physical',
    async lastBackups() {
      const s3 = createS3Client(config.s3);
      try {
        const found: LastBackup[] = [];
        for (const cluster of Object.keys(config.clusters)) {
          const newest = (await listBaseBackups(s3, config.s3, config.encryption, cluster)).at(-1)?.record;
          if (!newest) continue;
          found.push({ target: cluster, kind: 'physical', startedAt: newest.startedAt, finishedAt: newest.stoppedAt, sizeBytes: newest.sizeBytes, verified: true, lastVerifiedFinishedAt: newest.stoppedAt });
        }
        return found;
      } finally {
        s3.destroy();
      }
    },
  };
}

/** Every kind of backup pgops can find. */
export function backupKindReaders(config: WorkerConfig): BackupKindReader[] {
  return [logicalBackups(config), physicalBackups(config)];
}

/** One source per kind, so a failing archive index does not hide the logical backups; returns them for the health gauge. */
export function registerBackupMetrics(registry: Registry, readers: BackupKindReader[], options: ScrapeSourceOptions): ScrapeSource<LastBackup[]>[] {
  const sources = readers.map((reader) => new ScrapeSource(`catalog:${reader.kind}`, () => reader.lastBackups(), options));
  const all = new ScrapeSource('catalog', async () => (await Promise.all(sources.map((s) => s.get()))).flatMap((r) => r ?? []), {
    ttlMs: 0,
    deadlineMs: options.deadlineMs + 1_000,
  });
  const gauge = (name: string, help: string, value: (b: LastBackup) => number | undefined) =>
    sampledGauge(registry, all, {
      name,
      help,
      labelNames: ['target', 'kind'],
      *samples(backups) {
        for (const b of backups) {
          const v = value(b);
          if (v !== undefined) yield [{ target: b.target, kind: b.kind }, v];
        }
      },
    });
  gauge('pgops_backup_last_success_timestamp_seconds', 'When the newest backup in the catalog finished (Unix time).', (b) => epochSeconds(b.finishedAt));
  gauge('pgops_backup_last_success_duration_seconds', 'How long the newest backup took, from its start to its end.', (b) => {
    const start = epochSeconds(b.startedAt);
    const end = epochSeconds(b.finishedAt);
    return start !== undefined && end !== undefined ? end - start : undefined;
  });
  gauge('pgops_backup_last_success_size_bytes', "Size of the newest backup's data files in the bucket.", (b) => b.sizeBytes);
  gauge('pgops_backup_last_success_verified', '1 when the newest backup\'s manifest records a passed verification (test restore or listing), 0 when it records none.', (b) =>
    b.verified ? 1 : 0,
  );
  gauge('pgops_backup_last_verified_success_timestamp_seconds', 'When the newest verified backup finished (Unix time).', (b) => epochSeconds(b.lastVerifiedFinishedAt));
  return sources;
}
