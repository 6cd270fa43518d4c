// Backups encrypted and authenticated before they leave the host (docs/encryption.md), on the real
// stack: nothing of the database is readable in the bucket, a changed object or a planted
// manifest is refused before anything is restored, a hostile archive cannot leave the server's
// sandbox, and a rotated key leaves older backups restorable.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import execa from 'execa';
import { decideRestore, restoreStatus, startBackup, startRestore } from '../src/client';
import { loadWorkerConfig, type WorkerConfig } from '../src/shared/config';
import { withTarget } from '../src/shared/postgres/connection';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { createS3Client } from '../src/shared/storage/s3Client';
import { listCatalog, readManifestObject } from '../src/backup/manifest/store';
import { backupKeys, backupPrefix, objectContext, type BackupManifest } from '../src/backup/manifest';
import { decryptBuffer, encryptBuffer, encryptedSize, KeyRing } from '../src/shared/crypto';
import type { GuardedRestoreInput, RestoreStatus } from '../src/restore/contract';
import type { NightlyBackupInput } from '../src/backup/contract';
import { createBackupFixture, encryptionEnv, listKeys, newMasterKey, targetUrl, type BackupFixture } from './support/backupFixture';
import { databasesLike, dropDatabase, fingerprint } from './support/databaseFingerprint';
import { REPO_DIR, stackEnv, withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

jest.setTimeout(120_000);

const id = randomUUID().replace(/-/g, '').slice(0, 8);
const MARKER = `pgops-marker-${id}-do-not-leak`;
const MARKER_ROLE = `pgops_marker_${id}`;
const keys = { [`old-${id}`]: newMasterKey(), [`new-${id}`]: newMasterKey() };
const oldKey = `old-${id}`;
const newKey = `new-${id}`;

let fixture: BackupFixture;
let env: Record<string, string>;
/** Before the rotation: the old key only. After: the new key current, the old one retired. */
let beforeRotation: WorkerConfig;
let afterRotation: WorkerConfig;
let backupId: string;
let manifest: BackupManifest;

function configWith(overrides: Record<string, string>): WorkerConfig {
  return loadWorkerConfig({ ...stackEnv(), ...env, ...overrides });
}

async function backup(config: WorkerConfig, input: Partial<NightlyBackupInput> = {}): Promise<string> {
  return withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startBackup(client, { taskQueue, workflowId: `enc-backup-${randomUUID()}` }, { target: 'demo', verify: 'list', ...input });
    return (await handle.result()).backupId;
  });
}

async function published(config: WorkerConfig, target: string, backup: string): Promise<BackupManifest> {
  const s3 = createS3Client(config.s3);
  try {
    return await readManifestObject(s3, config.s3.bucket, `${backupPrefix(config.s3, target, backup)}manifest.json`);
  } finally {
    s3.destroy();
  }
}

async function objectBytes(config: WorkerConfig, key: string): Promise<Buffer> {
  const s3 = createS3Client(config.s3);
  try {
    return Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }))).Body!.transformToByteArray());
  } finally {
    s3.destroy();
  }
}

async function putObject(config: WorkerConfig, key: string, body: Buffer | string): Promise<void> {
  const s3 = createS3Client(config.s3);
  try {
    await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
}

function startNewDatabaseRestore(client: Client, taskQueue: string, input: Partial<GuardedRestoreInput>) {
  return startRestore(client, { taskQueue, workflowId: `enc-restore-${randomUUID()}` }, {
    target: 'demo', backup: backupId, mode: 'new-database', requestedBy: 'alice', heartbeatTimeout: '5 seconds', ...input,
  } as GuardedRestoreInput);
}

async function settled(client: Client, workflowId: string): Promise<RestoreStatus> {
  let status: RestoreStatus | undefined;
  await waitUntil('the restore to be ready or to fail', async () => {
    status = await restoreStatus(client, workflowId);
    return status.stage === 'failed' || (status.stage === 'awaiting-approval' && status.stagingReady);
  }, 90_000);
  return status!;
}

/** A new-database restore of `backup`, approved once its staging copy is ready; returns the restored database. */
async function restoreBeside(config: WorkerConfig, backup: string, newDatabase: string): Promise<string> {
  return withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startNewDatabaseRestore(client, taskQueue, { backup, newDatabase });
    await settled(client, handle.workflowId);
    await decideRestore(client, handle.workflowId, 'approve', { approver: 'bob', reason: 'encryption test' });
    const result = await handle.result();
    expect(result.outcome).toBe('restored');
    return result.database!;
  });
}

