// Reading and writing manifests: the staged one beside a dump on the worker's disk (written last,
// atomically, so its presence means the staged backup is complete), and the published ones in S3,
// which are the catalog: it survives the loss of the database server and of the worker's disk.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { S3Config } from '../../shared/config';
import type { KeyRing } from '../../shared/crypto/keyRing';
import { describeStatus, isTrusted, signRecord, verifyRecord, type AuthenticationStatus } from '../../shared/crypto/manifestAuth';
import { PRIVATE_FILE_MODE, stagedDir } from '../stagedBackup';
import { backupKeys, backupPrefix, isReadableManifest, keysNeeded, MANIFEST_DOMAIN, MANIFEST_FILE, storedFiles, type BackupManifest, type CatalogEntry } from '.';

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

/** The manifest as published: signed by the current key when the worker has keys. */
export function authenticateManifest(ring: KeyRing | undefined, manifest: BackupManifest): BackupManifest {
  return ring ? signRecord(ring, MANIFEST_DOMAIN, manifest) : manifest;
}

/**
 * How far a manifest read from `key` can be trusted. A signed manifest copied to another
 * backup's place is caught too: its signed target and id must be the ones its key names.
 */
export function manifestAuthentication(ring: KeyRing | undefined, config: S3Config, key: string, m: BackupManifest): { status: AuthenticationStatus; keyId?: string } {
  const verdict = verifyRecord(ring, MANIFEST_DOMAIN, m);
  if (verdict.status === 'authentic' && backupKeys(config, m).manifestKey !== key) return { status: 'invalid', keyId: verdict.keyId };
  return verdict;
}

/** Refuses, before anything of the backup is fetched, a manifest that does not verify or whose keys this worker lacks. */
export function requireTrustedManifest(ring: KeyRing | undefined, config: S3Config, key: string, m: BackupManifest): void {
  const { status, keyId } = manifestAuthentication(ring, config, key, m);
  if (!isTrusted(status)) {
    throw ApplicationFailure.nonRetryable(
      `backup ${m.backupId}'s manifest s3://${config.bucket}/${key} is ${describeStatus(status, keyId)}: pgops fetches, plans and restores nothing from it ` +
        `(it was not written by a worker holding this key ring; if it is yours, check PGOPS_ENCRYPTION_KEYS)`,
      'BackupUnauthenticated',
    );
  }
  const missing = keysNeeded(m).filter((id) => !ring?.has(id));
  if (missing.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `backup ${m.backupId} is encrypted with key id ${missing.map((id) => `"${id}"`).join(', ')}, which this worker's key ring does not hold; ` +
        `add ${missing.length > 1 ? 'them' : 'it'} to PGOPS_ENCRYPTION_KEYS (or the keys file) as retired`,
      'KeyMissing',
    );
  }
}

/** Every backup of the target (or of all targets) that has a manifest, newest first; each says whether its manifest verified. */
/**
 * A caller that lists often (the metrics endpoint) passes `manifests`, a cache by key: a published
 * manifest is never rewritten, so only new ones are read; keys no longer listed (pruned) leave the cache.
 */
export async function listCatalog(
  s3: S3Client,
  config: S3Config,
  target: string | undefined,
  ring: KeyRing | undefined,
  manifests?: Map<string, BackupManifest>,
): Promise<CatalogEntry[]> {
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
    const cached = manifests?.get(key);
    const m =
      cached ??
      (await readManifestObject(s3, config.bucket, key).catch((err: Error) => {
        if (err instanceof SyntaxError) return undefined; // not JSON: cannot be a manifest
        throw err;
      }));
    if (m) manifests?.set(key, m);
    // A manifest pgops cannot read is left out: nothing is restored from it or pruned because of it.
    if (!m || typeof m !== 'object' || !isReadableManifest(m)) continue;
    const { status, keyId } = manifestAuthentication(ring, config, key, m);
    const trusted = isTrusted(status);
    entries.push({
      backupId: m.backupId,
      target: m.target,
      finishedAt: m.finishedAt,
      sizeBytes: m.sizeBytes,
      verified: trusted && m.verification !== undefined,
      authentication: status,
      ...(keyId ? { authenticationKeyId: keyId } : {}),
      trusted,
      encryptedWith: [...new Set(storedFiles(m).flatMap((f) => (f.stored ? [f.stored.keyId] : [])))],
      ...backupKeys(config, m),
      // Where it was read, not where it claims to be: what is deleted or fetched is what is listed.
      manifestKey: key,
    });
  }
  return entries.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
}
