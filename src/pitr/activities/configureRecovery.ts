// The configure step: what the restored data directory needs to recover to the target and
// nothing else. restore_command fetches WAL from the archive through the wal-fetch program (with
// read-ahead into a local cache); recovery_target_* and recovery_target_action = pause stop it at
// the target; and everything the copy brought from the live primary that would reach out from
// the instance (archiving, replication, synchronous standbys, its port) is switched off.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import type { WorkerConfig } from '../../shared/config';
import { PRIVATE_FILE_MODE } from '../../backup/stagedBackup';
import type { RecoveryPlan, RestoreInstance } from '../contract';
import { handToServerUser, instancePaths, serverOsUser } from './instance';

/** Segments read ahead per fetch: 16 × 16 MiB ahead of replay, fetched four at a time. */
const READ_AHEAD = 16;
const MARKER = '# pgops point-in-time restore';

/**
 * The wal-fetch program as one self-contained file in the instance's work directory. PostgreSQL
 * runs it as the servers' OS user, who may not read the worker's own install (a checkout in a
 * private directory, a deployment readable by the worker's user only); the work directory is
 * handed to that user. Bundled from the compiled program in a deployment, from the sources in a
 * checkout.
 */
async function installWalFetch(paths: ReturnType<typeof instancePaths>): Promise<string> {
  const compiled = __filename.endsWith('.js');
  const entry = path.resolve(__dirname, '../walFetch', compiled ? 'main.js' : 'main.ts');
  const program = path.join(paths.workDir, 'wal-fetch.js');
  await build({ entryPoints: [entry], bundle: true, platform: 'node', target: 'node20', outfile: program, logLevel: 'error' });
  return program;
}

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
const confQuote = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/**
 * The env file of the wal-fetch program: the bucket's settings under the worker's own names, and
 * the worker's key ring when it has one (the archive is then sealed and its objects must open).
 * 0600 and the server user's: the one copy of the keys outside the worker's own configuration.
 */
export function fetchEnvironment(config: WorkerConfig, plan: RecoveryPlan, cache: string, log: string): string {
  const s3 = config.s3;
  const lines: Record<string, string | undefined> = {
    PGOPS_S3_ENDPOINT: s3.endpoint,
    PGOPS_S3_REGION: s3.region,
    PGOPS_S3_BUCKET: s3.bucket,
    PGOPS_S3_PREFIX: s3.prefix,
    PGOPS_S3_ACCESS_KEY_ID: s3.accessKeyId,
    PGOPS_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    PGOPS_S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
    PGOPS_S3_CHECKSUM_MODE: s3.checksumMode,
    PGOPS_WAL_FETCH_ROOT: plan.backup.root,
    PGOPS_WAL_FETCH_STOP_LSN: plan.window.to!.lsn,
    PGOPS_WAL_FETCH_STOP_TIMELINE: String(plan.window.to!.timeline),
    PGOPS_WAL_FETCH_SEGMENT_BYTES: String(plan.segmentBytes),
    PGOPS_WAL_FETCH_READ_AHEAD: String(READ_AHEAD),
    PGOPS_WAL_FETCH_CACHE: cache,
    PGOPS_WAL_FETCH_LOG: log,
    PGOPS_ZSTD_BIN: process.env.PGOPS_ZSTD_BIN,
    PGOPS_ENCRYPTION_KEYS: config.encryption?.exportKeyList(),
    PGOPS_ENCRYPTION_KEY_ID: config.encryption?.current,
  };
  return Object.entries(lines)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join('\n');
}

/** A segment read ahead is moved into place by the shell; anything else starts the fetch program. */
function restoreCommandScript(paths: ReturnType<typeof instancePaths>, program: string): string {
  return `#!/bin/sh
# restore_command of a pgops point-in-time restore: "$1" is %f, "$2" is %p.
if [ -f ${shellQuote(paths.cache)}/"$1" ]; then exec mv -f ${shellQuote(paths.cache)}/"$1" "$2"; fi
exec ${[process.execPath, program].map(shellQuote).join(' ')} ${shellQuote(paths.fetchEnv)} "$1" "$2"
`;
}

export function configureRecoveryActivities(config: WorkerConfig) {
  async function configureRecovery(input: { cluster: string; restoreId: string; instance: RestoreInstance; plan: RecoveryPlan }): Promise<Record<string, string>> {
    const paths = instancePaths(input.instance);
    await mkdir(paths.cache, { recursive: true, mode: 0o700 });
    await writeFile(paths.fetchEnv, `${fetchEnvironment(config, input.plan, paths.cache, paths.fetchLog)}\n`, { mode: PRIVATE_FILE_MODE });
    await writeFile(paths.fetchLog, '', { mode: PRIVATE_FILE_MODE, flag: 'a' });
    await writeFile(paths.restoreCommand, restoreCommandScript(paths, await installWalFetch(paths)), { mode: 0o700 });

    const settings: Record<string, string> = {
      port: String(input.instance.port),
      listen_addresses: 'localhost',
      cluster_name: `pitr-${input.restoreId}`,
      restore_command: `${shellQuote(paths.restoreCommand)} %f %p`,
      ...input.plan.settings,
      // A restored copy never archives or streams into the live cluster's places.
      archive_mode: 'off',
      primary_conninfo: '',
      primary_slot_name: '',
      synchronous_standby_names: '',
      hot_standby: 'on',
      default_transaction_read_only: 'off',
      // Its log goes to <dataDir>.log (pg_ctl -l), where the replay step reads why it stopped.
      logging_collector: 'off',
    };
    // postgresql.auto.conf is read last, and its last line for a setting wins: ALTER SYSTEM
    // settings the copy carries (a fenced primary's read-only flag) are overridden too.
    const autoConf = path.join(paths.dataDir, 'postgresql.auto.conf');
    const current = await readFile(autoConf, 'utf8').catch(() => '');
    if (!current.includes(MARKER)) {
      const block = Object.entries(settings).map(([key, value]) => `${key} = ${confQuote(value)}`);
      await appendFile(autoConf, `\n${MARKER} ${input.restoreId}\n${block.join('\n')}\n`);
    }
    // A standby of the archive: it never ends recovery (nor promotes) by itself, and a segment
    // missing or refused by the fetch is asked for again instead of ending recovery short.
    await writeFile(path.join(paths.dataDir, 'standby.signal'), '', { mode: PRIVATE_FILE_MODE });
    await handToServerUser(paths, serverOsUser(config, input.cluster), [paths.dataDir, paths.workDir]);
    return settings;
  }

  return { configureRecovery };
}
