// The physical catalog: the one home for reading base backup records from the bucket (the logical
// backups' catalog is src/backup/manifest/store.ts). A base backup exists once its backup.json is
// there; anything under base/ without one is an upload still running, or one that died. With a
// key ring, only a record whose authentication verifies is in the catalog: one anybody with write
// access to the bucket planted (or one written before keys were configured) is listed apart, and
// nothing is planned, restored, counted for the window, built on or pruned because of it.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from '../shared/config';
import type { KeyRing } from '../shared/crypto/keyRing';
import type { AuthenticationStatus } from '../shared/crypto/manifestAuth';
import { PRIVATE_FILE_MODE } from '../backup/stagedBackup';
import {
  BASE_BACKUP_MANIFEST,
  BASE_BACKUP_RECORD,
  baseBackupObjectKey,
  DRILL_RECORD,
  isBaseBackupRecord,
  physicalPrefix,
  type BaseBackupRecord,
  type WalIndexBlock,
} from './layout';
import { auditWalChain } from './activities/walChain';
import { recoverableWindow, windowInputsFromAudit, type RecoverableWindow } from './recoveryWindow';
import { BASE_BACKUP_RECORD_DOMAIN, checkArchiveRecord, openStream } from './archiveCrypto';

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

/** A base backup record in the bucket that this worker must not act on, for listings. */
export interface UntrustedBaseBackup {
  root: string;
  key: string;
  backupId: string;
  status: AuthenticationStatus;
  keyId?: string;
}

/**
 * Every complete base backup of the cluster (all roots, or one), oldest first, whose record
 * verifies with `ring` (every readable record when no ring is configured), and apart the ones
 * that do not. `ring` is not optional: every caller decides what it trusts.
 */
export async function readBaseBackupCatalog(
  s3: S3Client,
  config: S3Config,
  ring: KeyRing | undefined,
  cluster: string,
  root?: string,
): Promise<{ backups: CatalogedBaseBackup[]; untrusted: UntrustedBaseBackup[] }> {
  const roots = root ? [root] : await listArchiveRoots(s3, config, cluster);
  const entries: CatalogedBaseBackup[] = [];
  const untrusted: UntrustedBaseBackup[] = [];
  for (const r of roots) {
    const keys = await listKeys(s3, config.bucket, `${r}/base/`);
    const drills = new Set(keys.filter((key) => key.endsWith(`/${DRILL_RECORD}`)));
    for (const key of keys.filter((k) => k.endsWith(`/${BASE_BACKUP_RECORD}`))) {
      const record = parseJson(await readText(s3, config.bucket, key));
      // A record pgops cannot read is left out: nothing builds on it, nothing is pruned because of it.
      if (!isBaseBackupRecord(record)) continue;
      const check = checkArchiveRecord(ring, BASE_BACKUP_RECORD_DOMAIN, record);
      // Where it is stored must be what it says it is: a real record copied under another id is no record of that id.
      if (!check.trusted || (ring && key !== baseBackupObjectKey(r, record.backupId, BASE_BACKUP_RECORD))) {
        untrusted.push({ root: r, key, backupId: record.backupId, status: check.trusted ? 'invalid' : check.status, ...(check.keyId ? { keyId: check.keyId } : {}) });
        continue;
      }
      // The last restore drill of the backup lies beside its record (and goes with it at retention).
      const drillKey = `${key.slice(0, -BASE_BACKUP_RECORD.length)}${DRILL_RECORD}`;
      if (drills.has(drillKey)) {
        const drill = JSON.parse(await readText(s3, config.bucket, drillKey)) as { ok?: boolean; provedAt?: string };
        if (drill.ok && drill.provedAt) record.lastProvedAt = drill.provedAt;
      }
      entries.push({ root: r, record });
    }
  }
  return { backups: entries.sort((a, b) => a.record.stoppedAt.localeCompare(b.record.stoppedAt)), untrusted };
}

/** The trusted half of readBaseBackupCatalog: what planning, retention and incrementals act on. */
export async function listBaseBackups(s3: S3Client, config: S3Config, ring: KeyRing | undefined, cluster: string, root?: string): Promise<CatalogedBaseBackup[]> {
  return (await readBaseBackupCatalog(s3, config, ring, cluster, root)).backups;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function readText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return object.Body!.transformToString();
}

