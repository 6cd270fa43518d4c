// The fetch step: every object of the chosen base backup (and of the backups its incremental
// chain builds on) downloaded and checked against the SHA-256 in its record, extracted, combined
// with pg_combinebackup when there are incrementals, proved by pg_verifybackup, and only then put
// in place as the instance's data directory, owned by the servers' OS user.
//
// With a key ring only a record whose authentication verifies is fetched (read again here, not
// taken from the plan), and each sealed object is checked as stored (ciphertext SHA-256), opened
// chunk by chunk and checked as plaintext in one pass, extracted into a scratch directory as it
// arrives (AEAD releases only authenticated chunks); the data directory is put in place only once
// every object of the whole chain and pg_verifybackup passed. An object the record says is unencrypted is read as it is (archives from
// before keys; with keys, their records do not verify, so that is only ever a keyless worker's).
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import execa from 'execa';
import type { WorkerConfig } from '../../shared/config';
import { childEnv } from '../../shared/childEnv';
import { heartbeatWhile, killOnCancel } from '../../shared/heartbeat';
import { runPgTool } from '../../shared/postgres/pgTools';
import { createS3Client, readObjectIfPresent, storageFailure } from '../../shared/storage/s3Client';
import { BASE_BACKUP_MANIFEST, BASE_BACKUP_RECORD, baseBackupObjectKey, isBaseBackupRecord, type BaseBackupRecord } from '../../archive/layout';
import { BASE_BACKUP_RECORD_DOMAIN, checkArchiveRecord, openStream } from '../../archive/archiveCrypto';
import { hashingTap } from '../../shared/storage/hashingTap';
import { KeyMissing, type KeyRing } from '../../shared/crypto/keyRing';
import { describeStatus } from '../../shared/crypto/manifestAuth';
import type { ChosenBackup, RestoreInstance } from '../contract';
import { handToServerUser, instancePaths, serverOsUser } from './instance';

export interface FetchBaseBackupInput {
  cluster: string;
  restoreId: string;
  instance: RestoreInstance;
  backup: ChosenBackup;
}

export interface FetchedBaseBackup {
  backupId: string;
  chain: string[];
  downloadedBytes: number;
  fetchMs: number;
  /** Where the time went: downloading, opening and extracting every object; pg_combinebackup; pg_verifybackup. */
  phaseMs: { objects: number; combine?: number; verify: number };
}

/** The files pgops' base backups consist of; a tablespace's own tar would need a place to go. */
const KNOWN_FILES = new Set(['base.tar.zst', 'pg_wal.tar.zst', BASE_BACKUP_MANIFEST]);

async function readRecord(s3: S3Client, bucket: string, ring: KeyRing | undefined, root: string, backupId: string): Promise<BaseBackupRecord> {
  const key = baseBackupObjectKey(root, backupId, BASE_BACKUP_RECORD);
  const object = await readObjectIfPresent(s3, bucket, key);
  const record = object ? (JSON.parse(object.body) as unknown) : undefined;
  if (!isBaseBackupRecord(record)) {
    throw ApplicationFailure.nonRetryable(`base backup ${backupId} has no readable ${BASE_BACKUP_RECORD} under ${root}/base/ (deleted since the plan?)`, 'BackupMissing');
  }
  // Checked again: what is fetched is what verifies now, not what the plan read a while ago.
  const check = checkArchiveRecord(ring, BASE_BACKUP_RECORD_DOMAIN, record);
  if (!check.trusted || record.backupId !== backupId) {
    throw ApplicationFailure.nonRetryable(
      `base backup ${backupId}'s record s3://${bucket}/${key} is ${record.backupId !== backupId ? `the record of ${record.backupId}` : describeStatus(check.status, check.keyId)}: ` +
        'pgops fetches and restores nothing from it. Nothing was restored',
      'BackupUnauthenticated',
    );
  }
  return record;
}

/**
 * One object to `file`: as stored checked against the record's `stored` SHA-256, opened with its
 * name bound in when sealed, and the plaintext checked against the record's SHA-256. Fails
 * naming the object before anything reads the file.
 */
