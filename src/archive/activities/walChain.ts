// The WAL-chain audit: what the archive holds per timeline, read from its index and a listing of
// the bucket, following the history files from the newest timeline back to the first. A segment
// that should be there and is not is reported by name; the recoverable window and retention
// are computed from this (issue 16's other half).
//
// With a key ring the audit reads only what a worker wrote: history files open (they are sealed
// like segments) or count as missing, and an index block whose authentication does not verify is
// left out, so a planted index cannot mark segments missing or present.
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { WorkerConfig } from '../../shared/config';
import { createS3Client, readObjectIfPresent } from '../../shared/storage/s3Client';
import type { KeyRing } from '../../shared/crypto/keyRing';
import { checkArchiveRecord, openBuffer, WAL_INDEX_DOMAIN } from '../archiveCrypto';
import { resolveCluster } from '../../failover/activities/cluster';
import type { ArchiveGap, TimelineChain, WalChainAudit } from '../contract';
import {
  DEFAULT_WAL_SEGMENT_BYTES,
  formatLsn,
  parseLsn,
  parseSegmentName,
  segmentName,
  timelineHex,
  parseHistoryFile,
  type HistoryEntry,
  type WalIndexBlock,
} from '../layout';
import { archiveDescriptorKey, asArchiveFailure, headMetadata, listKeys, type ArchiveDescriptor } from './archiveStore';

/** Everything the audit reads, so the analysis itself is a pure function (and testable as one). */
export interface ArchiveListing {
  segmentBytes: number;
  /** Complete segment names in S3. */
  segments: string[];
  /** Partial segments in S3 with their metadata. */
  partials: { segment: string; validToLsn?: string; final: boolean }[];
  /** History files in S3 by timeline, parsed. */
  histories: Map<number, HistoryEntry[]>;
  /** Segment names the index lists. */
  indexed: string[];
  recordedGaps: ArchiveGap[];
}

const bigMax = (a: bigint, b: bigint) => (a > b ? a : b);

