// Which remote backups a retention policy keeps, and why. Pure and deterministic: the prune
// activity applies it, workflows validate policies with it, tests pin its behaviour.
import type { RetentionDecision, RetentionPolicy } from './contract';

export const DEFAULT_RETENTION: RetentionPolicy = {
  keepLast: 7,
  keepDaily: 7,
  keepWeekly: 4,
  keepMonthly: 6,
  minKeep: 3,
  localKeepDays: 7,
};

export class RetentionInvalid extends Error {
  override name = 'RetentionInvalid';
}

export function resolveRetention(overrides: Partial<RetentionPolicy> = {}): RetentionPolicy {
  const policy = { ...DEFAULT_RETENTION, ...overrides };
  for (const [name, value] of Object.entries(policy)) {
    if (!Number.isInteger(value) || value < 0) throw new RetentionInvalid(`retention.${name}=${value} must be a whole number ≥ 0`);
  }
  if (policy.minKeep < 1) {
    throw new RetentionInvalid(`retention.minKeep=${policy.minKeep} would allow deleting every backup; it must be at least 1`);
  }
  return policy;
}

export interface RetainableBackup {
  backupId: string;
  finishedAt: string;
  verified: boolean;
}

const day = (d: Date) => d.toISOString().slice(0, 10);
const month = (d: Date) => d.toISOString().slice(0, 7);
/** ISO-8601 week, e.g. 2026-W48 (weeks start on Monday, in UTC). */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** Decides every backup's fate, newest first. Buckets (day, week, month) are in UTC. */
export function planRetention(backups: RetainableBackup[], policy: RetentionPolicy): RetentionDecision[] {
  const newestFirst = [...backups].sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
  const reasons = new Map<string, string[]>(newestFirst.map((b) => [b.backupId, []]));
  const keep = (b: RetainableBackup, reason: string) => reasons.get(b.backupId)!.push(reason);

  newestFirst.slice(0, policy.keepLast).forEach((b, i) => keep(b, `last ${i + 1} of ${policy.keepLast}`));
  const tiers: [string, number, (d: Date) => string][] = [
    ['daily', policy.keepDaily, day],
    ['weekly', policy.keepWeekly, isoWeek],
    ['monthly', policy.keepMonthly, month],
  ];
  for (const [tier, count, bucketOf] of tiers) {
    const seen = new Set<string>();
    for (const b of newestFirst) {
      if (seen.size >= count) break;
      const bucket = bucketOf(new Date(b.finishedAt));
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      keep(b, `${tier} ${bucket}`);
    }
  }
  const newestVerified = newestFirst.find((b) => b.verified);
  if (newestVerified) keep(newestVerified, 'newest verified');
  let kept = newestFirst.filter((b) => reasons.get(b.backupId)!.length > 0).length;
  for (const b of newestFirst) {
    if (kept >= policy.minKeep) break;
    if (reasons.get(b.backupId)!.length === 0) {
      keep(b, `minimum ${policy.minKeep}`);
      kept++;
    }
  }
  return newestFirst.map((b) => {
    const why = reasons.get(b.backupId)!;
    return { backupId: b.backupId, finishedAt: b.finishedAt, keep: why.length > 0, reasons: why };
  });
}
