// The backup manifest, the single source of truth about one backup: what it is, the files it
// consists of (each with its SHA-256), what it needs of a server, how it was verified, and where
// each part lives in the bucket. This file is pure (workflows import it too); reading and writing
// manifests, locally and in S3, is ./store.ts.
import type { S3Config } from '../../shared/config';
import type { Compression, DumpFormat, VerificationResult } from '../contract';
import type { TargetName } from '../../shared/targets';

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

/** Has every field the catalog, restores and prune rely on (manifests from early builds lack dataFiles). */
export function isReadableManifest(m: Partial<BackupManifest>): m is BackupManifest {
  return (
    typeof m.backupId === 'string' &&
    typeof m.target === 'string' &&
    typeof m.finishedAt === 'string' &&
    typeof m.dumpFile === 'string' &&
    Array.isArray(m.dataFiles)
  );
}

export const DUMP_FILE = 'dump.pgdump';

export const DUMP_DIR = 'dump.dir';

export const GLOBALS_FILE = 'globals.sql';

export const MANIFEST_FILE = 'manifest.json';

/** The manifest as published: the staged one plus how it was verified (the catalog lists only these). */
export function withVerification(manifest: BackupManifest, verification: VerificationResult): BackupManifest {
  return { ...manifest, verification };
}
