// The recoverable window and retention by recovery window, on constructed base backup records,
// WAL chains and timeline switches: what `pgops backups list` reports and what retention keeps.
import type { BaseBackupRecord } from '../src/archive/layout';
import { parseHistoryFile } from '../src/archive/layout';
import { recoverableWindow, timelineSwitches, windowInputsFromAudit, type WindowTimeline, type WalChain } from '../src/archive/recoveryWindow';
import { parseWalObjectKey, planPhysicalRetention } from '../src/archive/retention';

const SEG = 0x1000000; // 16 MiB

/** A backup starting in segment `startSeg` and stopping in `stopSeg`, on one timeline or two. */
function backup(id: string, startSeg: number, stopSeg: number, stoppedAt: string, extra: Partial<BaseBackupRecord> = {}): BaseBackupRecord {
  const lsn = (seg: number) => `${Math.floor((seg * SEG) / 2 ** 32).toString(16).toUpperCase()}/${((seg * SEG) % 2 ** 32 + 0x28).toString(16).toUpperCase()}`;
  return {
    formatVersion: 1,
    backupId: id,
    cluster: 'main',
    systemIdentifier: '7441234567890123456',
    node: 'primary',
    kind: 'full',
    startLsn: lsn(startSeg),
    startTimeline: 1,
    stopLsn: lsn(stopSeg),
    stopTimeline: 1,
    startedAt: stoppedAt,
    stoppedAt,
    serverVersion: '18.6',
    files: [],
    sizeBytes: 1,
    ...extra,
  };
}

