// The backup step: pg_basebackup of the cluster's primary into the staging dir, tar format with
// client-side zstd, the WAL of its own run streamed beside it (-Xstream), so each base backup
// restores on its own even where the WAL archive has a gap. An incremental builds on the newest
// complete base backup's backup_manifest, fetched from the bucket.
import { readdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import execa from 'execa';
import { ApplicationFailure, type Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { WorkerConfig } from '../../shared/config';
import type { StagedBaseBackup } from '../contract';
import { archiveRoot, BASE_BACKUP_MANIFEST, type BaseBackupRecord } from '../layout';
import { heartbeatWhile, killOnCancel } from '../../shared/heartbeat';
import { childEnv } from '../../shared/childEnv';
import { runPgTool } from '../../shared/postgres/pgTools';
import { directoryBytes, prepareStagedDir, sha256File } from '../../backup/stagedBackup';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { clusterNode, resolveCluster } from '../../failover/activities/cluster';
import { downloadBaseBackupManifest, listBaseBackups } from '../catalog';
import { baseBackupStaging, readStagedBaseBackup, writeStagedBaseBackup } from './baseBackupStaging';
import { firstError, incrementalRefusal, pgBasebackupRefusal, readBackupServer } from './backupServer';

export interface TakeBaseBackupInput {
  cluster: string;
  /** The node to read (the cluster's primary, resolved by the workflow). */
  node: string;
  backupId: string;
  mode: 'auto' | 'full';
  /** An `auto` run takes a full backup when the newest full one is older than this. */
  fullEvery?: string;
}

/** pg_basebackup's -Xstream leaves pg_wal.tar uncompressed; the worker's zstd takes it (mostly zero padding). */
const ZSTD = 'zstd';

interface ManifestWalRange {
  Timeline: number;
  'Start-LSN': string;
  'End-LSN': string;
}

export function takeBaseBackupActivities(config: WorkerConfig) {
  async function takeBaseBackup(input: TakeBaseBackupInput): Promise<StagedBaseBackup> {
    const cluster = resolveCluster(config, input.cluster);
    const node = clusterNode(config, cluster, input.node);
    // A retry after the worker died past this step: the complete staged backup is reused.
    const done = await readStagedBaseBackup(config.stagingDir, input.backupId);
    if (done && (input.mode === 'auto' || done.record.kind === 'full')) return done;

    const server = await readBackupServer(node);
    await prepareStagedDir(config.stagingDir, input.backupId);
    const staging = baseBackupStaging(config.stagingDir, input.backupId);
    await rm(staging.data, { recursive: true, force: true }); // pg_basebackup wants an empty directory

    const root = archiveRoot(config.s3, cluster.name, server.systemIdentifier);
    const chosen = input.mode === 'auto' ? await chooseParent(root, staging.parentManifest, input.fullEvery) : undefined;
    const parent = chosen?.parent;
    const fullBecause =
      input.mode === 'full' ? undefined : parent ? undefined : (chosen?.fullBecause ?? `no earlier base backup of ${cluster.name} (system ${server.systemIdentifier}) to build on`);

    const startedAt = new Date().toISOString();
    const args = [
      `--pgdata=${staging.data}`,
      '--format=tar',
      '--wal-method=stream',
      '--compress=client-zstd:1',
      // The manifest's checksums are computed by the server being backed up, and serve pg_verifybackup's
      // corruption check (after the backup, after a fetch): CRC32C, PostgreSQL's default, costs the
      // primary and every restore a fraction of SHA-256. Tampering is caught by the SHA-256 of each
      // stored object in the signed backup.json, and by the objects' authenticated encryption.
      '--manifest-checksums=CRC32C',
      '--checkpoint=fast',
      `--label=pgops:${input.backupId}`,
      // The staged copy is checked by pg_verifybackup and uploaded at once; a crash redoes it.
      '--no-sync',
      ...(parent ? [`--incremental=${staging.parentManifest}`] : []),
    ];
    const heartbeats = heartbeatWhile(() => ({ stage: 'backup', stagedBytes: directoryBytes(staging.data) }));
    try {
      const child = runPgTool(config, 'pg_basebackup', args, node, { all: true });
      killOnCancel(child);
      await child;
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? (err as Error).message;
      await rm(staging.data, { recursive: true, force: true });
      const refusal = incrementalRefusal(stderr);
      if (parent && refusal) {
        throw ApplicationFailure.nonRetryable(`${node.name} cannot take an incremental on ${parent.backupId}: ${refusal}`, 'IncrementalNotPossible');
      }
      throw pgBasebackupRefusal(node, stderr) ?? new Error(`pg_basebackup of ${node.name} failed: ${firstError(stderr)}`, { cause: err });
    } finally {
      heartbeats.stop();
    }
    const stoppedAt = new Date().toISOString();

    await compressWal(staging.data);
    const manifest = JSON.parse(await readFile(path.join(staging.data, BASE_BACKUP_MANIFEST), 'utf8')) as {
      'System-Identifier': number | string;
      'WAL-Ranges': ManifestWalRange[];
    };
    const ranges = manifest['WAL-Ranges'];
    // JSON.parse loses a 64-bit identifier's last digits; the raw text keeps them.
    const manifestSystemId = /"System-Identifier":\s*(\d+)/.exec(await readFile(path.join(staging.data, BASE_BACKUP_MANIFEST), 'utf8'))?.[1];
    if (manifestSystemId !== server.systemIdentifier || ranges.length === 0) {
      throw ApplicationFailure.nonRetryable(
        `the backup_manifest pg_basebackup wrote names system ${manifestSystemId} with ${ranges.length} WAL range(s); ${node.name} is system ${server.systemIdentifier}`,
        'BackupCorrupt',
      );
    }
    const files = await hashFiles(staging.data);
    const record: BaseBackupRecord = {
      formatVersion: 1,
      backupId: input.backupId,
      cluster: cluster.name,
      systemIdentifier: server.systemIdentifier,
      node: node.name,
      kind: parent ? 'incremental' : 'full',
      ...(parent ? { parentBackupId: parent.backupId } : {}),
      startLsn: ranges[0]['Start-LSN'],
      startTimeline: ranges[0].Timeline,
      stopLsn: ranges.at(-1)!['End-LSN'],
      stopTimeline: ranges.at(-1)!.Timeline,
      startedAt,
      stoppedAt,
      serverVersion: server.serverVersion,
      files,
      sizeBytes: files.reduce((sum, f) => sum + f.sizeBytes, 0),
    };
    const staged: StagedBaseBackup = { record, ...(fullBecause ? { fullBecause } : {}) };
    await writeStagedBaseBackup(config.stagingDir, staged);
    return staged;
  }

  /** The newest complete base backup of this system, its manifest saved where --incremental reads it. */
  /** The newest base backup to build on (its manifest fetched to `file`), or why a full one is due. */
  async function chooseParent(root: string, file: string, fullEvery: string | undefined): Promise<{ parent?: BaseBackupRecord; fullBecause?: string }> {
    const s3 = createS3Client(config.s3);
    try {
      // Only an authentic record is built on: an incremental of a planted parent would restore its content.
      const records = (await listBaseBackups(s3, config.s3, config.encryption, '', root)).map((b) => b.record);
      const newest = records.at(-1);
      const newestFull = records.filter((r) => r.kind === 'full').at(-1);
      if (newest && newestFull && fullEvery && Date.now() - Date.parse(newestFull.stoppedAt) > msToNumber(fullEvery as Duration)) {
        return { fullBecause: `the newest full base backup, ${newestFull.backupId}, is older than ${fullEvery} (fullEvery)` };
      }
      if (newest) await downloadBaseBackupManifest(s3, config.s3.bucket, config.encryption, root, newest, file);
      return { parent: newest };
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') {
        throw ApplicationFailure.nonRetryable(`the newest base backup's backup_manifest is missing from ${root}/base/: nothing to build an incremental on`, 'IncrementalNotPossible');
      }
      // Its record verified but its manifest does not open: altered in the bucket, or a key this worker lacks.
      if ((err as Error).name === 'ObjectNotAuthentic' || (err as Error).name === 'KeyMissing') {
        throw ApplicationFailure.nonRetryable(
          `the newest base backup's backup_manifest under ${root}/base/ does not open: ${(err as Error).message}; take a full base backup (--mode full)`,
          (err as Error).name === 'KeyMissing' ? 'KeyMissing' : 'BackupCorrupt',
        );
      }
      throw storageFailure(config.s3, err);
    } finally {
      s3.destroy();
    }
  }

  return { takeBaseBackup };
}

/** pg_wal.tar → pg_wal.tar.zst through the zstd CLI (Node 20 has no zstd), streaming on disk. */
async function compressWal(dir: string): Promise<void> {
  const tar = path.join(dir, 'pg_wal.tar');
  try {
    await execa(ZSTD, ['-1', '-q', '-f', '--rm', tar, '-o', `${tar}.zst`], { env: childEnv({}), extendEnv: false });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    if (e.code === 'ENOENT') {
      throw ApplicationFailure.nonRetryable('zstd is not installed on the worker (apt-get install zstd): base backups compress their WAL with it', 'ZstdMissing');
    }
    throw new Error(`zstd of ${tar} failed: ${e.stderr ?? err}`, { cause: err });
  }
}

/** Every staged file with its SHA-256, in name order (backup_manifest last: it goes up last). */
async function hashFiles(dir: string): Promise<BaseBackupRecord['files']> {
  const names = readdirSync(dir).sort((a, b) => Number(a === BASE_BACKUP_MANIFEST) - Number(b === BASE_BACKUP_MANIFEST) || a.localeCompare(b));
  const files: BaseBackupRecord['files'] = [];
  for (const name of names) {
    const { sha256, bytes } = await sha256File(path.join(dir, name));
    files.push({ name, sizeBytes: bytes, sha256 });
  }
  return files;
}
