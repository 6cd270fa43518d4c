// The physical archive encrypted and authenticated (issue 20), on an isolated primary + standby
// (ports 26400-26402) whose WAL the real walArchiver streams and whose base backup the real
// baseBackup workflow takes, with the stack's development key (.stack/encryption.keys):
// - a marker written into the database is in no WAL object nor base backup object as the bucket
//   holds it (nor in what zstd makes of it), yet it is there once opened with the key;
// - a planted backup.json (valid JSON, right place, newest) without valid authentication is
//   listed apart and neither planned from, counted for the window, nor pruned;
// - a flipped byte in a base backup object fails its fetch naming the object;
// - a flipped byte, a cut, a segment moved to another's name, or a wrong key makes the WAL fetch
//   PostgreSQL runs fail naming the object, with nothing left where PostgreSQL reads.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import execa from 'execa';
import { listKeys, readBaseBackupCatalog } from '../src/archive/catalog';
import { BASE_BACKUP_RECORD, baseBackupObjectKey, type BaseBackupRecord } from '../src/archive/layout';
import { openBuffer, withoutAuthentication } from '../src/archive/archiveCrypto';
import { pruneBaseBackupActivities } from '../src/archive/activities/pruneBaseBackups';
import { physicalListing } from '../src/cli/commands/baseBackup';
import { planRecoveryActivities } from '../src/pitr/activities/planRecovery';
import { fetchBaseBackupActivities } from '../src/pitr/activities/fetchBaseBackup';
import { fetchEnvironment } from '../src/pitr/activities/configureRecovery';
import { fetchWalFile, WalObjectCorrupt, type FetchOptions } from '../src/pitr/walFetch/fetchWal';
import { KeyRing } from '../src/shared/crypto/keyRing';
import { createS3Client } from '../src/shared/storage/s3Client';
import type { RecoveryPlan } from '../src/pitr/contract';
import type { PhysicalPruneResult } from '../src/archive/contract';
import { archivedSegmentKeys, createPitrFixture, TEST_TABLE, type PitrFixture } from './support/pitrFixture';

let f: PitrFixture;
let s3: S3Client;
let scratch: string;
const marker = `pgops-archive-marker-${randomUUID()}`;

beforeAll(async () => {
  f = await createPitrFixture('archenc', 26400);
  s3 = createS3Client(f.config.s3);
  scratch = await mkdtemp(path.join(tmpdir(), 'pgops-archenc-'));
  // In the backup's heap pages, and (rows written after its checkpoint, updated) in the WAL as plain tuple data.
  await f.sql(`INSERT INTO ${TEST_TABLE} SELECT g, $1 FROM generate_series(1, 50) g`, [marker]);
  await f.baseBackup();
  await f.sql(`INSERT INTO ${TEST_TABLE} SELECT g, $1 FROM generate_series(51, 100) g`, [marker]);
  await f.sql(`UPDATE ${TEST_TABLE} SET note = note || '' WHERE id > 50`);
  await f.archiveWal({ switchSegment: true });
}, 150_000);

afterAll(async () => {
  s3?.destroy();
  await f?.down();
  if (scratch) await rm(scratch, { recursive: true, force: true });
}, 60_000);

async function stored(key: string): Promise<Buffer> {
  return Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: f.config.s3.bucket, Key: key }))).Body!.transformToByteArray());
}

/** What zstd makes of `bytes`, when it is a zstd stream at all. */
async function unzstd(bytes: Buffer): Promise<Buffer | undefined> {
  const result = await execa('zstd', ['-d', '-q', '-c'], { input: bytes, encoding: null, reject: false });
  return result.exitCode === 0 ? (result.stdout as unknown as Buffer) : undefined;
}

/** Whether the marker is in the bytes, or in what they decompress to. */
async function holdsMarker(bytes: Buffer): Promise<boolean> {
  if (bytes.includes(marker)) return true;
  return (await unzstd(bytes))?.includes(marker) ?? false;
}

function fetchOptions(ring: KeyRing | undefined): FetchOptions {
  return { s3, bucket: f.config.s3.bucket, root: f.root, segmentBytes: 16 * 1024 * 1024, zstdBin: 'zstd', allowPartial: false, ring };
}

test('the stack configures a key, so this archive is sealed', () => {
  expect(f.config.encryption).toBeDefined();
});

