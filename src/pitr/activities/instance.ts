// The restored instance: a new PostgreSQL server on the worker's machine, in a data directory the
// restore creates and owns. Beside it, `<dataDir>.pitr/` holds what the restore needs while it
// runs (downloads, the WAL fetch program's settings and cache, its log) and `owner.json`, which
// names the restore: files are removed only by the restore that made them.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import execa from 'execa';
import type { TargetConfig, WorkerConfig } from '../../shared/config';
import { childEnv } from '../../shared/childEnv';
import { resolveCluster } from '../../failover/activities/cluster';
import { resolveTarget } from '../../shared/postgres/connection';
import { serverRunning, stopServer, FENCE_STOP } from '../../failover/activities/serverControl';
import { killServerProcesses } from '../../failover/activities/serverProcesses';
import type { RestoreInstance } from '../contract';

export interface InstancePaths {
  dataDir: string;
  /** <dataDir>.pitr: everything of the restore that is not the data directory. */
  workDir: string;
  downloads: string;
  cache: string;
  fetchEnv: string;
  fetchLog: string;
  restoreCommand: string;
  owner: string;
  /** Written once the base backup is in place and verified: a retried fetch skips to here. */
  restored: string;
  serverLog: string;
}

export function instancePaths(instance: RestoreInstance): InstancePaths {
  const dataDir = path.resolve(instance.dataDir);
  const workDir = `${dataDir}.pitr`;
  return {
    dataDir,
    workDir,
    downloads: path.join(workDir, 'downloads'),
    cache: path.join(workDir, 'wal-cache'),
    fetchEnv: path.join(workDir, 'wal-fetch.env'),
    fetchLog: path.join(workDir, 'wal-fetch.jsonl'),
    restoreCommand: path.join(workDir, 'restore-command.sh'),
    owner: path.join(workDir, 'owner.json'),
    restored: path.join(workDir, 'restored.json'),
    // Written by the server's OS user: inside the directory handed to it, not beside the data
    // directory, whose parent may belong to root.
    serverLog: path.join(workDir, 'server.log'),
  };
}

/** The OS user the cluster's servers run as (from the worker's configuration); the instance runs as it too. */
export function serverOsUser(config: WorkerConfig, clusterName: string): string | undefined {
  const cluster = resolveCluster(config, clusterName);
  const nodes = [cluster.primary, ...cluster.standbys].map((name) => resolveTarget(config, name));
  const user = nodes.find((node) => node.server?.osUser)?.server?.osUser;
  if (!user && process.getuid?.() === 0) {
    throw ApplicationFailure.nonRetryable(
      `the worker runs as root but no node of cluster ${cluster.name} names the servers' OS user: set PGOPS_TARGET_<NODE>_OS_USER (the restored instance runs as it)`,
      'NoServerControl',
    );
  }
  return user;
}

/**
 * The instance as a target: the cluster primary's roles and database (a physical copy has the
 * same ones), on this machine at the instance's port, with server control of its data directory.
 */
export function instanceTarget(config: WorkerConfig, clusterName: string, instance: RestoreInstance): TargetConfig {
  const cluster = resolveCluster(config, clusterName);
  const primary = resolveTarget(config, cluster.primary);
  return {
    ...primary,
    name: `${cluster.name}-restored-${instance.port}`,
    host: '127.0.0.1',
    port: instance.port,
    source: `the instance of a point-in-time restore of ${cluster.name} (${instance.dataDir})`,
    server: { dataDir: instancePaths(instance).dataDir, osUser: serverOsUser(config, clusterName) },
    tls: undefined,
    logFile: instancePaths(instance).serverLog,
  };
}

function refuse(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'InstanceRefused');
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function ownerOf(paths: InstancePaths): string | undefined {
  try {
    return (JSON.parse(readFileSync(paths.owner, 'utf8')) as { restoreId: string }).restoreId;
  } catch {
    return undefined;
  }
}

