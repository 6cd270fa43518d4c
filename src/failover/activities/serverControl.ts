// Stopping, starting and inspecting a PostgreSQL server on the worker's own machine, through
// pg_ctl and pg_controldata run as the owner of its data directory. Remote nodes have no server
// control: fence them with the cluster's fencing hook.
import { ApplicationFailure } from '@temporalio/common';
import type { ServerControl, TargetConfig, WorkerConfig } from '../../shared/config';
import { runPgTool, type PgTool } from '../../shared/postgres/pgTools';
import { killServerProcesses, removeZombieLockFile, serverFrozen, serverProcesses } from './serverProcesses';

export function serverControl(target: TargetConfig): ServerControl {
  if (!target.server) {
    throw ApplicationFailure.nonRetryable(
      `target ${target.name} has no server control: set ${target.source.replace(/_URL$/, '_DATA_DIR')} (and _OS_USER) for a server on the worker's machine`,
      'NoServerControl',
    );
  }
  return target.server;
}

/** runuser only helps a root worker; a worker running as the server's user acts directly. */
function runAs(server: ServerControl): string | undefined {
  return server.osUser && process.getuid?.() === 0 ? server.osUser : undefined;
}

export function runServerTool(config: WorkerConfig, target: TargetConfig, tool: PgTool, args: string[], options: { timeoutMs?: number; withLibpqEnv?: TargetConfig } = {}) {
  const server = serverControl(target);
  return runPgTool(config, tool, args, options.withLibpqEnv, {
    runAs: runAs(server),
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
    all: true,
  });
}

/** pg_ctl status: exit 0 running, 3 not running, 4 no data directory. A killed, unreaped postmaster is not running. */
export async function serverRunning(config: WorkerConfig, target: TargetConfig): Promise<boolean> {
  removeZombieLockFile(serverControl(target).dataDir);
  const result = await runServerTool(config, target, 'pg_ctl', ['-D', serverControl(target).dataDir, 'status']);
  if (result.exitCode === 0) return true;
  // 4: no data directory (e.g. a failed pg_basebackup removed it): nothing can be running there.
  if (result.exitCode === 3 || result.exitCode === 4) return false;
  throw ApplicationFailure.retryable(`pg_ctl status for ${target.name} failed (${result.exitCode}): ${result.all}`, 'ServerControlFailed');
}

export interface StopBounds {
  /** Seconds pg_ctl may wait for each shutdown mode. */
  fastSeconds: number;
  immediateSeconds: number;
  /** Fencing: when neither mode finishes, SIGKILL every process of the data directory. */
  kill: boolean;
}

/** A clean stop (switchover, rejoin): a shutdown checkpoint is worth waiting for. */
const CLEAN_STOP: StopBounds = { fastSeconds: 30, immediateSeconds: 30, kill: false };
/** Fencing a failed primary: bounded to seconds, and it always ends with nothing running. */
export const FENCE_STOP: StopBounds = { fastSeconds: 3, immediateSeconds: 3, kill: true };

/**
 * Stops the server: `fast`, then `immediate` when fast does not finish in time, then (with
 * `kill`) SIGKILL of the postmaster and every process of its data directory, confirmed by the
 * processes being gone. A frozen server goes straight to SIGKILL. Returns what it did.
 */
export async function stopServer(config: WorkerConfig, target: TargetConfig, bounds: StopBounds = CLEAN_STOP): Promise<string> {
  const dataDir = serverControl(target).dataDir;
  const leftovers = () => (bounds.kill ? serverProcesses(dataDir).length : 0);
  if (!(await serverRunning(config, target)) && leftovers() === 0) return `${target.name} was not running`;
  if (bounds.kill && serverFrozen(dataDir)) {
    return `killed ${await killServerProcesses(dataDir)} process(es) of ${target.name} with SIGKILL: the server was frozen (stopped processes act on no other signal)`;
  }
  const tried: string[] = [];
  for (const [mode, seconds] of [['fast', bounds.fastSeconds], ['immediate', bounds.immediateSeconds]] as const) {
    if (!(await serverRunning(config, target))) break;
    const stop = await runServerTool(config, target, 'pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', String(seconds), 'stop'], { timeoutMs: (seconds + 10) * 1000 });
    tried.push(`-m ${mode}: ${stop.exitCode === 0 ? 'ok' : (stop.all ?? '').trim().split('\n').pop()}`);
    if (stop.exitCode === 0 && !(await serverRunning(config, target)) && leftovers() === 0) {
      return `stopped ${target.name} (pg_ctl stop -m ${mode}${mode === 'immediate' ? ' after -m fast failed' : ''})`;
    }
  }
  if (!bounds.kill) throw ApplicationFailure.retryable(`could not stop ${target.name}: ${tried.join('; ')}`, 'ServerControlFailed');
  const killed = await killServerProcesses(dataDir);
  return `killed ${killed} process(es) of ${target.name} with SIGKILL after pg_ctl stop did not finish (${tried.join('; ') || 'server already down'})`;
}

/** Starts the server on its configured port, logging beside its data directory. */
export async function startServer(config: WorkerConfig, target: TargetConfig): Promise<void> {
  if (await serverRunning(config, target)) return;
  const dataDir = serverControl(target).dataDir;
  const result = await runServerTool(
    config,
    target,
    'pg_ctl',
    ['-D', dataDir, '-l', `${dataDir}.log`, '-o', `-p ${Number(target.port)}`, '-w', '-t', '120', 'start'],
    { timeoutMs: 130_000 },
  );
  if (result.exitCode !== 0) {
    throw ApplicationFailure.retryable(`could not start ${target.name} (see ${dataDir}.log): ${result.all}`, 'ServerControlFailed');
  }
}

/** pg_controldata's fields, e.g. "Database cluster state", "Latest checkpoint location". */
export async function controlData(config: WorkerConfig, target: TargetConfig): Promise<Record<string, string>> {
  const result = await runServerTool(config, target, 'pg_controldata', ['-D', serverControl(target).dataDir]);
  if (result.exitCode !== 0) throw ApplicationFailure.retryable(`pg_controldata for ${target.name} failed: ${result.all}`, 'ServerControlFailed');
  return Object.fromEntries(
    result.stdout
      .split('\n')
      .map((line) => /^([^:]+):\s*(.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1].trim(), m[2].trim()]),
  );
}