test('a marker written into the database is in no WAL object nor base backup object as stored, and is there once opened', async () => {
  const ring = f.config.encryption!;
  const keys = (await listKeys(s3, f.config.s3.bucket, `${f.root}/`)).filter((k) => /\/wal\/|\/base\//.test(k) && !k.endsWith('.json'));
  const wal = keys.filter((k) => k.includes('/wal/'));
  const base = keys.filter((k) => k.includes('/base/'));
  expect(wal.length).toBeGreaterThan(1);
  expect(base.map((k) => path.basename(k)).sort()).toEqual(['backup_manifest', 'base.tar.zst', 'pg_wal.tar.zst']);
  const found = { stored: [] as string[], opened: { wal: 0, base: 0 } };
  for (const key of keys) {
    const bytes = await stored(key);
    if (await holdsMarker(bytes)) found.stored.push(key);
    // The control: the same object opened with the key does hold it, where the row went.
    if (await holdsMarker(await openBuffer(ring, f.root, key, bytes))) found.opened[key.includes('/wal/') ? 'wal' : 'base']++;
  }
  expect(found.stored).toEqual([]);
  expect(found.opened.wal).toBeGreaterThan(0);
  expect(found.opened.base).toBeGreaterThan(0);
}, 60_000);

test('a planted backup.json without valid authentication is listed apart, and nothing is planned, counted or pruned because of it', async () => {
  const { backups } = await readBaseBackupCatalog(s3, f.config.s3, f.config.encryption, f.cluster.name);
  expect(backups).toHaveLength(1);
  const real = backups[0].record;
  expect(real.authentication?.keyId).toBe(f.config.encryption!.current);
  expect(real.files.every((file) => file.stored?.keyId === f.config.encryption!.current)).toBe(true);
  // Newer than the real one, pointing at the real objects: the planner would pick it if it trusted it.
  const forged = (id: string): BaseBackupRecord => ({ ...real, backupId: id, stoppedAt: new Date(Date.now() + 60_000).toISOString(), startedAt: new Date().toISOString() });
  const unsigned = `base-planted-unsigned-${randomUUID().slice(0, 8)}`;
  const resigned = `base-planted-altered-${randomUUID().slice(0, 8)}`;
  const put = (id: string, record: object) =>
    s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: baseBackupObjectKey(f.root, id, BASE_BACKUP_RECORD), Body: JSON.stringify(record), ContentType: 'application/json' }));
  await put(unsigned, withoutAuthentication(forged(unsigned)));
  await put(resigned, forged(resigned)); // the real record's MAC over different content

  const catalog = await readBaseBackupCatalog(s3, f.config.s3, f.config.encryption, f.cluster.name);
  expect(catalog.backups.map((b) => b.record.backupId)).toEqual([real.backupId]);
  expect(Object.fromEntries(catalog.untrusted.map((u) => [u.backupId, u.status]))).toEqual({ [unsigned]: 'unsigned', [resigned]: 'invalid' });

  const plan: RecoveryPlan = await planRecoveryActivities(f.config).planRecovery({ cluster: f.cluster.name, target: { kind: 'latest' } });
  expect(plan.backup.backupId).toBe(real.backupId);
  expect(plan.window.backups.map((b) => b.backupId)).toEqual([real.backupId]);

  const prune: PhysicalPruneResult = await new MockActivityEnvironment().run(pruneBaseBackupActivities(f.config).pruneBaseBackups, {
    cluster: f.cluster.name,
    recoveryWindow: '1 second',
    dryRun: true,
    now: new Date(Date.now() + 3_600_000).toISOString(),
  });
  expect(prune.kept.map((k) => k.backupId)).toEqual([real.backupId]);
  expect(prune.deletedBackups).toEqual([]);

  const listing = await physicalListing(s3, f.config.s3, f.config.encryption, f.cluster.name);
  expect(listing).toContain(`(${unsigned}) is UNAUTHENTICATED: no authentication`);
  expect(listing).toContain(`(${resigned}) is UNAUTHENTICATED: authentication does not verify`);
}, 60_000);

test('a flipped byte in a base backup object fails its fetch naming the object, with no data directory made', async () => {
  const plan: RecoveryPlan = await planRecoveryActivities(f.config).planRecovery({ cluster: f.cluster.name, target: { kind: 'latest' } });
  const key = baseBackupObjectKey(f.root, plan.backup.backupId, 'base.tar.zst');
  const original = await stored(key);
  const flipped = Buffer.from(original);
  flipped[Math.floor(flipped.length / 2)] ^= 0x01;
  await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: flipped }));
  const instance = { dataDir: path.join(scratch, 'fetched'), port: 26403 };
  try {
    const fetching = new MockActivityEnvironment().run(fetchBaseBackupActivities(f.config).fetchBaseBackup, { cluster: f.cluster.name, restoreId: 'flipped', instance, backup: plan.backup });
    await expect(fetching).rejects.toThrow(`s3://${f.config.s3.bucket}/${key} fails authentication`);
    expect(existsSync(instance.dataDir)).toBe(false);
  } finally {
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: original }));
    await rm(`${instance.dataDir}.pitr`, { recursive: true, force: true });
  }
}, 60_000);

