// The dump step, inside an exported snapshot so the manifest's row counts describe exactly what
// was dumped. Custom format streams to the staging dir and is hashed in the same pass; directory
// format lets pg_dump write one file per table with parallel jobs, then hashes each file.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import type { WorkerConfig } from '../../shared/config';
import type { Compression, DumpFormat } from '../contract';
import type { BackupManifest, DataFile } from '../manifest';
import { heartbeatWhile, killOnCancel } from '../../shared/heartbeat';
import { PRIVATE_FILE_MODE, assertStagedDumpIntact, digestOfFiles, directoryBytes, hashDumpDirectory, prepareStagedDir, sha256File } from '../stagedBackup';
import { DEFAULT_CHUNK_BYTES, ENCRYPTION_CIPHER, ENCRYPTION_SCHEME } from '../../shared/crypto/objectStream';
import { DUMP_DIR, DUMP_FILE, GLOBALS_FILE } from '../manifest';
import { readStagedManifest, writeManifest } from '../manifest/store';
import { connectTarget, resolveTarget, targetFailure } from '../../shared/postgres/connection';
import { majorVersion, pgToolVersion, runPgTool } from '../../shared/postgres/pgTools';
import { readRequirements } from './databaseRequirements';
import { countRows } from '../../shared/postgres/rowCounts';

export interface DumpInput {
  /** The catalog the backup belongs to: a target, or a cluster whose role was resolved to `node`. */
  target: string;
  /** The server to dump from (default: `target`). */
  node?: string;
  backupId: string;
  format: DumpFormat;
  jobs: number;
  compression: Compression;
  includeRolePasswords?: boolean;
}

const COMPRESSION = /^(none|gzip|lz4|zstd)(:\d{1,2})?$|^\d$/;