/** Streams a backup's backup_manifest (the parent of an incremental) to a private file, opened when its record says it is sealed. */
export async function downloadBaseBackupManifest(s3: S3Client, bucket: string, ring: KeyRing | undefined, root: string, record: BaseBackupRecord, file: string): Promise<void> {
  const key = baseBackupObjectKey(root, record.backupId, BASE_BACKUP_MANIFEST);
  const stored = record.files.find((f) => f.name === BASE_BACKUP_MANIFEST)?.stored;
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  await pipeline([object.Body as Readable, ...(stored ? [openStream(ring, root, key, stored.keyId)] : []), createWriteStream(file, { mode: PRIVATE_FILE_MODE })]);
}

/** The archived segment and index objects of a root (not the history files). */
export async function listWalObjects(s3: S3Client, bucket: string, root: string): Promise<string[]> {
  const keys = await listKeys(s3, bucket, `${root}/wal/`);
  return [...keys.filter((key) => !key.includes('/wal/history/')), ...(await listKeys(s3, bucket, `${root}/wal-index/`))];
}

/**
 * Which key ids the physical archive needs, each with what needs it (for `pgops keys`): every
 * base backup's signature and objects, records signed with a key this ring lacks, and every WAL
 * index block's signature and the segments it lists.
 */
export async function physicalKeyUses(s3: S3Client, config: S3Config, ring: KeyRing | undefined): Promise<Map<string, string[]>> {
  const uses = new Map<string, string[]>();
  const need = (id: string | undefined, what: string) => {
    if (id) uses.set(id, [...new Set([...(uses.get(id) ?? []), what])]);
  };
  for (const cluster of await listPhysicalClusters(s3, config)) {
    for (const root of await listArchiveRoots(s3, config, cluster)) {
      const { backups, untrusted } = await readBaseBackupCatalog(s3, config, ring, cluster, root);
      for (const { record } of backups) {
        const what = `base backup ${record.backupId}`;
        need(record.authentication?.keyId, what);
        for (const file of record.files) need(file.stored?.keyId, what);
      }
      for (const u of untrusted) if (u.status === 'unknown-key') need(u.keyId, `base backup ${u.backupId}`);
      for (const key of (await listKeys(s3, config.bucket, `${root}/wal-index/`)).filter((k) => k.endsWith('.json'))) {
        const block = parseJson(await readText(s3, config.bucket, key)) as WalIndexBlock | undefined;
        const what = `WAL of ${cluster}`;
        need(block?.authentication?.keyId, what);
        for (const segment of block?.segments ?? []) need(segment.keyId, what);
      }
    }
  }
  return uses;
}

export interface PhysicalArchiveView {
  cluster: string;
  root?: string;
  backups: BaseBackupRecord[];
  /** Records in the bucket this worker does not trust (unsigned, forged, or a key it lacks): shown, never used. */
  untrusted: UntrustedBaseBackup[];
  /** Undefined when the cluster has no WAL archive. */
  window?: RecoverableWindow;
}

/**
 * The cluster's base backups and its recoverable window, for `pgops backups list`: the root of
 * its newest base backup (its current system identifier), or the only root there is.
 */
export async function describePhysicalArchive(s3: S3Client, config: S3Config, ring: KeyRing | undefined, cluster: string): Promise<PhysicalArchiveView> {
  const { backups: all, untrusted } = await readBaseBackupCatalog(s3, config, ring, cluster);
  const root = all.at(-1)?.root ?? (await listArchiveRoots(s3, config, cluster))[0];
  if (!root) return { cluster, backups: [], untrusted };
  const backups = all.filter((b) => b.root === root).map((b) => b.record);
  const audit = await auditWalChain({ s3: config, encryption: ring }, { cluster, systemIdentifier: root.split('/').at(-1) });
  if (audit.timelines.length === 0) return { cluster, root, backups, untrusted };
  const { chain, switches } = windowInputsFromAudit(audit);
  const window = recoverableWindow(backups, chain, switches);
  return { cluster, root, backups, untrusted, window };
}
