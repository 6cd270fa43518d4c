// When each target's last backup failed, from Temporal's visibility store: a failed nightlyBackup
// publishes nothing to the catalog, so its run is the only record of it. Runs carry the target in
// the PgopsTarget search attribute (a cluster role's backups carry the cluster's name). Only this
// worker's task queue: another deployment sharing the namespace may back up a target of the same name.
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { NIGHTLY_BACKUP_WORKFLOW } from '../../backup/contract';
import { PGOPS_TARGET } from '../../shared/temporal/searchAttributes';
import { sampledGauge } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';

/** Visibility lists closed runs newest first; a few more than one guard against ties in close time. */
const RUNS_READ = 5;

/** The failed or timed-out nightlyBackup runs of `target` that closed last, newest first. */
export async function lastFailedBackups(temporal: Client, taskQueue: string, target: string, limit = RUNS_READ): Promise<WorkflowExecutionInfo[]> {
  // Target and cluster names are [a-z0-9_-] (checked by the config loader), safe inside quotes.
  const query = `WorkflowType = '${NIGHTLY_BACKUP_WORKFLOW}' AND ExecutionStatus IN ('Failed', 'TimedOut') AND ${PGOPS_TARGET.name} = '${target}' AND TaskQueue = '${taskQueue.replace(/'/g, "\\'")}'`;
  const runs: WorkflowExecutionInfo[] = [];
  for await (const run of temporal.workflow.list({ query, pageSize: limit })) {
    runs.push(run);
    if (runs.length >= limit) break;
  }
  return runs.sort((a, b) => (b.closeTime?.getTime() ?? 0) - (a.closeTime?.getTime() ?? 0));
}

export function registerBackupFailureMetrics(registry: Registry, temporal: Client, taskQueue: string, targets: string[], options: ScrapeSourceOptions): ScrapeSource<unknown>[] {
  const source = new ScrapeSource(
    'temporal:backup-failures',
    async () => {
      const found = await Promise.all(targets.map(async (target) => ({ target, runs: await lastFailedBackups(temporal, taskQueue, target) })));
      return found.filter((f) => f.runs[0]?.closeTime).map((f) => ({ target: f.target, closedAt: f.runs[0].closeTime!, workflowId: f.runs[0].workflowId }));
    },
    options,
  );
  sampledGauge(registry, source, {
    name: 'pgops_backup_last_failure_timestamp_seconds',
    help: 'When the last failed (or timed-out) nightlyBackup of the target ended (Unix time), from Temporal visibility.',
    labelNames: ['target'],
    *samples(failures) {
      for (const f of failures) yield [{ target: f.target }, f.closedAt.getTime() / 1000];
    },
  });
  return [source];
}