async function download(
  s3: S3Client,
  bucket: string,
  ring: KeyRing | undefined,
  root: string,
  key: string,
  sink: ObjectSink,
  expected: BaseBackupRecord['files'][number],
  onBytes: (n: number) => void,
): Promise<void> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const stored = hashingTap(onBytes);
  const plain = hashingTap();
  const sealed = expected.stored;
  const corrupt = (why: string) => ApplicationFailure.nonRetryable(`s3://${bucket}/${key} ${why}; refusing to restore from it, nothing was restored`, 'BackupCorrupt');
  const stages: Transform[] = sealed ? [stored.stream, openStream(ring, root, key, sealed.keyId), plain.stream] : [stored.stream, plain.stream];
  const [piped, written] = await Promise.allSettled([pipeline([object.Body as Readable, ...stages, sink.stream]), sink.done]);
  if (piped.status === 'rejected') {
    const err = piped.reason as Error;
    if (err instanceof KeyMissing) throw ApplicationFailure.nonRetryable(`s3://${bucket}/${key}: ${err.message}`, 'KeyMissing');
    if (err.name === 'ObjectNotAuthentic') throw corrupt(`fails authentication: ${err.message}`);
  }
  // The extraction's own complaint (a broken zstd frame, a bad tar header) says more than the broken pipe it leaves.
  if (written.status === 'rejected') throw corrupt(`could not be extracted: ${(written.reason as Error).message}`);
  if (piped.status === 'rejected') throw piped.reason;
  if (sealed) {
    const got = stored.result();
    if (got.sha256 !== sealed.sha256 || got.sizeBytes !== sealed.sizeBytes) {
      throw corrupt(`as stored has SHA-256 ${got.sha256} (${got.sizeBytes} bytes), the backup's record says ${sealed.sha256} (${sealed.sizeBytes} bytes)`);
    }
  }
  const got = plain.result();
  if (got.sha256 !== expected.sha256) throw corrupt(`failed its SHA-256 check: the backup's record says ${expected.sha256}, the stored object gives ${got.sha256}`);
}

/** Where an object of a base backup goes as it arrives. */
interface ObjectSink {
  stream: Writable;
  done: Promise<unknown>;
}

/**
 * A tar is extracted as it streams in (its pg_wal tar into pg_wal/), the manifest is written
 * as is: the plain directory pg_combinebackup and PostgreSQL read, without a second pass over a
 * downloaded copy. Nothing reads that directory before every object and pg_verifybackup passed.
 */
function sinkFor(plain: string, name: string): ObjectSink {
  if (name === BASE_BACKUP_MANIFEST) {
    const stream = createWriteStream(path.join(plain, name), { mode: 0o600 });
    return { stream, done: Promise.resolve() };
  }
  const into = name === 'pg_wal.tar.zst' ? path.join(plain, 'pg_wal') : plain;
  const child = execa('tar', ['--zstd', '-xf', '-', '-C', into], { env: childEnv(), extendEnv: false, all: true, reject: false });
  killOnCancel(child);
  const done = child.then((result) => {
    if (result.exitCode !== 0) throw new Error(`tar --zstd -x exited with ${result.exitCode}: ${(result.all ?? '').trim().split('\n').slice(-3).join('; ')}`);
  });
  return { stream: child.stdin!, done };
}

