// Which base backup a point-in-time restore starts from, and what it refuses, as pure functions:
// no server, no bucket.
import type { BaseBackupRecord } from '../src/archive/layout';
import type { RecoverableWindow } from '../src/archive/recoveryWindow';
import { archiveBehind } from '../src/pitr/activities/planRecovery';
import { chooseBaseBackup, postgresTimestamp, recoverySettings, recoveryTargetProblem, targetTimeMs } from '../src/pitr/recoveryTarget';

const backup = (id: string, stopLsn: string, stoppedAt: string, extra: Partial<BaseBackupRecord> = {}): BaseBackupRecord => ({
  formatVersion: 1,
  backupId: id,
  cluster: 'main',
  systemIdentifier: '7',
  node: 'primary',
  kind: 'full',
  startLsn: stopLsn,
  startTimeline: 1,
  stopLsn,
  stopTimeline: 1,
  startedAt: stoppedAt,
  stoppedAt,
  serverVersion: '18.6',
  files: [],
  sizeBytes: 100,
  ...extra,
});
const full = backup('b1', '0/3000100', '2026-11-30T01:00:00Z');
const incr = backup('b2', '0/6000100', '2026-11-30T02:00:00Z', { kind: 'incremental', parentBackupId: 'b1' });
const window: RecoverableWindow = {
  from: { backupId: 'b1', lsn: '0/3000100', timeline: 1, at: '2026-11-30T01:00:00Z' },
  to: { lsn: '0/9000000', timeline: 1, at: '2026-11-30T03:00:00Z' },
  backups: [
    { backupId: 'b1', complete: true },
    { backupId: 'b2', complete: true },
  ],
};
const choose = (target: Parameters<typeof chooseBaseBackup>[3]) => chooseBaseBackup('root', [full, incr], window, target);

test('the newest base backup that ended before the target, with the chain it builds on', () => {
  expect(choose({ kind: 'time', time: '2026-11-30 11:30:00+09' })).toMatchObject({ ok: true, backup: { backupId: 'b2', chain: ['b1', 'b2'], sizeBytes: 200 } });
  expect(choose({ kind: 'time', time: '2026-11-30T01:30:00Z' })).toMatchObject({ ok: true, backup: { backupId: 'b1', chain: ['b1'] } });
  expect(choose({ kind: 'lsn', lsn: '0/5000000' })).toMatchObject({ ok: true, backup: { backupId: 'b1' } });
  expect(choose({ kind: 'latest' })).toMatchObject({ ok: true, backup: { backupId: 'b2' } });
  expect(choose({ kind: 'restorePoint', name: 'before-migration' })).toMatchObject({ ok: true, backup: { backupId: 'b1' } });
});

test('a target outside the window is refused, saying what the window is', () => {
  for (const target of [{ kind: 'time', time: '2026-11-30T00:59:59Z' }, { kind: 'lsn', lsn: '0/3000000' }] as const) {
    expect(choose(target)).toEqual({ ok: false, why: expect.stringMatching(/before the end of the oldest usable base backup; the recoverable window is from 2026-11-30T01:00:00Z \(LSN 0\/3000100, base backup b1\) to 2026-11-30T03:00:00Z/) });
  }
  expect(choose({ kind: 'time', time: '2026-11-30T03:00:01Z' })).toMatchObject({ ok: false, why: expect.stringMatching(/after the newest archived WAL/) });
  expect(choose({ kind: 'lsn', lsn: '0/9000001' })).toMatchObject({ ok: false, why: expect.stringMatching(/after the newest archived WAL/) });
  expect(chooseBaseBackup('root', [], { backups: [], problem: 'no WAL is archived' }, { kind: 'latest' })).toMatchObject({ ok: false, why: expect.stringMatching(/no recoverable window \(no WAL is archived\)/) });
});

test('times need a zone, keep their microseconds for PostgreSQL, and compare as instants', () => {
  expect(recoveryTargetProblem({ kind: 'time', time: '2026-11-30 14:31:07' })).toMatch(/timestamp with a zone/);
  expect(recoveryTargetProblem({ kind: 'lsn', lsn: 'nope' })).toMatch(/not a WAL position/);
  expect(recoveryTargetProblem({ kind: 'restorePoint', name: "x'; DROP" })).toMatch(/restore point name/);
  expect(targetTimeMs('2026-11-30 14:31:07+09')).toBe(Date.parse('2026-11-30T05:31:07Z'));
  expect(targetTimeMs('2026-11-30T05:31:07.5-03:30')).toBe(Date.parse('2026-11-30T09:01:07.5Z'));
  expect(postgresTimestamp('2026-11-30T05:31:07.123456Z')).toBe('2026-11-30 05:31:07.123456+00');
  expect(recoverySettings({ kind: 'time', time: '2026-11-30 14:31:07.000001+09' })).toEqual({
    recovery_target_timeline: 'latest',
    recovery_target_action: 'pause',
    recovery_target_time: '2026-11-30 14:31:07.000001+09',
    recovery_target_inclusive: 'on',
  });
  expect(recoverySettings({ kind: 'lsn', lsn: '0/5a' })).toMatchObject({ recovery_target_lsn: '0/5A', recovery_target_inclusive: 'off' });
});

test('holes just behind the archive head are an archiver catching up (planned again), older ones are gaps (refused)', () => {
  const chain = (missing: string[]) => ({ timelines: [{ timeline: 1, firstSegment: '000000010000000000000001', lastSegment: '000000010000000000000300', missing, headLsn: '3/1000100' }] });
  expect(archiveBehind(chain(['0000000100000002000000FF', '000000010000000300000000']), 16 * 1024 * 1024)).toBe('2 segment(s) from 0000000100000002000000FF');
  expect(archiveBehind(chain(['000000010000000000000005']), 16 * 1024 * 1024)).toBeUndefined();
  expect(archiveBehind(chain([]), 16 * 1024 * 1024)).toBeUndefined();
});
