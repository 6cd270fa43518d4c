// Where a backup lives in the bucket, and how to read the catalog back: the manifests in S3 are
// the catalog, so it survives the loss of the database server and of the worker's disk.
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from '../shared/config';
import { GLOBALS_FILE, MANIFEST_FILE } from './stagedBackup';
import type { Compression, DumpFormat, VerificationResult } from './contract';
import type { TargetName } from '../shared/targets';

/** Read at dump time in the dump's snapshot: the roles and extensions the database refers to. */
export interface DatabaseRequirements {
  /** Owners, grantees and per-database setting roles of the database and its objects. */
  roles: string[];
  extensions: { name: string; version: string }[];
}

/** The single source of truth about one backup. Written at dump time, stored beside the dump. */
export interface BackupManifest {
  formatVersion: 1;
  backupId: string;
  /** The catalog: a target's name, or a cluster's when a role ("main:primary") was backed up. */
  target: TargetName;
  /** The node the dump was read from, when it is not `target` itself. */
  sourceNode?: TargetName;
  database: string;
  serverVersion: string;
  pgDumpVersion: string;
  startedAt: string;
  finishedAt: string;
  format: DumpFormat;
  /** Parallel pg_dump jobs (directory format). */
  jobs: number;
  compression: Compression;
  /** Total bytes of the data files. */
  sizeBytes: number;
  /** SHA-256 of the dump file (custom format), or of the data file list (directory format). */
  sha256: string;
  /** Every file the dump consists of, with its own checksum; paths relative to the backup's folder. */
  dataFiles: DataFile[];
  databaseSizeBytes: number;
  /** What a server needs before this backup restores on it (absent in backups older than the field). */
  requires?: DatabaseRequirements;
  /** Row count of every table, taken in the dump's own snapshot. Keyed "schema.table". */
  rowCounts: Record<string, number>;
  /** What pg_restore reads, inside the backup's folder: the file, or the directory. */
  dumpFile: string;
  /** Cluster-wide objects (roles, memberships, tablespaces) from pg_dumpall --globals-only. */
  globalsFile: string;
  globalsIncludePasswords: boolean;
  verification?: VerificationResult;
}

export interface DataFile {
  name: string;
  sizeBytes: number;
  sha256: string;
}

export interface CatalogEntry {
  backupId: string;
  target: TargetName;
  finishedAt: string;
  sizeBytes: number;
  verified: boolean;
  manifestKey: string;
  dumpKey: string;
  globalsKey: string;
  /** Every data object of the backup (one for custom format, one per file for directory format). */
  dataKeys: string[];
}

export function backupPrefix(s3: S3Config, target: string, backupId?: string): string {
  return backupId ? `${s3.prefix}/${target}/${backupId}/` : `${s3.prefix}/${target}/`;
}

/** Where each part of a backup is stored: the dump (a file, or a directory's prefix), its data objects, globals, manifest. */
export function backupKeys(s3: S3Config, manifest: Pick<BackupManifest, 'target' | 'backupId' | 'dumpFile' | 'dataFiles'>) {
  const prefix = backupPrefix(s3, manifest.target, manifest.backupId);
  return {
    dumpKey: prefix + manifest.dumpFile,
    dataKeys: manifest.dataFiles.map((f) => prefix + f.name),
    globalsKey: prefix + GLOBALS_FILE,
    manifestKey: prefix + MANIFEST_FILE,
  };
}

export async function readManifestObject(s3: S3Client, bucket: string, key: string): Promise<BackupManifest> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return JSON.parse(await object.Body!.transformToString()) as BackupManifest;
}

/** Every backup of the target (or of all targets) that has a manifest, newest first. */
export async function listCatalog(s3: S3Client, config: S3Config, target?: string): Promise<CatalogEntry[]> {
  const prefix = target ? backupPrefix(config, target) : `${config.prefix}/`;
  const manifestKeys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: config.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) if (object.Key?.endsWith(`/${MANIFEST_FILE}`)) manifestKeys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const entries: CatalogEntry[] = [];
  for (const key of manifestKeys) {
    const m = await readManifestObject(s3, config.bucket, key);
    // A manifest pgops cannot read is left out: nothing is restored from it or pruned because of it.
    if (!isReadableManifest(m)) continue;
    entries.push({
      backupId: m.backupId,
      target: m.target,
      finishedAt: m.finishedAt,
      sizeBytes: m.sizeBytes,
      verified: m.verification !== undefined,
      ...backupKeys(config, m),
    });
  }
  return entries.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
}

/** Has every field the catalog, restores and prune rely on (manifests from early builds lack dataFiles). */
function isReadableManifest(m: Partial<BackupManifest>): m is BackupManifest {
  return (
    typeof m.backupId === 'string' &&
    typeof m.target === 'string' &&
    typeof m.finishedAt === 'string' &&
    typeof m.dumpFile === 'string' &&
    Array.isArray(m.dataFiles)
  );
}
