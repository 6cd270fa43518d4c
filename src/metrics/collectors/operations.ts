// Restores, failovers and restore drills, counted from their audit trail in S3 at scrape time rather than by
// counters in the worker that ran them: the trail is durable and shared, so every worker reports
// the same totals, a worker's restart does not reset them (a failover is rare enough that a
// reset counter would hide it), and a restore run by another worker still counts. The trail is
// append-only, so the totals only grow, as counters must.
import type { Registry } from 'prom-client';
import type { WorkerConfig } from '../../shared/config';
import type { RestoreAudit } from '../../restore/contract';
import type { FailoverResult, StepTiming } from '../../failover/contract';
import { readAuditRecords, type AuditObjectCache } from '../../shared/storage/auditLog';
import { drillStandings, readDrillRecords, type DrillStanding } from '../../pitr/drillHistory';
import type { DrillRecord } from '../../pitr/contract';
import { epochSeconds, sampledCounter, sampledGauge, type Sample } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';

const RESTORE_OUTCOMES: RestoreAudit['outcome'][] = ['restored', 'rejected', 'expired', 'failed'];
const FAILOVER_OUTCOMES: FailoverResult['outcome'][] = ['promoted', 'cancelled', 'failed'];

/** The newest record of each key, by finishedAt. */
function lastOf<R extends { finishedAt: string }>(records: R[], key: (r: R) => string): Map<string, R> {
  const last = new Map<string, R>();
  for (const r of records) {
    const seen = last.get(key(r));
    if (!seen || r.finishedAt > seen.finishedAt) last.set(key(r), r);
  }
  return last;
}

function* counts<R>(records: R[], labels: (r: R) => Record<string, string>): Iterable<Sample<string>> {
  const tally = new Map<string, { labels: Record<string, string>; n: number }>();
  for (const r of records) {
    const l = labels(r);
    const key = JSON.stringify(l);
    const entry = tally.get(key) ?? { labels: l, n: 0 };
    entry.n++;
    tally.set(key, entry);
  }
  for (const { labels: l, n } of tally.values()) yield [l, n];
}

/**
 * How long clients could not write: from the first step that takes the primary away (confirming
 * its failure, or stopping it for a switchover) to the end of repointing. For an unplanned failover
 * the outage began before the confirmation did, so this is its lower bound.
 */
export function failoverDowntimeSeconds(result: Pick<FailoverResult, 'steps'>): number | undefined {
  const at = (s: StepTiming) => Date.parse(s.startedAt);
  const first = result.steps.find((s) => s.step === 'confirm failure' || s.step === 'stop primary cleanly');
  const repoint = result.steps.find((s) => s.step === 'repoint clients' && s.outcome !== 'running');
  if (!first || !repoint) return undefined;
  return (at(repoint) + repoint.ms - at(first)) / 1000;
}

