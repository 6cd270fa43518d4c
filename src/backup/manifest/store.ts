// Reading and writing manifests: the staged one beside a dump on the worker's disk (written last,
// atomically, so its presence means the staged backup is complete), and the published ones in S3,
// which are the catalog: it survives the loss of the database server and of the worker's disk.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { S3Config } from '../../shared/config';
import { PRIVATE_FILE_MODE, stagedDir } from '../stagedBackup';
import { backupKeys, backupPrefix, isReadableManifest, MANIFEST_FILE, type BackupManifest, type CatalogEntry } from '.';

export async function writeManifest(dir: string, manifest: BackupManifest): Promise<void> {
  const tmp = path.join(dir, `${MANIFEST_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(manifest, null, 2), { mode: PRIVATE_FILE_MODE });
  await rename(tmp, path.join(dir, MANIFEST_FILE));
}

export async function readStagedManifest(stagingDir: string, backupId: string): Promise<BackupManifest | undefined> {
  try {
    return JSON.parse(await readFile(path.join(stagedDir(stagingDir, backupId), MANIFEST_FILE), 'utf8')) as BackupManifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // not staged (yet)
    throw err;
  }
}

export async function requireStagedManifest(stagingDir: string, backupId: string): Promise<BackupManifest> {
  const manifest = await readStagedManifest(stagingDir, backupId);
  if (!manifest) {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} is not staged in ${stagingDir} (no ${MANIFEST_FILE}); the dump step must run first on a worker sharing this staging dir`,
      'BackupNotStaged',
    );
  }
  return manifest;
}

export async function readManifestObject(s3: S3Client, bucket: string, key: string): Promise<BackupManifest> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return JSON.parse(await object.Body!.transformToString()) as BackupManifest;
}

/**
 * Every backup of the target (or of all targets) that has a manifest, newest first. A caller that
 * lists often (the metrics endpoint) passes `manifests`, a cache by key: a published manifest is
 * never rewritten, so only new ones are read; keys no longer listed (pruned) leave the cache.
 */
export async function listCatalog(s3: S3Client, config: S3Config, target?: string, manifests?: Map<string, BackupManifest>): Promise<CatalogEntry[]> {
  const prefix = target ? backupPrefix(config, target) : `${config.prefix}/`;
  const manifestKeys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: config.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) if (object.Key?.endsWith(`/${MANIFEST_FILE}`)) manifestKeys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (manifests) for (const key of [...manifests.keys()]) if (!manifestKeys.includes(key)) manifests.delete(key);
  const entries: CatalogEntry[] = [];
  for (const key of manifestKeys) {
    const m = manifests?.get(key) ?? (await readManifestObject(s3, config.bucket, key));
    manifests?.set(key, m);
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