describe('the WAL fetch PostgreSQL runs', () => {
  let key: string;
  let name: string;
  let original: Buffer;
  let metadata: Record<string, string>;

  beforeAll(async () => {
    key = (await archivedSegmentKeys(f)).at(-1)!;
    name = path.basename(key, '.zst');
    const object = await s3.send(new GetObjectCommand({ Bucket: f.config.s3.bucket, Key: key }));
    original = Buffer.from(await object.Body!.transformToByteArray());
    metadata = object.Metadata ?? {};
  });

  afterEach(async () => {
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: original, Metadata: metadata }));
  });

  async function refusal(options: FetchOptions, what: string): Promise<string> {
    const destination = path.join(scratch, `${what}-${name}`);
    const err = await fetchWalFile(options, name, destination).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WalObjectCorrupt);
    // Nothing where PostgreSQL reads, not even a half-written file.
    expect(existsSync(destination)).toBe(false);
    expect(existsSync(`${destination}.pgops-fetch`)).toBe(false);
    return (err as Error).message;
  }

  test('the intact segment is fetched and opened', async () => {
    const destination = path.join(scratch, `intact-${name}`);
    const fetched = await fetchWalFile(fetchOptions(f.config.encryption), name, destination);
    expect(fetched).toMatchObject({ key, bytes: 16 * 1024 * 1024, partial: false });
  });

  test('a flipped byte fails naming the object', async () => {
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)] ^= 0x01;
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: flipped, Metadata: metadata }));
    expect(await refusal(fetchOptions(f.config.encryption), 'flipped')).toMatch(new RegExp(`s3://${f.config.s3.bucket}/${key} fails authentication: chunk \\d+ does not authenticate`));
  });

  test('a cut object, a segment under another name, an unsealed one and a wrong key fail naming the object', async () => {
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: original.subarray(0, original.length - 100), Metadata: metadata }));
    expect(await refusal(fetchOptions(f.config.encryption), 'cut')).toContain(`s3://${f.config.s3.bucket}/${key} fails authentication`);

    const other = (await archivedSegmentKeys(f)).at(-2)!;
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: await stored(other), Metadata: metadata }));
    expect(await refusal(fetchOptions(f.config.encryption), 'moved')).toMatch(/fails authentication: its data key does not unwrap/);

    const { stdout: plain } = await execa('zstd', ['-1', '-q', '-c'], { input: Buffer.alloc(16 * 1024 * 1024, 7), encoding: null });
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: plain as unknown as Buffer, Metadata: metadata }));
    expect(await refusal(fetchOptions(f.config.encryption), 'unsealed')).toContain(`s3://${f.config.s3.bucket}/${key} fails authentication: not an object pgops encrypted`);

    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: original, Metadata: metadata }));
    const impostor = new KeyRing(new Map([[f.config.encryption!.current, Buffer.alloc(32, 9)]]), f.config.encryption!.current);
    expect(await refusal(fetchOptions(impostor), 'wrongkey')).toContain(`s3://${f.config.s3.bucket}/${key} fails authentication`);
  });

  test('the program PostgreSQL runs reads its keys from the private env file only, and fails naming the object', async () => {
    const envFile = path.join(scratch, 'wal-fetch.env');
    const plan = { backup: { root: f.root }, window: { to: { lsn: 'FFFFFFFF/0', timeline: 1 } }, segmentBytes: 16 * 1024 * 1024 } as unknown as RecoveryPlan;
    const env = fetchEnvironment(f.config, plan, path.join(scratch, 'cache'), path.join(scratch, 'fetch.jsonl'));
    expect(env).toContain('PGOPS_ENCRYPTION_KEYS=');
    await writeFile(envFile, `${env}\n`, { mode: 0o600 });
    await mkdir(path.join(scratch, 'cache'), { recursive: true });
    const program = [path.resolve(__dirname, '../src/pitr/walFetch/main.ts'), envFile, name];
    // Without PGOPS_ENCRYPTION_* in its own environment: what opens the archive came from the file.
    const run = (destination: string) => execa(path.resolve(__dirname, '../node_modules/.bin/tsx'), [...program, destination], { reject: false, extendEnv: false, env: { PATH: process.env.PATH } });
    const good = await run(path.join(scratch, `program-${name}`));
    expect(good.exitCode).toBe(0);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 40] ^= 0x80;
    await s3.send(new PutObjectCommand({ Bucket: f.config.s3.bucket, Key: key, Body: flipped, Metadata: metadata }));
    const bad = await run(path.join(scratch, `program-bad-${name}`));
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain(`s3://${f.config.s3.bucket}/${key} fails authentication`);
    expect(existsSync(path.join(scratch, `program-bad-${name}`))).toBe(false);
  }, 30_000);
});