export function analyseWalChain(cluster: string, listing: ArchiveListing): Omit<WalChainAudit, 'systemIdentifier' | 'root' | 'auditedAt'> {
  const size = BigInt(listing.segmentBytes);
  const byTimeline = new Map<number, bigint[]>();
  for (const name of listing.segments) {
    const parsed = parseSegmentName(name, listing.segmentBytes);
    if (!parsed) continue;
    byTimeline.set(parsed.timeline, [...(byTimeline.get(parsed.timeline) ?? []), parsed.segno]);
  }
  const timelines = new Set<number>([...byTimeline.keys(), ...listing.histories.keys()]);
  for (const p of listing.partials) timelines.add(parseSegmentName(p.segment, listing.segmentBytes)!.timeline);
  const headTimeline = timelines.size ? Math.max(...timelines) : undefined;

  // A timeline's parent and switch point are the last line of its own history file.
  const parentOf = (tli: number) => listing.histories.get(tli)?.at(-1);
  const missingHistories = [...timelines].filter((t) => t > 1 && !listing.histories.has(t));
  const chain = new Set<number>();
  if (headTimeline !== undefined) {
    chain.add(headTimeline);
    for (const entry of listing.histories.get(headTimeline) ?? []) chain.add(entry.parent);
  }
  // Where each timeline on the chain hands over to its child: the child's switch point.
  const handover = new Map<number, bigint>();
  for (const tli of chain) {
    const entry = parentOf(tli);
    if (entry) handover.set(entry.parent, parseLsn(entry.switchLsn));
  }

  const indexed = new Set(listing.indexed);
  const present = new Set(listing.segments);
  const result: TimelineChain[] = [];
  for (const tli of [...timelines].sort((a, b) => a - b)) {
    const segnos = (byTimeline.get(tli) ?? []).sort((a, b) => (a < b ? -1 : 1));
    const parent = parentOf(tli);
    const partial = listing.partials
      .filter((p) => parseSegmentName(p.segment, listing.segmentBytes)!.timeline === tli)
      .sort((a, b) => a.segment.localeCompare(b.segment))
      .at(-1);
    const partialSegno = partial ? parseSegmentName(partial.segment, listing.segmentBytes)!.segno : undefined;
    // A child timeline's archive starts in the segment it switched in; the first timeline's where its archive starts.
    const first = parent ? parseLsn(parent.switchLsn) / size : (segnos[0] ?? partialSegno);
    // A timeline its child left must reach up to (not into) that segment; any other up to its last
    // segment, or up to its partial (everything before the segment being written must be there).
    const switchAt = chain.has(tli) ? handover.get(tli) : undefined;
    let last: bigint | undefined;
    if (switchAt !== undefined) last = switchAt / size - 1n;
    else if (partialSegno !== undefined) last = partialSegno - 1n;
    if (switchAt === undefined && segnos.length) last = last === undefined ? segnos.at(-1) : bigMax(last, segnos.at(-1)!);
    const missing: string[] = [];
    if (first !== undefined && last !== undefined) {
      const have = new Set(segnos);
      for (let s = first; s <= last; s++) if (!have.has(s)) missing.push(segmentName(tli, s, listing.segmentBytes));
    }
    const names = segnos.map((s) => segmentName(tli, s, listing.segmentBytes));
    result.push({
      timeline: tli,
      parent: parent ? { timeline: parent.parent, switchLsn: parent.switchLsn } : undefined,
      firstSegment: names[0],
      lastSegment: names.at(-1),
      segments: names.length,
      missing,
      unindexed: names.filter((n) => !indexed.has(n)),
      // Index entries older than the oldest segment still stored were pruned by retention (which
      // rewrites an index block only once all of it has gone): expired, not lost.
      indexedButAbsent: [...indexed].filter((n) => n.startsWith(timelineHex(tli)) && !present.has(n) && (names[0] === undefined || n > names[0])).sort(),
      partial,
      onCurrentChain: chain.has(tli),
    });
  }

  // The head: the newest timeline's last complete segment, or its partial's valid end if further.
  let headLsn: string | undefined;
  const head = result.find((t) => t.timeline === headTimeline);
  if (head) {
    const lastEnd = head.lastSegment ? (parseSegmentName(head.lastSegment, listing.segmentBytes)!.segno + 1n) * size : 0n;
    const partialEnd = head.partial?.validToLsn && head.partial.validToLsn !== 'unknown' ? parseLsn(head.partial.validToLsn) : 0n;
    const end = bigMax(lastEnd, partialEnd);
    headLsn = end > 0n ? formatLsn(end) : undefined;
  }
  const onChain = result.filter((t) => t.onCurrentChain);
  return {
    cluster,
    timelines: result,
    headTimeline,
    headLsn,
    missingHistories,
    recordedGaps: listing.recordedGaps,
    gapless: onChain.every((t) => t.missing.length === 0 && t.indexedButAbsent.length === 0) && missingHistories.length === 0,
  };
}

/** The newest archive of the cluster (by its archive.json), when no system identifier is given. */
async function newestRoot(s3: S3Client, config: Pick<WorkerConfig, 's3'>, cluster: string): Promise<{ root: string; descriptor: ArchiveDescriptor } | undefined> {
  const base = `${config.s3.prefix}/physical/${cluster}/`;
  const descriptors = (await listKeys(s3, config.s3.bucket, base)).filter((k) => k.endsWith('/archive.json') && k.split('/').length === base.split('/').length + 1);
  let newest: { root: string; descriptor: ArchiveDescriptor } | undefined;
  for (const key of descriptors) {
    const object = await readObjectIfPresent(s3, config.s3.bucket, key);
    if (!object) continue;
    const descriptor = JSON.parse(object.body) as ArchiveDescriptor;
    if (!newest || descriptor.createdAt > newest.descriptor.createdAt) newest = { root: key.slice(0, -'/archive.json'.length), descriptor };
  }
  return newest;
}

