// The recoverable window: from the oldest base backup whose WAL chain to the archive's head is
// complete, to the newest archived WAL position. Pure, so the listing, retention and the chain
// audit compute it the same way from what each has read: the base backup records, the archive's
// chain per timeline, and the timeline switches of the history files.
import {
  DEFAULT_WAL_SEGMENT_BYTES,
  formatLsn,
  parseLsn,
  parseSegmentName,
  segmentName,
  segmentNumber,
  type BaseBackupRecord,
  type HistoryEntry,
} from './layout';
import type { WalChainAudit } from './contract';

/** What the archive holds on one timeline (as the chain audit reports it). */
export interface WindowTimeline {
  timeline: number;
  /** First and last complete segment archived on the timeline. */
  firstSegment: string;
  lastSegment: string;
  /** Segments between the two that are not archived, or failed their checksum. */
  missing: string[];
  /** The newest archived position (the partial segment's valid-to LSN); default: the end of lastSegment. */
  headLsn?: string;
  headAt?: string;
}

export interface WalChain {
  timelines: WindowTimeline[];
  segmentBytes?: number;
}

/** Timeline `timeline` ended at `switchLsn`, where `nextTimeline` began: one line of a history file. */
export interface TimelineSwitch {
  timeline: number;
  nextTimeline: number;
  switchLsn: string;
}

export interface WindowEdge {
  lsn: string;
  timeline: number;
  at?: string;
  backupId?: string;
}

export interface BackupReach {
  backupId: string;
  /** True when the archive's WAL carries it to the head. */
  complete: boolean;
  reason?: string;
}

export interface RecoverableWindow {
  /** The oldest backup with a complete chain: its stop point is the earliest recoverable one. */
  from?: WindowEdge;
  /** The newest archived WAL position. */
  to?: WindowEdge;
  backups: BackupReach[];
  /** Why there is no window, in words for an operator. */
  problem?: string;
}

/** The switches a timeline's history file records: each line's timeline ended where the next line's (or this file's) began. */
export function timelineSwitches(timeline: number, history: HistoryEntry[]): TimelineSwitch[] {
  return history.map((entry, i) => ({ timeline: entry.parent, nextTimeline: history[i + 1]?.parent ?? timeline, switchLsn: entry.switchLsn }));
}

/** What the window needs, from the WAL archiver's chain audit: its timelines, and the switches between them. */
export function windowInputsFromAudit(audit: WalChainAudit): { chain: WalChain; switches: TimelineSwitch[] } {
  const timelines: WindowTimeline[] = audit.timelines
    .filter((t) => t.firstSegment !== undefined && t.lastSegment !== undefined)
    .map((t) => ({
      timeline: t.timeline,
      firstSegment: t.firstSegment!,
      lastSegment: t.lastSegment!,
      // An indexed segment whose object is gone is as missing as one never archived.
      missing: [...t.missing, ...t.indexedButAbsent],
      ...(t.partial?.validToLsn && !t.partial.final ? { headLsn: t.partial.validToLsn } : {}),
    }));
  const switches = audit.timelines.filter((t) => t.parent).map((t) => ({ timeline: t.parent!.timeline, nextTimeline: t.timeline, switchLsn: t.parent!.switchLsn }));
  return { chain: { timelines }, switches };
}

/** The timelines from `from` to `to` with where each begins, or undefined when `to` does not descend from `from`. */
function timelinePath(from: number, to: number, switches: TimelineSwitch[]): { timeline: number; endLsn?: bigint }[] | undefined {
  const parentOf = new Map(switches.map((s) => [s.nextTimeline, s]));
  const path: { timeline: number; endLsn?: bigint }[] = [{ timeline: to }];
  let current = to;
  while (current !== from) {
    const parent = parentOf.get(current);
    if (!parent || path.length > 10_000) return undefined;
    path.unshift({ timeline: parent.timeline, endLsn: parseLsn(parent.switchLsn) });
    current = parent.timeline;
  }
  return path;
}

