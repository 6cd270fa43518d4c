// Step 6: send the app to the new primary (repoint hook, or rewrite PgBouncer's target and
// RELOAD), then prove it: a write through the app-facing endpoint lands on the new primary.
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, TargetConfig, WorkerConfig } from '../../shared/config';
import type { NodeAddress, RepointResult } from '../contract';
import { resolveTarget } from '../../shared/postgres/connection';
import { resolveCluster } from './cluster';
import { hookValues, runHook, writeFailoverMarker } from './fenceAndPromote';
import { readRegularFile, replaceFileAtomically } from './ownedFiles';
import { boundedQuery } from './walPositions';

const VERIFY_WITHIN_MS = 30_000;

type Address = { host: string; port: number };

/** PgBouncer's own default when an entry names no port. */
const PGBOUNCER_DEFAULT_PORT = 5432;

/** Whether a [databases] entry's connection string leads to `server` (as written: no name resolution). */
function entryPointsAt(entry: string, server: Address): boolean {
  const host = /\bhost=(\S+)/.exec(entry)?.[1];
  const port = Number(/\bport=(\d+)/.exec(entry)?.[1] ?? PGBOUNCER_DEFAULT_PORT);
  return host === server.host && port === server.port;
}

/**
 * Points the [databases] entries that lead to the old primary at the new one; entries for other
 * servers (another cluster behind the same PgBouncer) and the rest of the file are kept.
 */
export function repointPgbouncerIni(ini: string, from: Address, to: Address): string {
  let section = '';
  return ini
    .split('\n')
    .map((line) => {
      const header = /^\s*\[([^\]]+)\]/.exec(line);
      if (header) section = header[1].trim().toLowerCase();
      if (section !== 'databases' || header || /^\s*[;#]/.test(line) || !line.includes('=')) return line;
      const [name, ...value] = line.split('=');
      const entry = value.join('=');
      if (!entryPointsAt(entry, from)) return line;
      const repointed = /\bport=\d+/.test(entry) ? entry.replace(/\bport=\d+/, `port=${to.port}`) : `${entry} port=${to.port}`;
      return `${name}=${repointed.replace(/\bhost=\S+/, `host=${to.host}`)}`;
    })
    .join('\n');
}

/** PgBouncer's admin console: the endpoint's own address and credentials, database "pgbouncer". */
export function pgbouncerAdmin(cluster: ClusterConfig): TargetConfig {
  if (!cluster.endpoint) {
    throw ApplicationFailure.nonRetryable(
      `cluster ${cluster.name} names a PgBouncer ini but no endpoint: set PGOPS_CLUSTER_${cluster.name.toUpperCase()}_ENDPOINT_URL`,
      'EndpointMissing',
    );
  }
  return { ...cluster.endpoint, database: 'pgbouncer', name: `${cluster.name} PgBouncer admin console` };
}

/** Runs an admin command; "not paused" style refusals count as done (commands are idempotent in intent). */
export async function pgbouncerCommand(cluster: ClusterConfig, command: 'RELOAD' | 'PAUSE' | 'RESUME', timeoutMs = 10_000): Promise<void> {
  try {
    await boundedQuery(pgbouncerAdmin(cluster), timeoutMs, (client) => client.query(command));
  } catch (err) {
    const message = (err as Error).message;
    if (/already|not paused/i.test(message)) return;
    throw ApplicationFailure.retryable(`PgBouncer ${command} for cluster ${cluster.name} failed: ${message}`, 'PgBouncerCommandFailed');
  }
}

/** The ini's directory belongs to PgBouncer's OS user: read and replace it without following links. */
function rewriteIni(path: string, from: Address, to: Address): boolean {
  const before = readRegularFile(path);
  const after = repointPgbouncerIni(before.text, from, to);
  if (after === before.text) return false;
  replaceFileAtomically(path, after, before.owner, before.mode);
  return true;
}

export function repointActivities(config: WorkerConfig) {
  /** `newPrimaryAddress`: a new primary that is no configured node (a restored instance), reached with the old primary's credentials. */
  async function repointClients(input: { cluster: string; oldPrimary: string; newPrimary: string; workflowId: string; newPrimaryAddress?: NodeAddress }): Promise<RepointResult> {
    const cluster = resolveCluster(config, input.cluster);
    const oldPrimary = resolveTarget(config, input.oldPrimary);
    const newPrimary: TargetConfig = input.newPrimaryAddress
      ? { ...oldPrimary, ...input.newPrimaryAddress, server: undefined, source: `${input.newPrimaryAddress.name} (not a configured node)` }
      : resolveTarget(config, input.newPrimary);
    let method: RepointResult['method'] = 'none';
    let detail = 'no repoint hook or PgBouncer configured: clients must find the new primary themselves (e.g. libpq target_session_attrs=read-write)';
    if (cluster.repointCommand) {
      method = 'command';
      const hook = await runHook('repoint', cluster.repointCommand, hookValues(config, cluster, input.oldPrimary, input.newPrimary, input.newPrimaryAddress));
      if (!hook.ok) throw ApplicationFailure.retryable(hook.line, 'RepointHookFailed');
      detail = hook.line;
    } else if (cluster.pgbouncerIni) {
      method = 'pgbouncer';
      const changed = rewriteIni(cluster.pgbouncerIni, oldPrimary, newPrimary);
      await pgbouncerCommand(cluster, 'RELOAD');
      // A switchover paused the pooler so clients wait instead of failing; let them through now.
      await pgbouncerCommand(cluster, 'RESUME');
      detail = `${changed ? 'rewrote' : 'kept'} ${cluster.pgbouncerIni}: entries for ${oldPrimary.host}:${oldPrimary.port} -> ${newPrimary.host}:${newPrimary.port}, RELOAD + RESUME`;
    }
    if (!cluster.endpoint) return { method, detail, verifiedWrite: false };
    const endpoint = cluster.endpoint;
    const note = `write through endpoint ${endpoint.host}:${endpoint.port}`;
    const started = Date.now();
    let lastError = '';
    while (Date.now() - started < VERIFY_WITHIN_MS) {
      Context.current().heartbeat();
      try {
        const port = await boundedQuery(endpoint, 3_000, async (client) => {
          await writeFailoverMarker(client, input.workflowId, note);
          const { rows } = await client.query<{ port: number }>('SELECT inet_server_port() AS port');
          return rows[0].port;
        });
        const landed = await boundedQuery(newPrimary, 3_000, async (client) => {
          const { rowCount } = await client.query('SELECT 1 FROM pgops.failover_log WHERE workflow_id = $1 AND note = $2', [input.workflowId, note]);
          return rowCount === 1;
        });
        if (landed) return { method, detail, endpointServerPort: port, verifiedWrite: true };
        lastError = `the write through the endpoint went to a server on port ${port}, not to ${input.newPrimary}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(250);
    }
    throw ApplicationFailure.retryable(
      `a write through endpoint ${endpoint.host}:${endpoint.port} did not land on ${input.newPrimary} within ${VERIFY_WITHIN_MS / 1000} s: ${lastError}`,
      'EndpointNotRepointed',
    );
  }

  return { repointClients };
}
