// Stopping, starting and inspecting a PostgreSQL server on the worker's own machine, through
// pg_ctl and pg_controldata run as the owner of its data directory. Remote nodes have no server
// control: fence them with the cluster's fencing hook.
import { ApplicationFailure } from '@temporalio/common';
import type { ServerControl, TargetConfig, WorkerConfig } from '../../config';
import { runPgTool, type PgTool } from '../postgres/pgTools';

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

/** pg_ctl status: exit 0 running, 3 not running, 4 no data directory. */
export async function serverRunning(config: WorkerConfig, target: TargetConfig): Promise<boolean> {
  const result = await runServerTool(config, target, 'pg_ctl', ['-D', serverControl(target).dataDir, 'status']);
  if (result.exitCode === 0) return true;
  // 4: no data directory (e.g. a failed pg_basebackup removed it): nothing can be running there.
  if (result.exitCode === 3 || result.exitCode === 4) return false;
  throw ApplicationFailure.retryable(`pg_ctl status for ${target.name} failed (${result.exitCode}): ${result.all}`, 'ServerControlFailed');
}

/** Stops the server; `fast` first, `immediate` when fast does not finish in time. Returns what it did. */
export async function stopServer(config: WorkerConfig, target: TargetConfig, mode: 'fast' | 'immediate' = 'fast'): Promise<string> {
  const dataDir = serverControl(target).dataDir;
  if (!(await serverRunning(config, target))) return `${target.name} was not running`;
  const fast = await runServerTool(config, target, 'pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '30', 'stop'], { timeoutMs: 40_000 });
  if (fast.exitCode === 0 && !(await serverRunning(config, target))) return `stopped ${target.name} (pg_ctl stop -m ${mode})`;
  const immediate = await runServerTool(config, target, 'pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop'], { timeoutMs: 40_000 });
  if (immediate.exitCode === 0 && !(await serverRunning(config, target))) return `stopped ${target.name} (pg_ctl stop -m immediate after -m ${mode} failed)`;
  throw ApplicationFailure.retryable(`could not stop ${target.name}: ${fast.all}\n${immediate.all}`, 'ServerControlFailed');
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