/** A restore that must fail before it plans: the failure, and proof that nothing was created. */
async function refusedRestore(config: WorkerConfig, input: Partial<GuardedRestoreInput>): Promise<string> {
  const message = await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startNewDatabaseRestore(client, taskQueue, input);
    const error = await handle.result().then(
      () => 'restored',
      (err: { cause?: { message?: string } }) => err.cause?.message ?? String(err),
    );
    const status = await restoreStatus(client, handle.workflowId);
    expect(status.stage).toBe('failed');
    expect(status.plan).toBeUndefined();
    return error;
  });
  expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
  expect(readdirSync(fixture.stagingDir).filter((name) => name.startsWith('restore-'))).toEqual([]);
  return message;
}

/** A failure's message and those of its causes (workflow, activity, application failure), joined. */
function causes(err: unknown): string {
  const messages: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) messages.push(e.message ?? String(e));
  return messages.join(' <- ');
}

beforeAll(async () => {
  fixture = await createBackupFixture(0.05);
  env = { ...fixture.env, PGOPS_RESTORE_APPROVERS: 'alice,bob', PGOPS_RESTORE_TWO_PERSON_RULE: 'true' };
  beforeRotation = configWith(encryptionEnv({ [oldKey]: keys[oldKey] }, oldKey));
  afterRotation = configWith(encryptionEnv(keys, newKey));
  // The marker, in rows (uncompressed in the dump) and in the globals (a role's comment).
  await withTarget(fixture.target, async (c) => {
    await c.query(`CREATE TABLE secrets AS SELECT g AS id, $1::text || g AS secret FROM generate_series(1, 500) g`, [MARKER]);
    await c.query(`CREATE ROLE ${MARKER_ROLE}`);
    await c.query(`COMMENT ON ROLE ${MARKER_ROLE} IS '${MARKER}'`);
  });
  backupId = await backup(beforeRotation, { format: 'custom', compression: 'none' });
  manifest = await published(beforeRotation, 'demo', backupId);
}, 180_000);

afterAll(async () => {
  await withTarget({ ...fixture.target, database: 'postgres' }, (c) => c.query(`DROP ROLE IF EXISTS ${MARKER_ROLE}`)).catch(() => undefined);
  for (const name of await databasesLike(fixture.target, `${fixture.target.database}_%`)) await dropDatabase(fixture.target, name);
  await fixture?.cleanup();
});

test('no object in the bucket holds the marker planted in the database; the manifest records each object as stored and as dumped, and no secret', async () => {
  const staged = readFileSync(path.join(fixture.stagingDir, backupId, 'dump.pgdump'));
  expect(staged.includes(MARKER)).toBe(true); // the plaintext dump holds it: the check below means something
  expect(readFileSync(path.join(fixture.stagingDir, backupId, 'globals.sql'), 'utf8')).toContain(MARKER);
  const keysInBucket = await listKeys(beforeRotation, `${backupPrefix(beforeRotation.s3, 'demo', backupId)}`);
  expect(keysInBucket.map((k) => path.basename(k))).toEqual(['dump.pgdump', 'globals.sql', 'manifest.json']);
  for (const key of keysInBucket) expect((await objectBytes(beforeRotation, key)).includes(MARKER)).toBe(false);

  expect(manifest.encryption).toMatchObject({ scheme: 'pgops-stream-v1', cipher: 'AES-256-GCM', keyId: oldKey });
  expect(manifest.authentication).toMatchObject({ keyId: oldKey, algorithm: 'HMAC-SHA256' });
  for (const file of [...manifest.dataFiles, manifest.globals!]) {
    expect(file.stored).toMatchObject({ keyId: oldKey, sizeBytes: encryptedSize(file.sizeBytes, oldKey) });
    expect(file.stored!.sha256).not.toBe(file.sha256);
  }
  const text = JSON.stringify(manifest);
  expect(text).not.toContain(keys[oldKey]);
  expect(text).not.toContain(MARKER);
});

