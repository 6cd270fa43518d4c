// Where a backup lives in the bucket, and how to read the catalog back: the manifests in S3 are
// the catalog, so it survives the loss of the database server and of the worker's disk.
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from '../shared/config';
import type { BackupManifest, CatalogEntry } from '../types';
import { GLOBALS_FILE, MANIFEST_FILE } from './stagedBackup';

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
