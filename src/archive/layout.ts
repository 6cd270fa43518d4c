// Where the physical backups live in the bucket, and how WAL positions and segment names relate.
// One home for both halves (the WAL archive and the base backups) and for everything that reads
// them (the chain audit, the recoverable window, retention, point-in-time restore).
//
//   <root> = <PGOPS_S3_PREFIX>/physical/<cluster>/<system identifier>   (a new initdb, a new root)
//   <root>/wal/<TLI>/<segment>.zst           a complete segment, immutable once written
//   <root>/wal/<TLI>/<segment>.partial.zst   the segment still being written, replaced as it grows
//   <root>/wal/history/<TLI>.history         a timeline's history file, immutable
//   <root>/wal-index/<TLI>/<block>.json      the archive index: each segment's SHA-256 and size
//   <root>/base/<backupId>/…                 one base backup; backup.json is written last, drill.json by restore drills
//   <root>/gaps/<TLI>-<LSN>.json             every gap found in the chain, kept for the audit
import type { S3Config } from '../shared/config';
import type { StoredObject } from '../backup/manifest';
import type { RecordAuthentication } from '../shared/crypto/manifestAuth';
import type { ArchiveEncryption } from './archiveCrypto';

/** PostgreSQL's default WAL segment size; a server's own is read from `wal_segment_size`. */
export const DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Segments per index object: 256 × 16 MiB = one 4 GiB "log id", like the middle of a segment name. */
export const SEGMENTS_PER_INDEX_BLOCK = 256;
export const BASE_BACKUP_RECORD = 'backup.json';
/** The last restore drill of a base backup, beside its record (issue 17): when it was last proved restorable. */
export const DRILL_RECORD = 'drill.json';
/** PostgreSQL's own manifest of a base backup: every file's SHA-256, and the WAL range it needs. */
export const BASE_BACKUP_MANIFEST = 'backup_manifest';

export function archiveRoot(s3: Pick<S3Config, 'prefix'>, cluster: string, systemIdentifier: string): string {
  return `${s3.prefix}/physical/${cluster}/${systemIdentifier}`;
}

/** Every cluster's archive (no cluster), or every root of one cluster (one per system identifier). */
export function physicalPrefix(s3: Pick<S3Config, 'prefix'>, cluster?: string): string {
  return cluster ? `${s3.prefix}/physical/${cluster}/` : `${s3.prefix}/physical/`;
}

export function timelineHex(timeline: number): string {
  return timeline.toString(16).toUpperCase().padStart(8, '0');
}

export function walSegmentKey(root: string, segment: string): string {
  return `${root}/wal/${segment.slice(0, 8)}/${segment}.zst`;
}

export function walPartialKey(root: string, segment: string): string {
  return `${root}/wal/${segment.slice(0, 8)}/${segment}.partial.zst`;
}

export function walTimelinePrefix(root: string, timeline: number): string {
  return `${root}/wal/${timelineHex(timeline)}/`;
}

export function historyKey(root: string, timeline: number): string {
  return `${root}/wal/history/${timelineHex(timeline)}.history`;
}

export function walIndexKey(root: string, timeline: number, block: number): string {
  return `${root}/wal-index/${timelineHex(timeline)}/${block.toString(16).toUpperCase().padStart(8, '0')}.json`;
}

export function baseBackupPrefix(root: string, backupId?: string): string {
  return backupId ? `${root}/base/${backupId}/` : `${root}/base/`;
}

export function baseBackupObjectKey(root: string, backupId: string, name: string): string {
  return `${baseBackupPrefix(root, backupId)}${name}`;
}

export function gapKey(root: string, timeline: number, fromLsn: string): string {
  return `${root}/gaps/${timelineHex(timeline)}-${fromLsn.replace('/', '-')}.json`;
}

// ---------------------------------------------------------------- LSNs and segment names

/** "16/B374D848" as a byte position. */
export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!match) throw new Error(`"${lsn}" is not a WAL position (like 16/B374D848)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(position: bigint): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The segment number holding `position`. */
export function segmentNumber(position: bigint, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): bigint {
  return position / BigInt(segmentBytes);
}

/** PostgreSQL's segment file name: timeline, then the segment number split at 4 GiB, 8 hex digits each. */
export function segmentName(timeline: number, segno: bigint, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): string {
  const perId = 0x100000000n / BigInt(segmentBytes);
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${timelineHex(timeline)}${hex(segno / perId)}${hex(segno % perId)}`;
}