/** Reads the archive of `cluster` (its newest system identifier unless one is named) and audits its chain. */
export async function auditWalChain(config: Pick<WorkerConfig, 's3' | 'encryption'>, input: { cluster: string; systemIdentifier?: string }): Promise<WalChainAudit> {
  const s3 = createS3Client(config.s3);
  const Bucket = config.s3.bucket;
  const auditedAt = new Date().toISOString();
  try {
    const found = input.systemIdentifier
      ? { root: `${config.s3.prefix}/physical/${input.cluster}/${input.systemIdentifier}`, descriptor: undefined as ArchiveDescriptor | undefined }
      : await newestRoot(s3, config, input.cluster);
    if (!found) return { cluster: input.cluster, timelines: [], missingHistories: [], recordedGaps: [], gapless: true, auditedAt };
    const { root } = found;
    const descriptor = found.descriptor ?? (JSON.parse((await readObjectIfPresent(s3, Bucket, archiveDescriptorKey(root)))?.body ?? '{}') as Partial<ArchiveDescriptor>);
    const segmentBytes = descriptor.segmentBytes ?? DEFAULT_WAL_SEGMENT_BYTES;
    const keys = await listKeys(s3, Bucket, `${root}/`);
    const listing: ArchiveListing = { segmentBytes, segments: [], partials: [], histories: new Map(), indexed: [], recordedGaps: [] };
    for (const key of keys) {
      const rel = key.slice(root.length + 1);
      let m: RegExpExecArray | null;
      if ((m = /^wal\/[0-9A-F]{8}\/([0-9A-F]{24})\.zst$/.exec(rel))) listing.segments.push(m[1]);
      else if ((m = /^wal\/[0-9A-F]{8}\/([0-9A-F]{24})\.partial\.zst$/.exec(rel))) {
        const meta = await headMetadata(s3, Bucket, key);
        if (meta) listing.partials.push({ segment: m[1], validToLsn: meta['valid-to-lsn'], final: meta.final === 'true' });
      } else if ((m = /^wal\/history\/([0-9A-F]{8})\.history$/.exec(rel))) {
        const text = await readHistory(s3, Bucket, config.encryption, root, key);
        if (text !== undefined) listing.histories.set(parseInt(m[1], 16), parseHistoryFile(text));
      } else if (/^wal-index\/[0-9A-F]{8}\/[0-9A-F]{8}\.json$/.test(rel)) {
        const object = await readObjectIfPresent(s3, Bucket, key);
        const block = object ? (JSON.parse(object.body) as WalIndexBlock) : undefined;
        if (block && checkArchiveRecord(config.encryption, WAL_INDEX_DOMAIN, block).trusted) listing.indexed.push(...block.segments.map((s) => s.segment));
      } else if (/^gaps\/.*\.json$/.test(rel)) {
        const object = await readObjectIfPresent(s3, Bucket, key);
        if (object) listing.recordedGaps.push(JSON.parse(object.body) as ArchiveGap);
      }
    }
    const systemIdentifier = root.split('/').at(-1);
    return { ...analyseWalChain(input.cluster, listing), systemIdentifier, root, segmentBytes, auditedAt };
  } catch (err) {
    throw asArchiveFailure(config, err);
  } finally {
    s3.destroy();
  }
}

/** A history file's text; undefined when it is gone, or (with a ring) when it does not open as one a worker sealed under its name. */
async function readHistory(s3: S3Client, Bucket: string, ring: KeyRing | undefined, root: string, key: string): Promise<string | undefined> {
  let stored: Buffer;
  try {
    stored = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToByteArray());
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
  if (!ring) return stored.toString('utf8');
  // Not a worker's: as good as missing (reported as a missing history), never followed.
  return openBuffer(ring, root, key, stored).then(
    (plain) => plain.toString('utf8'),
    () => undefined,
  );
}

export function walChainActivities(config: WorkerConfig) {
  return {
    /** The audit as an activity (for the audit schedule and `pgops backups list`). */
    auditWalChain: (input: { cluster: string; systemIdentifier?: string }): Promise<WalChainAudit> => {
      resolveCluster(config, input.cluster);
      return auditWalChain(config, input);
    },
  };
}
