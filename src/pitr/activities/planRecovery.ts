// The plan step: read the cluster's base backups and WAL archive from the bucket, compute the
// recoverable window, and choose where recovery starts. A target outside the window is refused
// here, before anything is created, with the window in the message.
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { createS3Client, readObjectIfPresent, storageFailure } from '../../shared/storage/s3Client';
import { resolveCluster } from '../../failover/activities/cluster';
import { listBaseBackups } from '../../archive/catalog';
import { auditWalChain } from '../../archive/activities/walChain';
import { archiveDescriptorKey } from '../../archive/activities/archiveStore';
import { DEFAULT_WAL_SEGMENT_BYTES, parseLsn, parseSegmentName, SEGMENTS_PER_INDEX_BLOCK, segmentNumber, walPartialKey, walSegmentKey } from '../../archive/layout';
import { archiveHead, recoverableWindow, windowInputsFromAudit, type TimelineSwitch, type WalChain } from '../../archive/recoveryWindow';
import type { RecoveryPlan, RecoveryTarget } from '../contract';
import { chooseBaseBackup, recoverySettings } from '../recoveryTarget';

/** The archive's own description (written by the WAL archiver): its segment size. */
async function segmentBytesOf(s3: S3Client, bucket: string, root: string): Promise<number> {
  const descriptor = await readObjectIfPresent(s3, bucket, archiveDescriptorKey(root));
  const bytes = descriptor ? Number((JSON.parse(descriptor.body) as { segmentBytes?: number }).segmentBytes) : NaN;
  return Number.isInteger(bytes) && bytes > 0 ? bytes : DEFAULT_WAL_SEGMENT_BYTES;
}

/**
 * The window's inputs from the WAL archiver's chain audit, with the time of its head: when the
 * growing partial segment (or, without one, the last complete segment) was written. That is
 * the newest moment a time target may name.
 */
async function chainWithHead(s3: S3Client, config: WorkerConfig, cluster: string, root: string, segmentBytes: number): Promise<{ chain: WalChain; switches: TimelineSwitch[] }> {
  const audit = await auditWalChain(config, { cluster, systemIdentifier: root.split('/').at(-1) });
  const { chain, switches } = windowInputsFromAudit(audit);
  const newest = [...chain.timelines].sort((a, b) => b.timeline - a.timeline)[0];
  if (!newest) return { chain: { ...chain, segmentBytes }, switches };
  const partial = audit.timelines.find((t) => t.timeline === newest.timeline)?.partial;
  const key = newest.headLsn && partial ? walPartialKey(root, partial.segment) : walSegmentKey(root, newest.lastSegment);
  const meta = await s3.send(new HeadObjectCommand({ Bucket: config.s3.bucket, Key: key }));
  newest.headAt = meta.Metadata?.['archived-at'] ?? meta.LastModified?.toISOString();
  return { chain: { ...chain, segmentBytes }, switches };
}

/** Segments missing only just before the head (within 4 GiB of WAL), as "N segment(s) from X": an archiver catching up; undefined otherwise. */
export function archiveBehind(chain: WalChain, segmentBytes: number): string | undefined {
  const newest = [...chain.timelines].sort((a, b) => b.timeline - a.timeline)[0];
  if (!newest || newest.missing.length === 0) return undefined;
  const head = archiveHead({ ...chain, segmentBytes });
  const headSegno = segmentNumber(parseLsn(head!.lsn), segmentBytes);
  const segnos = newest.missing.map((name) => parseSegmentName(name, segmentBytes)!.segno).sort((a, b) => (a < b ? -1 : 1));
  if (headSegno - segnos[0] > BigInt(SEGMENTS_PER_INDEX_BLOCK)) return undefined;
  return `${segnos.length} segment(s) from ${newest.missing.slice().sort()[0]}`;
}

export function planRecoveryActivities(config: WorkerConfig) {
  async function planRecovery(input: { cluster: string; target: RecoveryTarget }): Promise<RecoveryPlan> {
    const cluster = resolveCluster(config, input.cluster);
    const s3 = createS3Client(config.s3);
    try {
      const catalog = await listBaseBackups(s3, config.s3, config.encryption, cluster.name);
      const root = catalog.at(-1)?.root;
      if (!root) {
        throw ApplicationFailure.nonRetryable(
          `cannot restore cluster ${cluster.name} to a point in time: it has no base backup in s3://${config.s3.bucket}/${config.s3.prefix}/physical/${cluster.name}/ (run pgops basebackup now)`,
          'TargetOutsideWindow',
        );
      }
      const backups = catalog.filter((c) => c.root === root).map((c) => c.record);
      const segmentBytes = await segmentBytesOf(s3, config.s3.bucket, root);
      const { chain, switches } = await chainWithHead(s3, config, cluster.name, root, segmentBytes);
      const window = recoverableWindow(backups, chain, switches);
      const behind = archiveBehind(chain, segmentBytes);
      if (!window.from && behind) {
        // Holes just behind the growing partial are segments still on their way up after a burst.
        throw ApplicationFailure.retryable(`the WAL archive of ${cluster.name} is still uploading ${behind}: the archiver is behind its head; planning again shortly`, 'ArchiveBehind');
      }
      const choice = chooseBaseBackup(root, backups, window, input.target);
      if (!choice.ok) throw ApplicationFailure.nonRetryable(`${choice.why}. Nothing was created.`, 'TargetOutsideWindow');
      return { cluster: cluster.name, target: input.target, window, backup: choice.backup, settings: recoverySettings(input.target), notes: choice.notes, segmentBytes };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }

  return { planRecovery };
}
