// The physical catalog: the one home for reading base backup records from the bucket (the logical
// backups' catalog is src/backup/manifest/store.ts). A base backup exists once its backup.json is
// there; anything under base/ without one is an upload still running, or one that died.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from '../shared/config';
import { PRIVATE_FILE_MODE } from '../backup/stagedBackup';
import {
  BASE_BACKUP_MANIFEST,
  BASE_BACKUP_RECORD,
  baseBackupObjectKey,
  DRILL_RECORD,
  isBaseBackupRecord,
  physicalPrefix,
  type BaseBackupRecord,
} from './layout';
import { auditWalChain } from './activities/walChain';
import { recoverableWindow, windowInputsFromAudit, type RecoverableWindow } from './recoveryWindow';

export interface CatalogedBaseBackup {
  /** <prefix>/physical/<cluster>/<system identifier> */
  root: string;
  record: BaseBackupRecord;
}

export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function listChildren(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }));
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return names;
}

/** The clusters with anything in the physical archive. */
export function listPhysicalClusters(s3: S3Client, config: S3Config): Promise<string[]> {
  return listChildren(s3, config.bucket, physicalPrefix(config));
}

/** The archive roots of a cluster: one per system identifier (a new initdb starts a new one). */
export async function listArchiveRoots(s3: S3Client, config: S3Config, cluster: string): Promise<string[]> {
  return (await listChildren(s3, config.bucket, physicalPrefix(config, cluster))).map((id) => `${physicalPrefix(config, cluster)}${id}`);
}

/** Every complete base backup of the cluster (all roots, or one), oldest first. */
export async function listBaseBackups(s3: S3Client, config: S3Config, cluster: string, root?: string): Promise<CatalogedBaseBackup[]> {
  const roots = root ? [root] : await listArchiveRoots(s3, config, cluster);
  const entries: CatalogedBaseBackup[] = [];
  for (const r of roots) {
    const keys = await listKeys(s3, config.bucket, `${r}/base/`);
    const drills = new Set(keys.filter((key) => key.endsWith(`/${DRILL_RECORD}`)));
    for (const key of keys.filter((k) => k.endsWith(`/${BASE_BACKUP_RECORD}`))) {
      const record = JSON.parse(await readText(s3, config.bucket, key)) as unknown;
      // A record pgops cannot read is left out: nothing builds on it, nothing is pruned because of it.
      if (!isBaseBackupRecord(record)) continue;
      // The last restore drill of the backup lies beside its record (and goes with it at retention).
      const drillKey = `${key.slice(0, -BASE_BACKUP_RECORD.length)}${DRILL_RECORD}`;
      if (drills.has(drillKey)) {
        const drill = JSON.parse(await readText(s3, config.bucket, drillKey)) as { ok?: boolean; provedAt?: string };
        if (drill.ok && drill.provedAt) record.lastProvedAt = drill.provedAt;
      }
      entries.push({ root: r, record });
    }
  }
  return entries.sort((a, b) => a.record.stoppedAt.localeCompare(b.record.stoppedAt));
}

async function readText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return object.Body!.transformToString();
}

/** Streams a backup's backup_manifest (the parent of an incremental) to a private file. */
export async function downloadBaseBackupManifest(s3: S3Client, bucket: string, root: string, backupId: string, file: string): Promise<void> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: baseBackupObjectKey(root, backupId, BASE_BACKUP_MANIFEST) }));
  await pipeline(object.Body as Readable, createWriteStream(file, { mode: PRIVATE_FILE_MODE }));
}

/** The archived segment and index objects of a root (not the history files). */
export async function listWalObjects(s3: S3Client, bucket: string, root: string): Promise<string[]> {
  const keys = await listKeys(s3, bucket, `${root}/wal/`);
  return [...keys.filter((key) => !key.includes('/wal/history/')), ...(await listKeys(s3, bucket, `${root}/wal-index/`))];
}

export interface PhysicalArchiveView {
  cluster: string;
  root?: string;
  backups: BaseBackupRecord[];
  /** Undefined when the cluster has no WAL archive. */
  window?: RecoverableWindow;
}

/**
 * The cluster's base backups and its recoverable window, for `pgops backups list`: the root of
 * its newest base backup (its current system identifier), or the only root there is.
 */
export async function describePhysicalArchive(s3: S3Client, config: S3Config, cluster: string): Promise<PhysicalArchiveView> {
  const all = await listBaseBackups(s3, config, cluster);
  const root = all.at(-1)?.root ?? (await listArchiveRoots(s3, config, cluster))[0];
  if (!root) return { cluster, backups: [] };
  const backups = all.filter((b) => b.root === root).map((b) => b.record);
  const audit = await auditWalChain({ s3: config }, { cluster, systemIdentifier: root.split('/').at(-1) });
  if (audit.timelines.length === 0) return { cluster, root, backups };
  const { chain, switches } = windowInputsFromAudit(audit);
  const window = recoverableWindow(backups, chain, switches);
  return { cluster, root, backups, window };
}
