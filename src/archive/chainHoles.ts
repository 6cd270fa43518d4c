// The holes in an audited WAL chain: runs of consecutive segments the current chain lacks (never
// archived, or indexed and then lost), and timelines whose history file is missing. Pure, so the
// audit workflow names them the same way the archiver names the gap it records.
import type { ChainHole, WalChainAudit } from './contract';
import { DEFAULT_WAL_SEGMENT_BYTES, parseLsn, parseSegmentName, segmentName, segmentNumber } from './layout';

export function chainHoles(audit: WalChainAudit, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): ChainHole[] {
  const holes: ChainHole[] = [];
  for (const t of audit.timelines.filter((tl) => tl.onCurrentChain)) {
    const absent = new Set(t.indexedButAbsent);
    const names = [...new Set([...t.missing, ...t.indexedButAbsent])].sort();
    let run: { first: string; last: string; segno: bigint; count: number; kind: ChainHole['kind'] } | undefined;
    const close = () => {
      if (run) holes.push({ timeline: t.timeline, fromSegment: run.first, toSegment: run.last, segments: run.count, kind: run.kind });
      run = undefined;
    };
    for (const name of names) {
      const segno = parseSegmentName(name, segmentBytes)?.segno;
      if (segno === undefined) continue;
      if (run && segno === run.segno + 1n) {
        run.last = name;
        run.segno = segno;
        run.count += 1;
        if (!absent.has(name)) run.kind = 'missing';
        continue;
      }
      close();
      run = { first: name, last: name, segno, count: 1, kind: absent.has(name) ? 'absent' : 'missing' };
    }
    close();
  }
  for (const timeline of audit.missingHistories) holes.push({ timeline, segments: 0, kind: 'history' });
  return holes;
}

/** The segment a gap the archiver recorded starts in (where the archive ended): the gap's name. */
export function gapSegment(gap: { timeline: number; fromLsn: string }, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): string | undefined {
  if (!/^[0-9A-F]+\/[0-9A-F]+$/i.test(gap.fromLsn)) return undefined;
  return segmentName(gap.timeline, segmentNumber(parseLsn(gap.fromLsn), segmentBytes), segmentBytes);
}

/** The newest hole's name: a hole found after an earlier one was covered gets a base backup of its own. */
export function newestHoleName(holes: ChainHole[]): string | undefined {
  const segments = holes.filter((h) => h.fromSegment).map((h) => h.fromSegment!);
  if (segments.length) return segments.sort().at(-1);
  const history = holes.find((h) => h.kind === 'history');
  return history ? `history-${history.timeline}` : undefined;
}
