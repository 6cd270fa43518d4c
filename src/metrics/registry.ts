// Everything the worker's /metrics shows: one collector per source of truth (catalog, Temporal
// visibility, the servers, the audit trail, the filesystems), all read at scrape time, and the
// health of each source, so that a series gone missing can be told from a source that failed.
import type { Client } from '@temporalio/client';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { WorkerConfig } from '../shared/config';
import { registerApprovalMetrics } from './collectors/approvals';
import { registerBackupFailureMetrics } from './collectors/backupFailures';
import { backupKindReaders, registerBackupMetrics } from './collectors/backups';
import { registerDiskMetrics, watchedDirectories } from './collectors/disk';
import { registerEmbeddingMetrics } from './collectors/embeddings';
import { registerOperationMetrics } from './collectors/operations';
import { registerReplicationMetrics } from './collectors/replication';
import type { ScrapeSource, ScrapeSourceOptions } from './scrapeSource';

/** A scrape storm reads S3, Temporal and PostgreSQL at most once per this. */
export const DEFAULT_CACHE_MS = 15_000;
/** Below Prometheus' default scrape timeout (10 s). */
export const DEFAULT_DEADLINE_MS = 8_000;

export interface MetricsOptions {
  /** The task queue whose running workflows are reported (default: the worker's). */
  taskQueue?: string;
  cacheMs?: number;
  deadlineMs?: number;
}

export function createMetricsRegistry(config: WorkerConfig, temporal: Client, options: MetricsOptions = {}): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const taskQueue = options.taskQueue ?? config.temporal.taskQueue;
  const scrape: ScrapeSourceOptions = { ttlMs: options.cacheMs ?? DEFAULT_CACHE_MS, deadlineMs: options.deadlineMs ?? DEFAULT_DEADLINE_MS };
  // A backup of a cluster role is catalogued, and its runs searchable, under the cluster's name.
  const backupTargets = [...Object.keys(config.targets), ...Object.keys(config.clusters)];
  const sources: ScrapeSource<unknown>[] = [
    ...registerBackupMetrics(registry, backupKindReaders(config), scrape),
    ...registerBackupFailureMetrics(registry, temporal, taskQueue, backupTargets, scrape),
    ...registerReplicationMetrics(registry, config, scrape),
    ...registerOperationMetrics(registry, config, scrape),
    ...registerEmbeddingMetrics(registry, temporal, taskQueue, scrape),
    ...registerApprovalMetrics(registry, temporal, taskQueue, scrape),
    ...registerDiskMetrics(registry, watchedDirectories(config), scrape),
  ];
  registerSourceHealth(registry, sources);
  return registry;
}

function registerSourceHealth(registry: Registry, sources: ScrapeSource<unknown>[]): void {
  const health = () => Promise.all(sources.map(async (s) => ({ source: s.name, ...(await s.health()) })));
  new Gauge({
    name: 'pgops_metrics_source_up',
    help: '1 when the last reading of the source (S3 catalog or audit trail, Temporal, a cluster\'s servers, the filesystems) succeeded in time.',
    labelNames: ['source'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const h of await health()) this.set({ source: h.source }, h.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pgops_metrics_source_read_seconds',
    help: 'How long the last reading of the source took.',
    labelNames: ['source'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const h of await health()) if (h.seconds !== undefined) this.set({ source: h.source }, h.seconds);
    },
  });
}
