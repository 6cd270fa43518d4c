// One way to run a PostgreSQL client tool: from the configured bin dir, arguments as an array,
// the password in the child's environment, never on its command line, and none of the worker's
// other secrets there.
import path from 'node:path';
import execa from 'execa';
import { ApplicationFailure } from '@temporalio/common';
import type { TargetConfig, TargetTls, WorkerConfig } from '../config';
import { childEnv } from '../childEnv';

export type PgTool =
  | 'pg_dump'
  | 'pg_dumpall'
  | 'pg_restore'
  | 'psql'
  | 'pg_basebackup'
  | 'pg_verifybackup'
  | 'pg_combinebackup'
  | 'pg_rewind'
  | 'pg_ctl'
  | 'pg_controldata'
  | 'pg_waldump'
  | 'pg_receivewal'
  | 'pgbench';

export interface PgToolOptions extends execa.Options {
  /** Run as this OS user (through runuser): server-side tools must act as the owner of the data directory. */
  runAs?: string;
  /**
   * Programs that exec the tool in turn, e.g. ['flock', '-n', '-F', lock, 'setpriv', '--pdeathsig', 'KILL', '--']:
   * the tool's path and arguments follow them. They see the same environment as the tool.
   */
  wrapper?: string[];
}

export function pgToolPath(config: WorkerConfig, tool: PgTool): string {
  return path.join(config.pgBinDir, tool);
}

/** libpq environment for a target, so connection details and the password stay off argv. */
export function libpqEnv(target: TargetConfig): Record<string, string> {
  return {
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGDATABASE: target.database,
    PGCONNECT_TIMEOUT: '5',
    ...(target.password ? { PGPASSWORD: target.password } : {}),
    ...(target.tls ? tlsEnv(target.tls) : {}),
  };
}

/** The target URL's TLS settings as libpq reads them, so client tools connect as the pg client does. */
function tlsEnv(tls: TargetTls): Record<string, string> {
  return {
    PGSSLMODE: tls.mode,
    ...(tls.rootCert ? { PGSSLROOTCERT: tls.rootCert } : {}),
    ...(tls.cert ? { PGSSLCERT: tls.cert } : {}),
    ...(tls.key ? { PGSSLKEY: tls.key } : {}),
  };
}

export function runPgTool(config: WorkerConfig, tool: PgTool, args: string[], target?: TargetConfig, options: PgToolOptions = {}) {
  const { runAs, wrapper = [], ...execaOptions } = options;
  const invocation = [...(runAs ? ['runuser', '-u', runAs, '--'] : []), ...wrapper, pgToolPath(config, tool), ...args];
  const [command, ...argv] = invocation;
  return execa(command, argv, {
    // execa's cleanup hooks SIGTERM through signal-exit, which kills the child and re-raises the
    // signal: a deploy's SIGTERM would kill a running dump at once and the worker with it, before
    // Temporal's graceful shutdown could let the dump finish. Children end with their activity.
    cleanup: false,
    ...execaOptions,
    env: childEnv({ ...(target ? libpqEnv(target) : {}), ...execaOptions.env }),
    // Only what the tool needs: pg_ctl's postmaster would otherwise carry the worker's secrets for its whole life.
    extendEnv: false,
  });
}

/** "pg_dump (PostgreSQL) 18.3" -> "18.3" */
export async function pgToolVersion(config: WorkerConfig, tool: PgTool): Promise<string> {
  try {
    const { stdout } = await runPgTool(config, tool, ['--version']);
    const match = /(\d+(?:\.\d+)?)/.exec(stdout);
    if (!match) throw new Error(`unexpected output: ${stdout}`);
    return match[1];
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `cannot run ${tool} from PGOPS_PG_BIN_DIR=${config.pgBinDir}: ${(err as Error).message}`,
      'PgToolMissing',
    );
  }
}

export function majorVersion(version: string): number {
  return Number(version.split('.')[0]);
}
