// Where each cluster stands with its restore drills, read from the drills' audit trail (every drill
// appends its record there, passed or failed, even one that failed before it found a backup; the
// drill.json beside a base backup holds only that backup's latest). Used by `pgops doctor` and the
// worker's metrics, so both tell the same story.
import type { WorkerConfig } from '../shared/config';
import { readAuditRecords, type AuditObjectCache } from '../shared/storage/auditLog';
import { DRILL_AUDIT_KIND, type DrillRecord } from './contract';

/** The schedule runs a drill a day; two days without a passed one means it stopped or keeps failing. */
export const DRILL_STALE_AFTER_MS = 48 * 3_600_000;

export interface DrillStanding {
  cluster: string;
  last: DrillRecord;
  lastPassed?: DrillRecord;
  lastFailed?: DrillRecord;
}

function isDrillRecord(value: object): value is DrillRecord {
  const r = value as Partial<DrillRecord>;
  return typeof r.cluster === 'string' && typeof r.ok === 'boolean' && typeof r.finishedAt === 'string' && typeof r.workflowId === 'string' && Array.isArray(r.checks);
}

export async function readDrillRecords(config: Pick<WorkerConfig, 's3'>, cache?: AuditObjectCache): Promise<DrillRecord[]> {
  return (await readAuditRecords(config, DRILL_AUDIT_KIND, cache)).filter(isDrillRecord);
}

/** Per cluster: the newest drill, and the newest that passed and that failed (by finishedAt). */
export function drillStandings(records: DrillRecord[]): Map<string, DrillStanding> {
  const newer = (a: DrillRecord | undefined, b: DrillRecord) => (!a || b.finishedAt > a.finishedAt ? b : a);
  const standings = new Map<string, DrillStanding>();
  for (const record of records) {
    const seen = standings.get(record.cluster);
    const standing: DrillStanding = seen ?? { cluster: record.cluster, last: record };
    standing.last = newer(standing.last, record);
    if (record.ok) standing.lastPassed = newer(standing.lastPassed, record);
    else standing.lastFailed = newer(standing.lastFailed, record);
    standings.set(record.cluster, standing);
  }
  return standings;
}