function inside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * Checks that the instance may be created where asked and claims the place: an absolute path
 * under an existing parent, empty or absent, no configured server's data directory (nor inside
 * one, nor holding one), its port free. A retry of the same restore finds its own claim and passes.
 */
export async function claimInstance(config: WorkerConfig, clusterName: string, instance: RestoreInstance, restoreId: string): Promise<void> {
  if (!path.isAbsolute(instance.dataDir) || instance.dataDir.split('/').includes('..')) {
    throw refuse(`instance data directory ${instance.dataDir} must be an absolute path without ".."`);
  }
  if (!Number.isInteger(instance.port) || instance.port < 1024 || instance.port > 65535) throw refuse(`instance port ${instance.port} must be 1024-65535`);
  const paths = instancePaths(instance);
  const parent = path.dirname(paths.dataDir);
  if (!existsSync(parent)) throw refuse(`the parent of the instance data directory, ${parent}, does not exist on this worker's machine`);
  const owner = ownerOf(paths);
  if (owner === restoreId) return;
  if (owner !== undefined) throw refuse(`${paths.dataDir} belongs to another point-in-time restore (${owner}); choose another data directory`);
  const real = realpathSync(parent);
  for (const target of Object.values(config.targets)) {
    const serverDir = target.server?.dataDir;
    if (!serverDir) continue;
    const resolved = existsSync(serverDir) ? realpathSync(serverDir) : serverDir;
    const candidate = path.join(real, path.basename(paths.dataDir));
    if (inside(candidate, resolved) || inside(resolved, candidate)) {
      throw refuse(`${paths.dataDir} is (or holds, or lies inside) the data directory of configured server ${target.name}: a restore never writes there`);
    }
  }
  for (const dir of [paths.dataDir, paths.workDir]) {
    if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)) {
      throw refuse(`${dir} exists and is not empty: a point-in-time restore creates its instance in a new or empty directory`);
    }
  }
  if (await portInUse(instance.port)) throw refuse(`port ${instance.port} on 127.0.0.1 is in use: choose a free port for the instance`);
  await mkdir(paths.workDir, { recursive: true, mode: 0o700 });
  await writeFile(paths.owner, JSON.stringify({ restoreId, cluster: clusterName, claimedAt: new Date().toISOString() }), { mode: 0o600 });
}

/** Gives the data directory and the restore's files to the servers' OS user (PostgreSQL refuses anything else). */
export async function handToServerUser(paths: InstancePaths, osUser: string | undefined, dirs: string[]): Promise<void> {
  if (!osUser || process.getuid?.() !== 0) return;
  await execa('chown', ['-R', `${osUser}:`, ...dirs], { env: childEnv(), extendEnv: false });
  await execa('chmod', ['0700', paths.dataDir, paths.workDir], { env: childEnv(), extendEnv: false });
}

/**
 * Stops the instance (it holds nothing anyone else needs: SIGKILL if it does not stop at once)
 * and deletes its data directory and the restore's files, only when this restore claimed them.
 * Returns what it did.
 */
export async function removeInstance(config: WorkerConfig, clusterName: string, instance: RestoreInstance, restoreId: string): Promise<string> {
  const paths = instancePaths(instance);
  const owner = ownerOf(paths);
  if (owner === undefined) return existsSync(paths.dataDir) ? `left ${paths.dataDir} alone: no claim of this restore on it` : 'nothing to remove';
  if (owner !== restoreId) return `left ${paths.dataDir} alone: it belongs to restore ${owner}`;
  const target = instanceTarget(config, clusterName, instance);
  let stopped = 'not running';
  if (existsSync(path.join(paths.dataDir, 'PG_VERSION'))) {
    stopped = (await serverRunning(config, target)) ? await stopServer(config, target, FENCE_STOP) : 'not running';
  }
  await killServerProcesses(paths.dataDir).catch(() => undefined);
  await rm(paths.dataDir, { recursive: true, force: true });
  await rm(paths.workDir, { recursive: true, force: true });
  return `removed ${paths.dataDir} (${stopped})`;
}