export interface ParsedSegment {
  timeline: number;
  segno: bigint;
}

/** The timeline and segment number of a 24-hex-digit segment name; undefined for any other file name. */
export function parseSegmentName(name: string, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): ParsedSegment | undefined {
  if (!/^[0-9A-F]{24}$/.test(name)) return undefined;
  const perId = 0x100000000n / BigInt(segmentBytes);
  return { timeline: parseInt(name.slice(0, 8), 16), segno: BigInt(`0x${name.slice(8, 16)}`) * perId + BigInt(`0x${name.slice(16, 24)}`) };
}

// ---------------------------------------------------------------- history files

/** One line of a history file: the timeline `parent` ended (switched) at `switchLsn`. */
export interface HistoryEntry {
  parent: number;
  switchLsn: string;
}

/** A timeline's history file: `<parent TLI>\t<switch LSN>\t<reason>` per line, oldest first. */
export function parseHistoryFile(text: string): HistoryEntry[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(/\s+/))
    .filter(([tli, lsn]) => /^\d+$/.test(tli) && /^[0-9A-F]+\/[0-9A-F]+$/i.test(lsn ?? ''))
    .map(([tli, lsn]) => ({ parent: Number(tli), switchLsn: lsn.toUpperCase() }));
}

// ---------------------------------------------------------------- records

/** One archived segment, as the index and the object's metadata record it. */
export interface ArchivedSegment {
  segment: string;
  /** SHA-256 of the uncompressed segment (compressed bytes may differ between zstd versions). */
  sha256: string;
  /** Bytes stored (compressed, and encrypted when the archive is). */
  storedBytes: number;
  /** SHA-256 of the object as stored, when encrypted (ciphertext differs on every upload). */
  storedSha256?: string;
  /** The master key that wraps the segment's data key, when encrypted. */
  keyId?: string;
  archivedAt: string;
}

/** One block of the archive index (<root>/wal-index/<TLI>/<block>.json). */
export interface WalIndexBlock {
  timeline: number;
  block: number;
  segments: ArchivedSegment[];
  /** HMAC by a worker's key (src/archive/archiveCrypto.ts): a block that does not verify is ignored. */
  authentication?: RecordAuthentication;
}

/** A base backup's record (backup.json), written last: a base backup exists only once it is there. */
export interface BaseBackupRecord {
  formatVersion: 1;
  backupId: string;
  cluster: string;
  systemIdentifier: string;
  /** The node it was read from. */
  node: string;
  kind: 'full' | 'incremental';
  /** The backup an incremental builds on (and that must be kept while it is). */
  parentBackupId?: string;
  startLsn: string;
  startTimeline: number;
  stopLsn: string;
  stopTimeline: number;
  startedAt: string;
  stoppedAt: string;
  serverVersion: string;
  /**
   * Every object of the backup, relative to its prefix, with the size and SHA-256 of the file
   * pg_basebackup wrote and, when encrypted, `stored`: the object as stored (ciphertext) and its key.
   */
  files: { name: string; sizeBytes: number; sha256: string; stored?: StoredObject }[];
  sizeBytes: number;
  /** How the objects are encrypted; absent: stored as written (no key was configured). */
  encryption?: ArchiveEncryption;
  /** When a restore drill last proved it restorable (issue 17 writes this beside it). */
  lastProvedAt?: string;
  /** HMAC of the rest by a worker's key, added as it is published: only an authentic record is acted on. */
  authentication?: RecordAuthentication;
}

/** A record pgops can use: anything else in the bucket is left out of the catalog, never acted on. */
export function isBaseBackupRecord(value: unknown): value is BaseBackupRecord {
  const r = value as Partial<BaseBackupRecord> | null;
  const lsn = (v: unknown) => typeof v === 'string' && /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(v);
  return (
    typeof r === 'object' &&
    r !== null &&
    r.formatVersion === 1 &&
    typeof r.backupId === 'string' &&
    typeof r.cluster === 'string' &&
    typeof r.systemIdentifier === 'string' &&
    (r.kind === 'full' || (r.kind === 'incremental' && typeof r.parentBackupId === 'string')) &&
    lsn(r.startLsn) &&
    lsn(r.stopLsn) &&
    Number.isInteger(r.startTimeline) &&
    Number.isInteger(r.stopTimeline) &&
    typeof r.startedAt === 'string' &&
    typeof r.stoppedAt === 'string' &&
    Array.isArray(r.files)
  );
}
