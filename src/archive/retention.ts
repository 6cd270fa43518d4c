// Retention of the physical archive as a recovery window ("any point in the last 7 days"): which
// base backups and which archived WAL may go. Pure: the prune activity applies it, tests pin it.
//
// Kept: every backup that stopped inside the window; the newest one that stopped before it (the
// anchor every point from the window's start is replayed from); the newest backup whatever its
// age; and every ancestor of a kept incremental. WAL goes only where it lies wholly before the
// oldest kept backup's start, on any timeline: no kept backup can replay it. History files stay.
import type { KeptBaseBackup } from './contract';
import { parseLsn, parseSegmentName, segmentNumber, SEGMENTS_PER_INDEX_BLOCK, DEFAULT_WAL_SEGMENT_BYTES, type BaseBackupRecord } from './layout';

export interface PhysicalRetentionPlan {
  keep: KeptBaseBackup[];
  /** Base backups to delete, oldest first. */
  drop: string[];
  /** Segment, partial and index objects to delete. */
  dropWal: string[];
  /** The first segment number kept, when any WAL goes. */
  walKeptFromSegno?: bigint;
}

/** What a WAL object's key says: its timeline and segment number, and whether it is the index. */
export function parseWalObjectKey(key: string, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): { timeline: number; firstSegno: bigint; lastSegno: bigint } | undefined {
  const segment = /\/wal\/[0-9A-F]{8}\/([0-9A-F]{24})(?:\.partial)?\.zst$/.exec(key);
  if (segment) {
    const parsed = parseSegmentName(segment[1], segmentBytes)!;
    return { timeline: parsed.timeline, firstSegno: parsed.segno, lastSegno: parsed.segno };
  }
  // One index block per 256 segments (see layout.ts); it goes only once every segment it can list does.
  const block = /\/wal-index\/([0-9A-F]{8})\/([0-9A-F]{8})\.json$/.exec(key);
  if (block) {
    const first = BigInt(`0x${block[2]}`) * BigInt(SEGMENTS_PER_INDEX_BLOCK);
    return { timeline: parseInt(block[1], 16), firstSegno: first, lastSegno: first + BigInt(SEGMENTS_PER_INDEX_BLOCK) - 1n };
  }
  return undefined;
}

export function planPhysicalRetention(
  backups: BaseBackupRecord[],
  windowStart: Date,
  walKeys: string[],
  segmentBytes = DEFAULT_WAL_SEGMENT_BYTES,
): PhysicalRetentionPlan {
  const oldestFirst = [...backups].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  const reasons = new Map<string, string[]>(oldestFirst.map((b) => [b.backupId, []]));
  const keep = (b: BaseBackupRecord, why: string) => reasons.get(b.backupId)!.push(why);
  const start = windowStart.toISOString();

  for (const b of oldestFirst) if (b.stoppedAt >= start) keep(b, `in the window (stopped ${b.stoppedAt})`);
  const anchor = oldestFirst.filter((b) => b.stoppedAt < start).at(-1);
  if (anchor) keep(anchor, `the window's start ${start} is replayed from it`);
  const newest = oldestFirst.at(-1);
  if (newest) keep(newest, 'newest');

  const byId = new Map(backups.map((b) => [b.backupId, b]));
  for (const b of [...oldestFirst].reverse()) {
    if (reasons.get(b.backupId)!.length === 0 || b.kind !== 'incremental') continue;
    // Walk up: a kept incremental is restorable only with every ancestor.
    for (let child = b, parent = byId.get(b.parentBackupId!); parent; child = parent, parent = byId.get(parent.parentBackupId ?? '')) {
      keep(parent, `parent of ${child.backupId}`);
      if (parent.kind !== 'incremental') break;
    }
  }

  const kept = oldestFirst.filter((b) => reasons.get(b.backupId)!.length > 0);
  const drop = oldestFirst.filter((b) => reasons.get(b.backupId)!.length === 0).map((b) => b.backupId);
  let walKeptFromSegno: bigint | undefined;
  let dropWal: string[] = [];
  if (kept.length > 0) {
    const cut = kept.map((b) => segmentNumber(parseLsn(b.startLsn), segmentBytes)).reduce((a, b) => (b < a ? b : a));
    dropWal = walKeys.filter((key) => {
      const parsed = parseWalObjectKey(key, segmentBytes);
      return parsed !== undefined && parsed.lastSegno < cut;
    });
    if (dropWal.length > 0) walKeptFromSegno = cut;
  }
  return {
    keep: kept.map((b) => ({ backupId: b.backupId, reasons: [...new Set(reasons.get(b.backupId))] })),
    drop,
    dropWal,
    walKeptFromSegno,
  };
}
