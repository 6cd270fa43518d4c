// Retention planning over a crafted history of backups across days, weeks and months.
import { DEFAULT_RETENTION, planRetention, resolveRetention, RetentionInvalid } from '../src/backup/retention';
import type { RetainableBackup } from '../src/backup/retention';

/** One verified backup a day at 03:00 UTC for `days` days ending 2026-11-27. */
function nightly(days: number): RetainableBackup[] {
  return Array.from({ length: days }, (_, i) => {
    const at = new Date(Date.UTC(2026, 10, 27, 3) - i * 86_400_000).toISOString();
    return { backupId: `b-${at.slice(0, 10)}`, finishedAt: at, verified: true };
  });
}

const kept = (decisions: ReturnType<typeof planRetention>) => decisions.filter((d) => d.keep).map((d) => d.backupId);

describe('retention', () => {
  test('keeps the last N, the newest of each recent day, ISO week and month, and deletes the rest', () => {
    const policy = resolveRetention({ keepLast: 2, keepDaily: 3, keepWeekly: 3, keepMonthly: 3, minKeep: 1 });
    expect(kept(planRetention(nightly(120), policy))).toEqual([
      'b-2026-11-27', // last 1, daily, weekly (W48), monthly (11), newest verified
      'b-2026-11-26', // last 2, daily
      'b-2026-11-25', // daily
      'b-2026-11-22', // weekly W47 (Sunday closes the ISO week)
      'b-2026-11-15', // weekly W46
      'b-2026-10-31', // monthly 10
      'b-2026-09-30', // monthly 09
    ]);
  });

  test('each kept backup says why', () => {
    const decisions = planRetention(nightly(10), resolveRetention({ keepLast: 1, keepDaily: 2, keepWeekly: 0, keepMonthly: 0, minKeep: 1 }));
    expect(decisions[0].reasons).toEqual(['last 1 of 1', 'daily 2026-11-27', 'newest verified']);
    expect(decisions[1].reasons).toEqual(['daily 2026-11-26']);
    expect(decisions[2]).toMatchObject({ keep: false, reasons: [] });
  });

  test('never deletes the newest verified backup, even when newer unverified ones fill the tiers', () => {
    const backups = [
      { backupId: 'unverified-2', finishedAt: '2026-11-27T03:00:00Z', verified: false },
      { backupId: 'unverified-1', finishedAt: '2026-11-27T02:00:00Z', verified: false },
      { backupId: 'verified-old', finishedAt: '2026-11-20T03:00:00Z', verified: true },
    ];
    const decisions = planRetention(backups, resolveRetention({ keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 1 }));
    expect(kept(decisions)).toEqual(['unverified-2', 'verified-old']);
  });

  test('the minimum count wins over a policy that keeps fewer', () => {
    const decisions = planRetention(nightly(10), resolveRetention({ keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, minKeep: 4 }));
    expect(kept(decisions)).toEqual(['b-2026-11-27', 'b-2026-11-26', 'b-2026-11-25', 'b-2026-11-24']);
  });

  test('a policy that could delete everything is refused with one clear error', () => {
    expect(() => resolveRetention({ minKeep: 0 })).toThrow(
      new RetentionInvalid('retention.minKeep=0 would allow deleting every backup; it must be at least 1'),
    );
    expect(() => resolveRetention({ keepDaily: -1 })).toThrow('retention.keepDaily=-1 must be a whole number ≥ 0');
  });

  test('the defaults keep a week of dailies like the old cron job, and more', () => {
    expect(DEFAULT_RETENTION).toMatchObject({ keepDaily: 7, localKeepDays: 7 });
    // 7 dailies (11-21..11-27, also the last 7); weeks W48 and W47 fall among them, W46 and W45
    // add two; month 11 is among them, 10, 09, 08, 07 and 06 add five.
    expect(kept(planRetention(nightly(400), DEFAULT_RETENTION))).toHaveLength(7 + 2 + 5);
  });
});