export function dumpActivities(config: WorkerConfig) {
  async function dumpDatabase(input: DumpInput): Promise<BackupManifest> {
    const target = resolveTarget(config, input.node ?? input.target);
    if (!COMPRESSION.test(input.compression)) {
      throw ApplicationFailure.nonRetryable(
        `compression "${input.compression}" is not one of none, gzip[:level], lz4[:level], zstd[:level]`,
        'BadInput',
      );
    }
    if (input.format !== 'custom' && input.format !== 'directory') {
      throw ApplicationFailure.nonRetryable(`format "${input.format}" is not custom or directory`, 'BadInput');
    }
    if (!Number.isInteger(input.jobs) || input.jobs < 1 || input.jobs > 64) {
      throw ApplicationFailure.nonRetryable(`jobs ${input.jobs} must be a whole number from 1 to 64`, 'BadInput');
    }
    // A retry after a crash: a complete, intact staged dump is reused, not dumped again.
    const staged = await readStagedManifest(config.stagingDir, input.backupId);
    if (staged) {
      const intact = await assertStagedDumpIntact(config.stagingDir, staged).then(
        () => true,
        () => false,
      );
      if (intact) return staged;
    }
    const dir = await prepareStagedDir(config.stagingDir, input.backupId);
    const pgDumpVersion = await pgToolVersion(config, 'pg_dump');
    const startedAt = new Date().toISOString();
    const snapshotHolder = await connectTarget(target);
    try {
      const info = await exportSnapshot(snapshotHolder);
      if (majorVersion(pgDumpVersion) < majorVersion(info.serverVersion)) {
        throw ApplicationFailure.nonRetryable(
          `pg_dump ${pgDumpVersion} is older than target ${input.target}'s server ${info.serverVersion}; ` +
            `point PGOPS_PG_BIN_DIR at PostgreSQL ${majorVersion(info.serverVersion)} client tools`,
          'PgDumpTooOld',
        );
      }
      const common = [`--compress=${input.compression}`, `--snapshot=${info.snapshot}`];
      const [dataFiles, { counts: rowCounts, requires }] = await Promise.all([
        input.format === 'custom'
          ? streamDump(path.join(dir, DUMP_FILE), ['--format=custom', ...common])
          : dumpDirectory(path.join(dir, DUMP_DIR), ['--format=directory', `--jobs=${input.jobs}`, ...common]),
        countRows(snapshotHolder).then(async (counts) => ({ counts, requires: await readRequirements(snapshotHolder) })),
      ]);
      await snapshotHolder.query('COMMIT');
      await dumpGlobals(path.join(dir, GLOBALS_FILE), input.includeRolePasswords ?? false);
      const globals = await sha256File(path.join(dir, GLOBALS_FILE));
      const manifest: BackupManifest = {
        formatVersion: 1,
        backupId: input.backupId,
        target: input.target,
        ...(input.node && input.node !== input.target ? { sourceNode: input.node } : {}),
        database: target.database,
        serverVersion: info.serverVersion,
        pgDumpVersion,
        startedAt,
        finishedAt: new Date().toISOString(),
        format: input.format,
        jobs: input.format === 'directory' ? input.jobs : 1,
        compression: input.compression,
        sizeBytes: dataFiles.reduce((sum, f) => sum + f.sizeBytes, 0),
        sha256: input.format === 'custom' ? dataFiles[0].sha256 : digestOfFiles(dataFiles),
        dataFiles,
        databaseSizeBytes: info.databaseSize,
        requires,
        rowCounts,
        dumpFile: input.format === 'custom' ? DUMP_FILE : DUMP_DIR,
        globalsFile: GLOBALS_FILE,
        globalsIncludePasswords: input.includeRolePasswords ?? false,
        globals: { name: GLOBALS_FILE, sizeBytes: globals.bytes, sha256: globals.sha256 },
        // Decided here, once: a retried upload encrypts with the same key even if the ring rotated meanwhile.
        ...(config.encryption
          ? { encryption: { scheme: ENCRYPTION_SCHEME, cipher: ENCRYPTION_CIPHER, chunkBytes: DEFAULT_CHUNK_BYTES, keyId: config.encryption.current } }
          : {}),
      };
      await writeManifest(dir, manifest);
      return manifest;
    } catch (err) {
      throw err instanceof ApplicationFailure ? err : targetFailure(target, err);
    } finally {
      await snapshotHolder.end().catch(() => undefined);
    }

    function pgDumpFailure(err: unknown, stderr: string): Error {
      if (/compression .* not supported|this build does not support compression/i.test(stderr)) {
        return ApplicationFailure.nonRetryable(`pg_dump cannot use compression ${input.compression}: ${stderr.trim()}`, 'CompressionUnsupported');
      }
      return new Error(`pg_dump of target ${input.target} failed: ${stderr.trim() || (err as Error).message}`, { cause: err });
    }

    async function dumpDirectory(out: string, args: string[]): Promise<DataFile[]> {
      await rm(out, { recursive: true, force: true }); // pg_dump -Fd refuses an existing directory
      const heartbeats = heartbeatWhile(() => ({ stage: 'dump', dumpedBytes: directoryBytes(out) }));
      try {
        const child = runPgTool(config, 'pg_dump', [...args, `--file=${out}`], target);
        killOnCancel(child);
        await child;
      } catch (err) {
        await rm(out, { recursive: true, force: true });
        throw pgDumpFailure(err, (err as { stderr?: string }).stderr ?? '');
      } finally {
        heartbeats.stop();
      }
      return hashDumpDirectory(out);
    }

    async function streamDump(file: string, args: string[]): Promise<DataFile[]> {
      const hash = createHash('sha256');
      let bytes = 0;
      const heartbeats = heartbeatWhile(() => ({ stage: 'dump', dumpedBytes: bytes }));
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          bytes += chunk.length;
          heartbeats.progressed();
          done(null, chunk);
        },
      });
      const child = runPgTool(config, 'pg_dump', args, target, { stdout: 'pipe', buffer: false, stderr: 'pipe' });
      killOnCancel(child);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        await Promise.all([pipeline(child.stdout!, hashing, createWriteStream(file, { mode: PRIVATE_FILE_MODE })), child]);
      } catch (err) {
        await rm(file, { force: true });
        throw pgDumpFailure(err, stderr);
      } finally {
        heartbeats.stop();
      }
      if ((await stat(file)).size !== bytes) throw new Error(`staged dump ${file} is shorter than what pg_dump wrote`);
      return [{ name: path.basename(file), sizeBytes: bytes, sha256: hash.digest('hex') }];
    }

    async function dumpGlobals(file: string, withPasswords: boolean): Promise<void> {
      const args = ['--globals-only', `--file=${file}`, `--database=${target.database}`];
      if (!withPasswords) args.push('--no-role-passwords');
      // pg_dumpall would create it under the worker's umask; it keeps the mode of a file that exists.
      await writeFile(file, '', { mode: PRIVATE_FILE_MODE });
      try {
        await runPgTool(config, 'pg_dumpall', args, target);
      } catch (err) {
        throw new Error(`pg_dumpall --globals-only of target ${input.target} failed: ${(err as { stderr?: string }).stderr ?? err}`, {
          cause: err,
        });
      }
    }
  }

  return { dumpDatabase };
}

/** Opens a read-only repeatable-read transaction and exports its snapshot for pg_dump to share. */
async function exportSnapshot(client: Client) {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const { rows } = await client.query<{ snapshot: string; version: string; size: string }>(
    `SELECT pg_export_snapshot() AS snapshot, current_setting('server_version') AS version,
            pg_database_size(current_database()) AS size`,
  );
  return { snapshot: rows[0].snapshot, serverVersion: rows[0].version.split(' ')[0], databaseSize: Number(rows[0].size) };
}