test('the restore round trip of the encrypted backup is exact', async () => {
  const restored = await restoreBeside(beforeRotation, backupId, `${fixture.target.database}_round`);
  expect(await fingerprint(beforeRotation, { ...fixture.target, database: restored })).toEqual(await fingerprint(beforeRotation, fixture.target));
});

describe('an object changed in the bucket: the fetch fails naming it, nothing is restored, the target untouched', () => {
  const ring = () => beforeRotation.encryption!;
  const headerBytes = () => encryptedSize(0, oldKey) - 16;
  const sealed = 64 * 1024 + 16;
  let original: Buffer;
  let dumpKey: string;

  beforeAll(async () => {
    dumpKey = backupKeys(beforeRotation.s3, manifest).dataKeys[0];
    original = await objectBytes(beforeRotation, dumpKey);
    expect(original.length).toBeGreaterThan(headerBytes() + 4 * sealed); // several chunks to move around
  });
  afterAll(() => putObject(beforeRotation, dumpKey, original));

  const variants: [string, () => Promise<Buffer>, RegExp][] = [
    ['truncated', async () => original.subarray(0, original.length - 1000), /truncated/],
    [
      'two chunks reordered',
      async () => {
        const at = (i: number) => headerBytes() + i * sealed;
        return Buffer.concat([original.subarray(0, at(1)), original.subarray(at(2), at(3)), original.subarray(at(1), at(2)), original.subarray(at(3))]);
      },
      /chunk 1 does not authenticate/,
    ],
    [
      'one byte flipped',
      async () => {
        const flipped = Buffer.from(original);
        flipped[headerBytes() + 3 * sealed + 100] ^= 0x20;
        return flipped;
      },
      /chunk 3 does not authenticate/,
    ],
    [
      'encrypted with another key under the same key id',
      async () => {
        const plain = await decryptBuffer(ring(), original, { context: objectContext(manifest, 'dump.pgdump') });
        const impostor = new KeyRing(new Map([[oldKey, Buffer.from(newMasterKey(), 'base64')]]), oldKey);
        return encryptBuffer(impostor, plain, { context: objectContext(manifest, 'dump.pgdump') });
      },
      /does not unwrap with key/,
    ],
  ];

  test.each(variants)('%s', async (_name, tamper, why) => {
    const before = await fingerprint(beforeRotation, fixture.target);
    await putObject(beforeRotation, dumpKey, await tamper());
    const message = await refusedRestore(beforeRotation, {});
    expect(message).toContain(`object s3://${beforeRotation.s3.bucket}/${dumpKey} fails authentication`);
    expect(message).toMatch(why);
    expect(message).toContain('nothing was restored');
    expect(await fingerprint(beforeRotation, fixture.target)).toEqual(before);
    await putObject(beforeRotation, dumpKey, original);
  });
});