const seg = (tli: number, n: number) => `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
const chain = (...timelines: WindowTimeline[]): WalChain => ({ timelines });
const tl = (timeline: number, first: number, last: number, missing: number[] = [], headLsn?: string): WindowTimeline => ({
  timeline,
  firstSegment: seg(timeline, first),
  lastSegment: seg(timeline, last),
  missing: missing.map((n) => seg(timeline, n)),
  ...(headLsn ? { headLsn } : {}),
});

describe('recoverable window', () => {
  test('runs from the oldest backup with a complete chain to the newest archived position', () => {
    const w = recoverableWindow([backup('b2', 20, 21, '2026-11-02'), backup('b1', 10, 11, '2026-11-01')], chain(tl(1, 5, 30, [], '0/1F800000')), []);
    expect(w.from).toEqual({ backupId: 'b1', lsn: '0/B000028', timeline: 1, at: '2026-11-01' });
    expect(w.to).toMatchObject({ lsn: '0/1F800000', timeline: 1 });
    expect(w.backups.every((b) => b.complete)).toBe(true);
  });

  test('a missing segment after a backup starts the window at the first backup past the gap', () => {
    const w = recoverableWindow([backup('b1', 10, 11, '2026-11-01'), backup('b2', 20, 21, '2026-11-02')], chain(tl(1, 5, 30, [15])), []);
    expect(w.from?.backupId).toBe('b2');
    expect(w.backups[0]).toEqual({ backupId: 'b1', complete: false, reason: `segment ${seg(1, 15)} is missing from the archive` });
  });

  test('WAL archived only from after a backup started leaves that backup out', () => {
    const w = recoverableWindow([backup('b1', 3, 4, '2026-11-01'), backup('b2', 8, 9, '2026-11-02')], chain(tl(1, 5, 30)), []);
    expect(w.from?.backupId).toBe('b2');
    expect(w.backups[0].reason).toBe(`segment ${seg(1, 3)} is not archived (timeline 1 starts at ${seg(1, 5)})`);
  });

  test('follows a promotion: timeline 1 up to the switch segment, timeline 2 from it', () => {
    const switches = timelineSwitches(2, parseHistoryFile('1\t0/14800000\tno recovery target specified\n'));
    expect(switches).toEqual([{ timeline: 1, nextTimeline: 2, switchLsn: '0/14800000' }]);
    // Segment 0x14 holds the switch: recovery reads it from timeline 2, so timeline 1 may end at 0x13.
    const complete = recoverableWindow([backup('b1', 10, 11, '2026-11-01')], chain(tl(1, 5, 0x13), tl(2, 0x14, 0x20)), switches);
    expect(complete.from?.backupId).toBe('b1');
    expect(complete.to).toMatchObject({ timeline: 2, lsn: '0/21000000' });
    const broken = recoverableWindow([backup('b1', 10, 11, '2026-11-01')], chain(tl(1, 5, 0x12), tl(2, 0x14, 0x20)), switches);
    expect(broken.backups[0].reason).toBe(`segment ${seg(1, 0x13)} is not archived (timeline 1 ends at ${seg(1, 0x12)})`);
  });

  test('a backup on a timeline the newest one does not descend from is not on the chain', () => {
    const switches = timelineSwitches(3, parseHistoryFile('1\t0/14800000\tx\n'));
    const w = recoverableWindow([backup('b1', 0x15, 0x16, '2026-11-01', { startTimeline: 2, stopTimeline: 2 })], chain(tl(3, 0x14, 0x20)), switches);
    expect(w.from).toBeUndefined();
    expect(w.backups[0].reason).toMatch(/timeline 2, which the archive's newest timeline 3 does not descend from/);
  });

  test('an incremental whose parent is gone is not a starting point', () => {
    const orphan = backup('i1', 12, 13, '2026-11-02', { kind: 'incremental', parentBackupId: 'gone' });
    const w = recoverableWindow([orphan], chain(tl(1, 5, 30)), []);
    expect(w.backups[0]).toEqual({ backupId: 'i1', complete: false, reason: 'its parent gone is not in the catalog' });
    expect(w.problem).toBe('no base backup has a complete WAL chain to the archive head');
  });

  test('an archive that ends before a backup stopped cannot recover it; no WAL at all says so', () => {
    expect(recoverableWindow([backup('b1', 10, 40, '2026-11-01')], chain(tl(1, 5, 30)), []).backups[0].reason).toMatch(/archive ends at 0\/1F000000, before/);
    expect(recoverableWindow([backup('b1', 10, 11, '2026-11-01')], chain(), []).problem).toBe('no WAL is archived: each base backup restores to its own stop point only');
  });

  test("the WAL archiver's chain audit feeds the window: lost objects count as missing, the live partial is the head", () => {
    const { chain: fed, switches } = windowInputsFromAudit({
      cluster: 'main',
      timelines: [
        { timeline: 1, firstSegment: seg(1, 1), lastSegment: seg(1, 0x13), segments: 18, missing: [seg(1, 3)], unindexed: [], indexedButAbsent: [seg(1, 4)], onCurrentChain: true },
        { timeline: 2, parent: { timeline: 1, switchLsn: '0/14800000' }, firstSegment: seg(2, 0x14), lastSegment: seg(2, 0x20), segments: 13, missing: [], unindexed: [], indexedButAbsent: [], partial: { segment: seg(2, 0x21), validToLsn: '0/21000100', final: false }, onCurrentChain: true },
      ],
      missingHistories: [],
      recordedGaps: [],
      gapless: false,
      auditedAt: '2026-11-30T00:00:00Z',
    });
    expect(fed.timelines[0].missing).toEqual([seg(1, 3), seg(1, 4)]);
    expect(switches).toEqual([{ timeline: 1, nextTimeline: 2, switchLsn: '0/14800000' }]);
    const w = recoverableWindow([backup('b1', 0x10, 0x11, '2026-11-01')], fed, switches);
    expect(w.from?.backupId).toBe('b1');
    expect(w.to).toMatchObject({ timeline: 2, lsn: '0/21000100' });
  });
});

describe('retention by recovery window', () => {
  const now = new Date('2026-11-30T00:00:00Z');
  const weekAgo = new Date(now.getTime() - 7 * 86_400_000);

  test('keeps the backups in the window and the newest one before it; drops the rest and the WAL before the oldest kept start', () => {
    const backups = [
      backup('b1', 10, 11, '2026-11-01T01:00:00Z'),
      backup('b2', 20, 21, '2026-11-20T01:00:00Z'),
      backup('b3', 30, 31, '2026-11-29T01:00:00Z'),
    ];
    const wal = [18, 19, 20, 21].map((n) => `r/wal/00000001/${seg(1, n)}.zst`);
    const plan = planPhysicalRetention(backups, weekAgo, wal);
    expect(plan.keep).toEqual([
      { backupId: 'b2', reasons: [`the window's start ${weekAgo.toISOString()} is replayed from it`] },
      { backupId: 'b3', reasons: ['in the window (stopped 2026-11-29T01:00:00Z)', 'newest'] },
    ]);
    expect(plan.drop).toEqual(['b1']);
    expect(plan.dropWal).toEqual(wal.slice(0, 2));
    expect(plan.walKeptFromSegno).toBe(20n);
  });

  test('never deletes a parent of a kept incremental, however old', () => {
    const backups = [
      backup('full', 10, 11, '2026-10-01T00:00:00Z'),
      backup('i1', 12, 13, '2026-10-02T00:00:00Z', { kind: 'incremental', parentBackupId: 'full' }),
      backup('i2', 14, 15, '2026-11-28T00:00:00Z', { kind: 'incremental', parentBackupId: 'i1' }),
      backup('old', 5, 6, '2026-09-01T00:00:00Z'),
    ];
    const plan = planPhysicalRetention(backups, weekAgo, [`r/wal/00000001/${seg(1, 9)}.zst`, `r/wal/00000001/${seg(1, 10)}.zst`]);
    expect(plan.keep.map((k) => k.backupId)).toEqual(['full', 'i1', 'i2']);
    expect(plan.keep.find((k) => k.backupId === 'full')!.reasons).toEqual(['parent of i1']);
    expect(plan.drop).toEqual(['old']);
    expect(plan.dropWal).toEqual([`r/wal/00000001/${seg(1, 9)}.zst`]);
  });

  test('with every backup older than the window the newest stays, with its WAL', () => {
    const plan = planPhysicalRetention([backup('a', 10, 11, '2026-01-01T00:00:00Z'), backup('b', 20, 21, '2026-02-01T00:00:00Z')], weekAgo, []);
    expect(plan.keep.map((k) => k.backupId)).toEqual(['b']);
    expect(plan.drop).toEqual(['a']);
  });

  test('no backups: nothing goes, not even WAL', () => {
    expect(planPhysicalRetention([], weekAgo, [`r/wal/00000001/${seg(1, 1)}.zst`])).toEqual({ keep: [], drop: [], dropWal: [] });
  });

  test('an index block goes only once every segment it can list is before the cut; history files never', () => {
    expect(parseWalObjectKey('r/wal-index/00000001/00000000.json')).toEqual({ timeline: 1, firstSegno: 0n, lastSegno: 255n });
    expect(parseWalObjectKey('r/wal/history/00000002.history')).toBeUndefined();
    const keys = ['r/wal-index/00000001/00000000.json', 'r/wal-index/00000001/00000001.json', 'r/wal/history/00000002.history'];
    const plan = planPhysicalRetention([backup('b', 0x150, 0x151, '2026-11-29T00:00:00Z')], weekAgo, keys);
    expect(plan.dropWal).toEqual(['r/wal-index/00000001/00000000.json']);
  });
});
