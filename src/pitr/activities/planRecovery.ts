// The plan step: read the cluster's base backups and WAL archive from the bucket, compute the
// recoverable window, and choose where recovery starts. A target outside the window is refused
// here, before anything is created, with the window in the message.
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { createS3Client, readObjectIfPresent, storageFailure } from '../../shared/storage/s3Client';
import { resolveCluster } from '../../failover/activities/cluster';
import { listBaseBackups, listWalObjects, readTimelineSwitches, walChainFromListing } from '../../archive/catalog';
import { DEFAULT_WAL_SEGMENT_BYTES, parseSegmentName } from '../../archive/layout';
import { recoverableWindow, type WalChain } from '../../archive/recoveryWindow';
import type { RecoveryPlan, RecoveryTarget } from '../contract';
import { chooseBaseBackup, recoverySettings } from '../recoveryTarget';

/** The archive's own description (written by the WAL archiver): its segment size. */
async function segmentBytesOf(s3: S3Client, bucket: string, root: string): Promise<number> {
  const descriptor = await readObjectIfPresent(s3, bucket, `${root}/archive.json`);
  const bytes = descriptor ? Number((JSON.parse(descriptor.body) as { segmentBytes?: number }).segmentBytes) : NaN;
  return Number.isInteger(bytes) && bytes > 0 ? bytes : DEFAULT_WAL_SEGMENT_BYTES;
}

/**
 * The chain with its head: the newest timeline's growing partial segment (its valid-to LSN and
 * when it was written) when it is past the last complete one, else the last complete segment's
 * end and upload time. That time is the newest moment a time target may name.
 */
async function chainWithHead(s3: S3Client, bucket: string, root: string, segmentBytes: number): Promise<WalChain & { segmentBytes: number }> {
  const keys = await listWalObjects(s3, bucket, root);
  const chain = { ...walChainFromListing(keys), segmentBytes };
  const newest = [...chain.timelines].sort((a, b) => b.timeline - a.timeline)[0];
  if (!newest) return chain;
  const head = async (key: string) => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const lastSegno = parseSegmentName(newest.lastSegment, segmentBytes)!.segno;
  const partials = keys
    .map((key) => ({ key, match: /\/wal\/[0-9A-F]{8}\/([0-9A-F]{24})\.partial\.zst$/.exec(key) }))
    .filter((p) => p.match && parseSegmentName(p.match[1], segmentBytes)?.timeline === newest.timeline)
    .map((p) => ({ key: p.key, segno: parseSegmentName(p.match![1], segmentBytes)!.segno }))
    .filter((p) => p.segno > lastSegno)
    .sort((a, b) => (a.segno < b.segno ? -1 : 1));
  const partial = partials.at(-1);
  if (partial) {
    const meta = await head(partial.key);
    const validTo = meta.Metadata?.['valid-to-lsn'];
    if (validTo && /^[0-9A-F]+\/[0-9A-F]+$/i.test(validTo) && partial.segno === lastSegno + 1n) {
      newest.headLsn = validTo.toUpperCase();
      newest.headAt = meta.Metadata?.['archived-at'] ?? meta.LastModified?.toISOString();
      return chain;
    }
  }
  const meta = await head(keys.find((key) => key.endsWith(`/${newest.lastSegment}.zst`))!);
  newest.headAt = meta.Metadata?.['archived-at'] ?? meta.LastModified?.toISOString();
  return chain;
}

export function planRecoveryActivities(config: WorkerConfig) {
  async function planRecovery(input: { cluster: string; target: RecoveryTarget }): Promise<RecoveryPlan> {
    const cluster = resolveCluster(config, input.cluster);
    const s3 = createS3Client(config.s3);
    try {
      const catalog = await listBaseBackups(s3, config.s3, cluster.name);
      const root = catalog.at(-1)?.root;
      if (!root) {
        throw ApplicationFailure.nonRetryable(
          `cannot restore cluster ${cluster.name} to a point in time: it has no base backup in s3://${config.s3.bucket}/${config.s3.prefix}/physical/${cluster.name}/ (run pgops basebackup now)`,
          'TargetOutsideWindow',
        );
      }
      const backups = catalog.filter((c) => c.root === root).map((c) => c.record);
      const segmentBytes = await segmentBytesOf(s3, config.s3.bucket, root);
      const chain = await chainWithHead(s3, config.s3.bucket, root, segmentBytes);
      const window = recoverableWindow(backups, chain, await readTimelineSwitches(s3, config.s3.bucket, root));
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
