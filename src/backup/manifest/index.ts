// The backup manifest, the single source of truth about one backup: what it is, the files it
// consists of (each with its SHA-256), what it needs of a server, how it was verified, and where
// each part lives in the bucket. This file is pure (workflows import it too); reading and writing
// manifests, locally and in S3, is ./store.ts.
import type { S3Config } from '../../shared/config';
import type { Compression, DumpFormat, VerificationResult } from '../contract';
import type { TargetName } from '../../shared/targets';
import type { AuthenticationStatus, RecordAuthentication } from '../../shared/crypto/manifestAuth';

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
  /** The globals file's own checksum (absent in backups older than the field). */
  globals?: DataFile;
  /** How the objects are encrypted; absent: stored as they are. Each object's key id is in its `stored`. */
  encryption?: ManifestEncryption;
  verification?: VerificationResult;
  /** HMAC of the rest by a worker's key: only an authentic manifest is listed as verified, restored or counted by retention. */
  authentication?: RecordAuthentication;
}

/** A file of the backup: size and SHA-256 of its plaintext (what a restore proves), and how it is stored. */
export interface DataFile {
  name: string;
  sizeBytes: number;
  sha256: string;
  /** The object as stored, when that differs from the plaintext (encrypted): what S3 and HeadObject see. */
  stored?: StoredObject;
}

export interface StoredObject {
  sizeBytes: number;
  sha256: string;
  /** The master key that wraps this object's data key. */
  keyId: string;
}

export interface ManifestEncryption {
  scheme: string;
  cipher: string;
  chunkBytes: number;
  /** The key new objects of this backup are encrypted with (each object also records its own). */
  keyId: string;
}

export interface CatalogEntry {
  backupId: string;
  target: TargetName;
  finishedAt: string;
  sizeBytes: number;
  /** Restore-verified and trusted: only such a backup is `latest`. */
  verified: boolean;
  /** Whether the manifest's authentication verified with this process's keys. */
  authentication: AuthenticationStatus;
  /** The key id the manifest is signed with, when it names one. */
  authenticationKeyId?: string;
  /** May be restored and counted by retention: authentic, or nothing to check with (no keys configured). */
  trusted: boolean;
  /** Key ids the objects are encrypted with; empty: stored unencrypted. */
  encryptedWith: string[];
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

/** What an object is bound to when encrypted: its place in the catalog (a copy under another name does not open). */
export function objectContext(manifest: Pick<BackupManifest, 'target' | 'backupId'>, name: string): string {
  return `${manifest.target}/${manifest.backupId}/${name}`;
}

/** The data files and the globals, each as the manifest records it. */
export function storedFiles(manifest: BackupManifest): DataFile[] {
  return manifest.globals ? [...manifest.dataFiles, manifest.globals] : manifest.dataFiles;
}

/** Every key id a backup needs to be verified and read: its signature's and its objects'. */
export function keysNeeded(manifest: BackupManifest): string[] {
  const ids = new Set<string>();
  if (manifest.authentication?.keyId) ids.add(manifest.authentication.keyId);
  for (const f of storedFiles(manifest)) if (f.stored) ids.add(f.stored.keyId);
  return [...ids].sort();
}

/** What manifest MACs are computed over, so a manifest's MAC cannot pass for another record's. */
export const MANIFEST_DOMAIN = 'backup manifest';

export const DUMP_FILE = 'dump.pgdump';

export const DUMP_DIR = 'dump.dir';

export const GLOBALS_FILE = 'globals.sql';

export const MANIFEST_FILE = 'manifest.json';

/** The manifest as published: the staged one plus how it was verified (the catalog lists only these). */
export function withVerification(manifest: BackupManifest, verification: VerificationResult): BackupManifest {
  return { ...manifest, verification };
}