describe('a manifest planted in the bucket (valid JSON, right layout, future date, matching checksums, no valid authentication)', () => {
  const plantedId = `demo-29991231T000000Z-${id.slice(0, 6)}`;

  beforeAll(async () => {
    // The real backup's objects copied under the planted id, so every checksum in it matches.
    const s3 = createS3Client(beforeRotation.s3);
    const from = backupKeys(beforeRotation.s3, manifest);
    const planted: BackupManifest = { ...manifest, backupId: plantedId, finishedAt: '2999-12-31T00:00:00.000Z' };
    const to = backupKeys(beforeRotation.s3, planted);
    try {
      for (const [source, destination] of [[from.dataKeys[0], to.dataKeys[0]], [from.globalsKey, to.globalsKey]]) {
        await s3.send(new CopyObjectCommand({ Bucket: beforeRotation.s3.bucket, CopySource: `${beforeRotation.s3.bucket}/${source}`, Key: destination }));
      }
    } finally {
      s3.destroy();
    }
    await putObject(beforeRotation, to.manifestKey, JSON.stringify(planted, null, 2));
  });

  test('pgops backups list flags it, and it is not verified', async () => {
    const { stdout, stderr } = await execa(path.join(REPO_DIR, 'bin/pgops'), ['backups', 'list', '--target', 'demo'], {
      env: { ...stackEnv(), ...env, ...encryptionEnv({ [oldKey]: keys[oldKey] }, oldKey), PGOPS_ENV_FILE: '/dev/null' } as NodeJS.ProcessEnv,
    });
    const row = stdout.split('\n').find((line) => line.startsWith(plantedId))!;
    expect(row).toMatch(/ no +key old-\S+ +UNAUTHENTICATED: authentication does not verify/);
    expect(stdout.split('\n').find((line) => line.startsWith(backupId))).toMatch(/ authentic \(key old-/);
    expect(stderr).toContain('1 backup(s) above have a manifest that does not verify');
    const s3 = createS3Client(beforeRotation.s3);
    const entry = (await listCatalog(s3, beforeRotation.s3, 'demo', beforeRotation.encryption)).find((e) => e.backupId === plantedId)!;
    s3.destroy();
    expect(entry).toMatchObject({ trusted: false, verified: false, authentication: 'invalid' });
  });

  test('restore --backup latest ignores it', async () => {
    await withWorker(beforeRotation, async ({ client, taskQueue }) => {
      const handle = await startNewDatabaseRestore(client, taskQueue, { backup: 'latest' });
      const status = await settled(client, handle.workflowId);
      expect(status.plan?.backupId).not.toBe(plantedId);
      expect(status.plan?.backupId).toMatch(/^demo-2\d{3}/);
      await decideRestore(client, handle.workflowId, 'reject', { approver: 'bob', reason: 'only looking' });
      expect((await handle.result()).outcome).toBe('rejected');
    });
  });

  test('restoring it by id is refused before anything is fetched into a database', async () => {
    const message = await refusedRestore(beforeRotation, { backup: plantedId });
    expect(message).toMatch(new RegExp(`backup ${plantedId}'s manifest .* is UNAUTHENTICATED: authentication does not verify: pgops fetches, plans and restores nothing from it`));
  });
});

test('an archive whose SQL runs COPY … TO PROGRAM: the staging restore and the nightly test restore fail on permissions, the program never runs', async () => {
  const evilDb = `${fixture.target.database}_evil`;
  const pwned = `/tmp/pgops-pwned-${id}`;
  const evilTarget = { ...fixture.target, database: evilDb };
  await withTarget({ ...fixture.target, database: 'postgres' }, (c) => c.query(`CREATE DATABASE ${evilDb}`));
  // An index whose expression calls a function that, by the time of the dump, runs a program:
  // building the index, which pg_restore does after loading the rows, would run it.
  await withTarget(evilTarget, async (c) => {
    await c.query('CREATE TABLE t (id int)');
    await c.query('INSERT INTO t VALUES (1), (2)');
    await c.query(`CREATE FUNCTION f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN $1; END $$`);
    await c.query('CREATE INDEX t_f ON t (f(id))');
    // An immutable function may not run COPY itself; the volatile one it calls may.
    await c.query(`CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch ${pwned}'''; END $$`);
    await c.query(`CREATE OR REPLACE FUNCTION f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM public.g(); RETURN $1; END $$`);
  });
  const evilEnv = { PGOPS_TARGETS: 'primary,standby,verify,demo,evil', PGOPS_TARGET_EVIL_URL: targetUrl(evilTarget) };
  const config = configWith({ ...encryptionEnv({ [oldKey]: keys[oldKey] }, oldKey), ...evilEnv });
  const evilBackup = await withWorker(config, async ({ client, taskQueue }) =>
    (await (await startBackup(client, { taskQueue, workflowId: `enc-evil-${randomUUID()}` }, { target: 'evil', verify: 'list', format: 'custom' })).result()).backupId,
  );
  try {
    // As a superuser, the same archive runs the program: the hostility is real.
    const control = `${fixture.target.database}_control`;
    await withTarget({ ...fixture.target, database: 'postgres' }, (c) => c.query(`CREATE DATABASE ${control}`));
    await runPgTool(config, 'pg_restore', ['--no-owner', `--dbname=${control}`, path.join(fixture.stagingDir, evilBackup, 'dump.pgdump')], { ...evilTarget, database: control }).catch(() => undefined);
    expect(existsSync(pwned)).toBe(true);
    rmSync(pwned, { force: true });

    const message = await withWorker(config, async ({ client, taskQueue }) => {
      const handle = await startRestore(client, { taskQueue, workflowId: `enc-evil-restore-${randomUUID()}` }, {
        target: 'evil', backup: evilBackup, mode: 'new-database', newDatabase: `${evilDb}_copy`, requestedBy: 'alice', heartbeatTimeout: '5 seconds',
      });
      return handle.result().then(() => 'restored', (err: { cause?: { message?: string } }) => err.cause?.message ?? String(err));
    });
    expect(message).toMatch(/as restore role pgops_restore_\w+, which may not reach the server's files or programs\) failed: .*permission denied to COPY to or from an external program/);
    expect(existsSync(pwned)).toBe(false);
    expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
    expect(await databasesLike(fixture.target, `${evilDb}_copy`)).toEqual([]);
    const role = /as restore role (\w+)/.exec(message)![1];
    const left = await withTarget({ ...fixture.target, database: 'postgres' }, async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount);
    expect(left).toBe(0); // the restore's role went with its staging database

    // The nightly backup of the same database, with the test restore on the stack's verify server:
    // it fails there the same way, and the backup is not published.
    const verifyServer = config.targets.verify;
    const verifyFailure = await withWorker(config, async ({ client, taskQueue }) => {
      const handle = await startBackup(client, { taskQueue, workflowId: `enc-evil-verify-${randomUUID()}` }, { target: 'evil', verify: 'restore', format: 'custom' });
      return handle.result().then(() => 'verified', (err: unknown) => causes(err));
    });
    expect(existsSync(pwned)).toBe(false);
    expect(verifyFailure).toMatch(
      /test restore of backup evil-\S+ into pgops_verify_evil_\w+ on verify \(as restore role pgops_verify_evil_\w+, which may not reach the server's files or programs\) failed: .*permission denied to COPY to or from an external program/,
    );
    expect(await databasesLike(verifyServer, 'pgops_verify_evil_%')).toEqual([]);
    const verifyRoles = await withTarget({ ...verifyServer, database: 'postgres' }, async (c) =>
      (await c.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgops\\_verify\\_evil\\_%'`)).rows,
    );
    expect(verifyRoles).toEqual([]);
    // The list files of the sandbox's workspace went too: only the staged backup is left.
    const verifiedId = /test restore of backup (\S+) into/.exec(verifyFailure)![1];
    expect(readdirSync(path.join(fixture.stagingDir, verifiedId)).filter((name) => name.startsWith('verify-'))).toEqual([]);
    await expect(published(config, 'evil', verifiedId)).rejects.toThrow(); // no manifest: not in the catalog
  } finally {
    rmSync(pwned, { force: true });
  }
});

test('rotation: a backup before and one after a key change both restore; a worker without the old key names it', async () => {
  const rotatedBackup = await backup(afterRotation, { format: 'custom' });
  const rotated = await published(afterRotation, 'demo', rotatedBackup);
  expect(rotated.encryption?.keyId).toBe(newKey);
  expect(rotated.authentication?.keyId).toBe(newKey);
  const source = await fingerprint(afterRotation, fixture.target);
  for (const [backup, name] of [[backupId, 'before'], [rotatedBackup, 'after']]) {
    const restored = await restoreBeside(afterRotation, backup, `${fixture.target.database}_${name}`);
    expect((await fingerprint(afterRotation, { ...fixture.target, database: restored })).rows).toEqual(source.rows);
  }
  // The old key dropped from the ring: the old backup is refused by name of its key, the new one still lists as authentic.
  const withoutOld = configWith(encryptionEnv({ [newKey]: keys[newKey] }, newKey));
  const message = await refusedRestore(withoutOld, { backup: backupId });
  expect(message).toContain(`signed with key "${oldKey}", not in this key ring`);
  const keysRun = await execa(path.join(REPO_DIR, 'bin/pgops'), ['keys', '--target', 'demo'], {
    env: { ...stackEnv(), ...env, ...encryptionEnv({ [newKey]: keys[newKey] }, newKey), PGOPS_ENV_FILE: '/dev/null' } as NodeJS.ProcessEnv,
    reject: false,
  });
  expect(keysRun.exitCode).toBe(1);
  expect(keysRun.stdout).toMatch(new RegExp(`${oldKey} +MISSING`));
  expect(keysRun.stdout).toMatch(new RegExp(`${newKey} +present \\(current\\)`));
  expect(keysRun.stderr).toContain(`key id(s) ${oldKey} missing`);
});