/** The first segment the backup's chain lacks on its way to the head, or why the head is out of its reach. */
function chainProblem(backup: BaseBackupRecord, chain: WalChain, head: { timeline: number; lsn: bigint }, switches: TimelineSwitch[]): string | undefined {
  const bytes = chain.segmentBytes ?? DEFAULT_WAL_SEGMENT_BYTES;
  const path = timelinePath(backup.startTimeline, head.timeline, switches);
  if (!path) return `it is on timeline ${backup.startTimeline}, which the archive's newest timeline ${head.timeline} does not descend from`;
  if (head.lsn < parseLsn(backup.stopLsn)) return `the archive ends at ${formatLsn(head.lsn)}, before the backup's stop ${backup.stopLsn}`;
  let fromSeg = segmentNumber(parseLsn(backup.startLsn), bytes);
  for (const step of path) {
    // Recovery reads the segment holding a switch point from the new timeline.
    const lastNeeded = step.endLsn === undefined ? lastByteSegment(head.lsn, bytes) : segmentNumber(step.endLsn, bytes) - 1n;
    if (lastNeeded >= fromSeg) {
      const held = chain.timelines.find((t) => t.timeline === step.timeline);
      const name = (segno: bigint) => segmentName(step.timeline, segno, bytes);
      if (!held) return `no WAL of timeline ${step.timeline} is archived (needed from ${name(fromSeg)})`;
      const first = parseSegmentName(held.firstSegment, bytes)!.segno;
      let last = parseSegmentName(held.lastSegment, bytes)!.segno;
      // The head's own segment may be the partial one still being written.
      if (step.endLsn === undefined && held.headLsn !== undefined) last = lastByteSegment(parseLsn(held.headLsn), bytes);
      if (fromSeg < first) return `segment ${name(fromSeg)} is not archived (timeline ${step.timeline} starts at ${held.firstSegment})`;
      if (lastNeeded > last) return `segment ${name(last + 1n)} is not archived (timeline ${step.timeline} ends at ${held.lastSegment})`;
      const gap = held.missing
        .map((segment) => ({ segment, segno: parseSegmentName(segment, bytes)?.segno }))
        .filter((m) => m.segno !== undefined && m.segno >= fromSeg && m.segno <= lastNeeded)
        .sort((a, b) => (a.segno! < b.segno! ? -1 : 1))[0];
      if (gap) return `segment ${gap.segment} is missing from the archive`;
    }
    if (step.endLsn !== undefined) fromSeg = segmentNumber(step.endLsn, bytes);
  }
  return undefined;
}

/** The segment holding the last byte before `end` (an end on a segment boundary needs nothing of the next). */
function lastByteSegment(end: bigint, bytes: number): bigint {
  return segmentNumber(end > 0n ? end - 1n : 0n, bytes);
}

/** The archive's newest position: on its newest timeline, the partial's valid-to LSN or the end of its last segment. */
export function archiveHead(chain: WalChain): WindowEdge | undefined {
  const newest = [...chain.timelines].sort((a, b) => b.timeline - a.timeline)[0];
  if (!newest) return undefined;
  const bytes = BigInt(chain.segmentBytes ?? DEFAULT_WAL_SEGMENT_BYTES);
  const endOfLast = (parseSegmentName(newest.lastSegment, Number(bytes))!.segno + 1n) * bytes;
  return { timeline: newest.timeline, lsn: newest.headLsn ?? formatLsn(endOfLast), at: newest.headAt };
}

export function recoverableWindow(backups: BaseBackupRecord[], chain: WalChain, switches: TimelineSwitch[]): RecoverableWindow {
  const oldestFirst = [...backups].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  const to = archiveHead(chain);
  if (!to) {
    return {
      backups: oldestFirst.map((b) => ({ backupId: b.backupId, complete: false, reason: 'no WAL is archived' })),
      problem: 'no WAL is archived: each base backup restores to its own stop point only',
    };
  }
  const head = { timeline: to.timeline, lsn: parseLsn(to.lsn) };
  const ids = new Map(backups.map((b) => [b.backupId, b]));
  const reach: BackupReach[] = oldestFirst.map((backup) => {
    const missingParent = missingAncestor(backup, ids);
    const reason = missingParent ? `its parent ${missingParent} is not in the catalog` : chainProblem(backup, chain, head, switches);
    return reason ? { backupId: backup.backupId, complete: false, reason } : { backupId: backup.backupId, complete: true };
  });
  const first = oldestFirst.find((_, i) => reach[i].complete);
  if (!first) {
    return {
      to,
      backups: reach,
      problem: backups.length === 0 ? 'no base backup to start a recovery from' : 'no base backup has a complete WAL chain to the archive head',
    };
  }
  return {
    from: { backupId: first.backupId, lsn: first.stopLsn, timeline: first.stopTimeline, at: first.stoppedAt },
    to,
    backups: reach,
  };
}

/** The first ancestor of an incremental that is not in `ids` (a restore needs every one). */
function missingAncestor(backup: BaseBackupRecord, ids: Map<string, BaseBackupRecord>): string | undefined {
  let current = backup;
  for (let depth = 0; current.kind === 'incremental' && depth < 1_000; depth++) {
    const parent = ids.get(current.parentBackupId!);
    if (!parent) return current.parentBackupId;
    current = parent;
  }
  return undefined;
}