export function fetchBaseBackupActivities(config: WorkerConfig) {
  async function fetchBaseBackup(input: FetchBaseBackupInput): Promise<FetchedBaseBackup> {
    const paths = instancePaths(input.instance);
    // A retry after the data directory was put in place: nothing to fetch again.
    if (existsSync(paths.restored)) return JSON.parse(await readFile(paths.restored, 'utf8')) as FetchedBaseBackup;
    const started = Date.now();
    const s3 = createS3Client(config.s3);
    let downloadedBytes = 0;
    const heartbeats = heartbeatWhile(() => ({ stage: 'fetch', downloadedBytes }));
    try {
      // Every object of every backup of the chain at once: the download, the decryption and the
      // decompression of one overlap the others' (the records are read first: a refused one
      // stops everything before any object is fetched).
      const records = await Promise.all(input.backup.chain.map((backupId) => readRecord(s3, config.s3.bucket, config.encryption, input.backup.root, backupId)));
      for (const record of records) {
        const unknown = record.files.find((f) => !KNOWN_FILES.has(f.name));
        if (unknown) {
          throw ApplicationFailure.nonRetryable(`base backup ${record.backupId} holds ${unknown.name} (a tablespace?): point-in-time restore handles the main data directory only`, 'UnsupportedBackup');
        }
      }
      const plains = await Promise.all(
        records.map(async (record) => {
          const plain = path.join(paths.downloads, `${record.backupId}.plain`);
          await rm(plain, { recursive: true, force: true });
          await mkdir(path.join(plain, 'pg_wal'), { recursive: true, mode: 0o700 });
          await Promise.all(
            record.files.map((file) =>
              download(s3, config.s3.bucket, config.encryption, input.backup.root, baseBackupObjectKey(input.backup.root, record.backupId, file.name), sinkFor(plain, file.name), file, (n) => {
                downloadedBytes += n;
                heartbeats.progressed();
              }),
            ),
          );
          heartbeats.progressed();
          return plain;
        }),
      );

      const objectsDone = Date.now();
      const last = plains.at(-1)!;
      if (existsSync(paths.dataDir)) await rmdir(paths.dataDir); // claimed empty (or absent) by claimInstance
      if (plains.length === 1) {
        await rename(last, paths.dataDir);
      } else {
        // Linked, not copied: the unchanged files of the older backups are scratch copies that go
        // right after (the same file system, as the rename above already needs). CRC32C: this
        // manifest is read once, by pg_verifybackup below, to prove the combination; every object
        // was SHA-256-checked at download, and SHA-256 of the whole cluster again would cost seconds.
        // --no-sync: PostgreSQL syncs the whole data directory itself when it starts from a backup
        // (its pg_control says it was running), so syncing here too wrote every file out twice.
        const combine = runPgTool(config, 'pg_combinebackup', ['--link', '--no-sync', '--manifest-checksums=CRC32C', '-o', paths.dataDir, ...plains], undefined, { all: true, reject: false });
        killOnCancel(combine);
        const combined = await combine;
        if (combined.exitCode !== 0) {
          throw ApplicationFailure.nonRetryable(`pg_combinebackup of ${input.backup.chain.join(' + ')} failed: ${(combined.all ?? '').trim().split('\n').slice(-3).join('; ')}`, 'BackupCorrupt');
        }
        // The WAL that makes the newest backup consistent, from its own -Xstream copy.
        const walDir = path.join(paths.dataDir, 'pg_wal');
        await mkdir(walDir, { recursive: true, mode: 0o700 });
        for (const name of readdirSync(path.join(last, 'pg_wal'))) {
          if (!existsSync(path.join(walDir, name))) await cp(path.join(last, 'pg_wal', name), path.join(walDir, name), { recursive: true });
        }
      }
      const combineDone = Date.now();
      const verify = runPgTool(config, 'pg_verifybackup', ['--exit-on-error', '--quiet', paths.dataDir], undefined, { all: true, reject: false });
      killOnCancel(verify);
      const verified = await verify;
      if (verified.exitCode !== 0) {
        throw ApplicationFailure.nonRetryable(`base backup ${input.backup.backupId} failed pg_verifybackup after the download: ${(verified.all ?? '').trim().split('\n').slice(0, 3).join('; ')}`, 'BackupCorrupt');
      }
      await rm(paths.downloads, { recursive: true, force: true });
      await handToServerUser(paths, serverOsUser(config, input.cluster), [paths.dataDir]);
      const phaseMs = { objects: objectsDone - started, combine: plains.length > 1 ? combineDone - objectsDone : undefined, verify: Date.now() - combineDone };
      const fetched: FetchedBaseBackup = { backupId: input.backup.backupId, chain: input.backup.chain, downloadedBytes, fetchMs: Date.now() - started, phaseMs };
      await writeFile(paths.restored, JSON.stringify(fetched), { mode: 0o600 });
      return fetched;
    } catch (err) {
      // Half-built: the next attempt starts from the downloads again.
      await rm(paths.dataDir, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof ApplicationFailure) throw err;
      if ((err as { $metadata?: unknown }).$metadata !== undefined) throw storageFailure(config.s3, err);
      throw err;
    } finally {
      heartbeats.stop();
      s3.destroy();
    }
  }

  return { fetchBaseBackup };
}