export function registerOperationMetrics(registry: Registry, config: Pick<WorkerConfig, 's3'>, options: ScrapeSourceOptions): ScrapeSource<unknown>[] {
  const restoreCache: AuditObjectCache = new Map();
  const failoverCache: AuditObjectCache = new Map();
  const drillCache: AuditObjectCache = new Map();
  const restores = new ScrapeSource('audit:restores', async () => (await readAuditRecords(config, 'restores', restoreCache)) as RestoreAudit[], options);
  const drills = new ScrapeSource('audit:drills', () => readDrillRecords(config, drillCache), options);
  const failovers = new ScrapeSource('audit:failovers', async () => (await readAuditRecords(config, 'failovers', failoverCache)) as FailoverResult[], options);

  sampledCounter(registry, restores, {
    name: 'pgops_restores_total',
    help: 'Guarded restores recorded in the audit trail, by target and outcome.',
    labelNames: ['target', 'outcome'],
    samples: (records) => counts(records, (r) => ({ target: r.target, outcome: r.outcome })),
  });
  sampledGauge(registry, restores, {
    name: 'pgops_restore_last_outcome',
    help: "1 for the outcome of the target's last guarded restore, 0 for the others.",
    labelNames: ['target', 'outcome'],
    *samples(records) {
      for (const [target, last] of lastOf(records, (r) => r.target)) for (const outcome of RESTORE_OUTCOMES) yield [{ target, outcome }, last.outcome === outcome ? 1 : 0];
    },
  });
  sampledGauge(registry, restores, {
    name: 'pgops_restore_last_timestamp_seconds',
    help: "When the target's last guarded restore ended (Unix time).",
    labelNames: ['target'],
    *samples(records) {
      for (const [target, last] of lastOf(records, (r) => r.target)) yield [{ target }, epochSeconds(last.finishedAt) ?? 0];
    },
  });
  sampledGauge(registry, restores, {
    name: 'pgops_restore_last_downtime_seconds',
    help: "How long the target's last completed restore refused connections during its swap.",
    labelNames: ['target'],
    *samples(records) {
      const swapped = records.filter((r) => r.outcome === 'restored' && r.downtimeMs !== undefined);
      for (const [target, last] of lastOf(swapped, (r) => r.target)) yield [{ target }, last.downtimeMs! / 1000];
    },
  });

  sampledCounter(registry, failovers, {
    name: 'pgops_failovers_total',
    help: 'Failovers and switchovers recorded in the audit trail, by cluster, mode and outcome.',
    labelNames: ['cluster', 'mode', 'outcome'],
    samples: (records) => counts(records, (r) => ({ cluster: r.cluster, mode: r.mode, outcome: r.outcome })),
  });
  sampledGauge(registry, failovers, {
    name: 'pgops_failover_last_outcome',
    help: "1 for the outcome of the cluster's last failover or switchover, 0 for the others.",
    labelNames: ['cluster', 'outcome'],
    *samples(records) {
      for (const [cluster, last] of lastOf(records, (r) => r.cluster)) for (const outcome of FAILOVER_OUTCOMES) yield [{ cluster, outcome }, last.outcome === outcome ? 1 : 0];
    },
  });
  sampledGauge(registry, failovers, {
    name: 'pgops_failover_last_timestamp_seconds',
    help: "When the cluster's last failover or switchover ended (Unix time).",
    labelNames: ['cluster'],
    *samples(records) {
      for (const [cluster, last] of lastOf(records, (r) => r.cluster)) yield [{ cluster }, epochSeconds(last.finishedAt) ?? 0];
    },
  });
  sampledGauge(registry, failovers, {
    name: 'pgops_failover_last_downtime_seconds',
    help: "Write outage of the cluster's last promotion: from confirming the failure (or stopping the primary) to clients repointed.",
    labelNames: ['cluster', 'mode'],
    *samples(records) {
      const promoted = records.filter((r) => r.outcome === 'promoted' && Array.isArray(r.steps) && failoverDowntimeSeconds(r) !== undefined);
      for (const [cluster, last] of lastOf(promoted, (r) => r.cluster)) yield [{ cluster, mode: last.mode }, failoverDowntimeSeconds(last)!];
    },
  });
  registerDrillMetrics(registry, drills);
  return [restores, failovers, drills];
}

/** The alert rule PgopsRestoreDrillFailed compares the two: a failure newer than the last pass. */
function registerDrillMetrics(registry: Registry, drills: ScrapeSource<DrillRecord[]>): void {
  const gauge = (name: string, help: string, pick: (s: DrillStanding) => DrillRecord | undefined) =>
    sampledGauge(registry, drills, {
      name,
      help,
      labelNames: ['target'],
      *samples(records) {
        for (const standing of drillStandings(records).values()) {
          const at = epochSeconds(pick(standing)?.finishedAt);
          if (at !== undefined) yield [{ target: standing.cluster }, at];
        }
      },
    });
  gauge('pgops_restore_drill_last_success_timestamp_seconds', "When the cluster's last passed restore drill ended (Unix time).", (s) => s.lastPassed);
  gauge('pgops_restore_drill_last_failure_timestamp_seconds', "When the cluster's last failed restore drill ended (Unix time).", (s) => s.lastFailed);
}
