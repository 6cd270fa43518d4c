// The arithmetic every part of the physical archive relies on: a wrong segment name means a
// segment archived under the wrong key, and a restore that cannot find it.
import { formatLsn, parseLsn, parseSegmentName, segmentName, segmentNumber, walSegmentKey } from '../src/archive/layout';

test('LSNs, segment numbers and segment names agree with PostgreSQL (16 MiB segments)', () => {
  // pg_walfile_name('16/B374D848') on timeline 1 is 0000000100000016000000B3.
  const position = parseLsn('16/B374D848');
  expect(formatLsn(position)).toBe('16/B374D848');
  expect(segmentName(1, segmentNumber(position))).toBe('0000000100000016000000B3');
  expect(parseSegmentName('0000000100000016000000B3')).toEqual({ timeline: 1, segno: segmentNumber(position) });
  expect(segmentName(0x1a, 0xffn)).toBe('0000001A00000000000000FF');
  expect(segmentName(2, 0x100n)).toBe('000000020000000100000000');
  expect(walSegmentKey('b/physical/main/7', '000000020000000100000000')).toBe('b/physical/main/7/wal/00000002/000000020000000100000000.zst');
});

test('anything else is refused by name', () => {
  expect(() => parseLsn('16B374D848')).toThrow(/is not a WAL position/);
  expect(parseSegmentName('00000002.history')).toBeUndefined();
  expect(parseSegmentName('000000010000000000000001.partial')).toBeUndefined();
});
