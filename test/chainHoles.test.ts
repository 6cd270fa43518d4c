// The holes the scheduled audit acts on (no services): runs of consecutive segments missing from
// the current chain, named by their first segment, which is also the segment a gap the archiver
// records starts in, so both start the same base backup.
import { chainHoles, gapSegment, newestHoleName } from '../src/archive/chainHoles';
import type { TimelineChain, WalChainAudit } from '../src/archive/contract';

const seg = (tli: number, n: number) => `${tli.toString(16).padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

function timeline(tli: number, over: Partial<TimelineChain>): TimelineChain {
  return { timeline: tli, segments: 10, missing: [], unindexed: [], indexedButAbsent: [], onCurrentChain: true, ...over };
}

function audit(timelines: TimelineChain[], missingHistories: number[] = []): WalChainAudit {
  return { cluster: 'main', timelines, missingHistories, recordedGaps: [], gapless: false, auditedAt: '2026-12-01T00:00:00Z' };
}

test('consecutive missing segments are one hole; a lost object is "absent"; off-chain timelines do not count', () => {
  const holes = chainHoles(
    audit([
      timeline(1, { missing: [seg(1, 3), seg(1, 4), seg(1, 5), seg(1, 9)], indexedButAbsent: [seg(1, 9)] }),
      timeline(2, { missing: [seg(2, 7)], onCurrentChain: false }),
      timeline(3, { missing: [seg(3, 12)] }),
    ], [3]),
  );
  expect(holes).toEqual([
    { timeline: 1, fromSegment: seg(1, 3), toSegment: seg(1, 5), segments: 3, kind: 'missing' },
    { timeline: 1, fromSegment: seg(1, 9), toSegment: seg(1, 9), segments: 1, kind: 'absent' },
    { timeline: 3, fromSegment: seg(3, 12), toSegment: seg(3, 12), segments: 1, kind: 'missing' },
    { timeline: 3, segments: 0, kind: 'history' },
  ]);
  expect(newestHoleName(holes)).toBe(seg(3, 12));
  expect(newestHoleName([{ timeline: 2, segments: 0, kind: 'history' }])).toBe('history-2');
  expect(chainHoles(audit([timeline(1, {})]))).toEqual([]);
});

test("an archiver's gap is named by the segment it starts in, as the audit names the hole", () => {
  expect(gapSegment({ timeline: 1, fromLsn: '0/6000000' })).toBe(seg(1, 6));
  expect(gapSegment({ timeline: 2, fromLsn: '1/2A0000D8' })).toBe('00000002000000010000002A');
  expect(gapSegment({ timeline: 1, fromLsn: 'unknown' })).toBeUndefined();
});
