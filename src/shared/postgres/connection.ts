// One way to open a connection to a named target, and to explain why it failed.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { ApplicationFailure } from '@temporalio/common';
import { Client, Pool, type ClientBase } from 'pg';
import type { TargetConfig, WorkerConfig } from '../config';

const CONNECT_TIMEOUT_MS = 5_000;

export function resolveTarget(config: Pick<WorkerConfig, 'targets'>, name: string): TargetConfig {
  const target = config.targets[name];
  if (!target) {
    const known = Object.keys(config.targets).join(', ') || 'none';
    throw ApplicationFailure.nonRetryable(
      `unknown target "${name}" (configured in PGOPS_TARGETS: ${known})`,
      'UnknownTarget',
    );
  }
  return target;
}

/** Turns a connection error into a failure that names the target and, when retrying cannot help, stops retries. */
export function targetFailure(target: TargetConfig, err: unknown): Error {
  const e = err as { code?: string; message?: string };
  const where = `${target.host}:${target.port}`;
  const tlsProblem = tlsFailure(target, where, e);
  if (tlsProblem) return tlsProblem;
  switch (e.code) {
    case '28P01':
    case '28000':
      return ApplicationFailure.nonRetryable(
        `target ${target.name}: authentication failed for user "${target.user}" at ${where}; check ${target.source}`,
        'PgAuthFailed',
      );
    case '3D000':
      return ApplicationFailure.nonRetryable(
        `target ${target.name}: database "${target.database}" does not exist at ${where}; check ${target.source}`,
        'PgDatabaseMissing',
      );
    case 'ECONNREFUSED':
    case 'ETIMEDOUT':
    case 'ENOTFOUND':
    case 'ECONNRESET':
    case '57P01': // admin shutdown
    case '57P03': // cannot connect now (starting up)
      return ApplicationFailure.retryable(
        `target ${target.name}: cannot connect to ${where} (${e.code}: ${e.message ?? 'no detail'})`,
        'PgUnreachable',
      );
    default:
      if (e.message?.includes('timeout')) {
        return ApplicationFailure.retryable(`target ${target.name}: connection to ${where} timed out`, 'PgUnreachable');
      }
      return err instanceof Error ? err : new Error(String(err));
  }
}

/** TLS refusals from either side, which retrying cannot cure: they name what to change in the target's URL. */
function tlsFailure(target: TargetConfig, where: string, e: { code?: string; message?: string }): Error | undefined {
  const message = e.message ?? '';
  if (/no pg_hba\.conf entry .*no encryption/.test(message)) {
    return ApplicationFailure.nonRetryable(
      `target ${target.name}: ${where} accepts only TLS connections; add ?sslmode=verify-full&sslrootcert=<CA file> to ${target.source}`,
      'PgTlsRequired',
    );
  }
  if (/does not support SSL/i.test(message)) {
    return ApplicationFailure.nonRetryable(`target ${target.name}: ${where} does not offer TLS but ${target.source} asks for sslmode=${target.tls?.mode}`, 'PgTlsUnavailable');
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)/.test(e.code ?? '')) {
    return ApplicationFailure.nonRetryable(
      `target ${target.name}: the certificate of ${where} does not verify (${e.code}: ${message}); check sslrootcert and the host name in ${target.source}`,
      'PgTlsUnverified',
    );
  }
  return undefined;
}

function readTlsFile(target: TargetConfig, parameter: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`target ${target.name}: cannot read ${parameter}=${file} (from ${target.source}): ${(err as Error).message}`, 'PgTlsFileUnreadable');
  }
}

/** libpq's sslmode for the pg client; `require` with a root certificate verifies the chain, as libpq does. */
export function tlsOptions(target: TargetConfig): false | ConnectionOptions {
  const tls = target.tls;
  if (!tls || tls.mode === 'disable') return false;
  const rootCert = tls.rootCert && tls.rootCert !== 'system' ? { ca: readTlsFile(target, 'sslrootcert', tls.rootCert) } : {};
  const clientCert = tls.cert && tls.key ? { cert: readTlsFile(target, 'sslcert', tls.cert), key: readTlsFile(target, 'sslkey', tls.key) } : {};
  if (tls.mode === 'require' && !tls.rootCert) return { rejectUnauthorized: false, ...clientCert };
  // pg sets no server name for an IP address; `host` makes Node check the certificate against it.
  const identity = tls.mode === 'verify-full' ? { host: target.host } : { checkServerIdentity: () => undefined };
  return { rejectUnauthorized: true, ...rootCert, ...clientCert, ...identity };
}

function clientOptions(target: TargetConfig, timeoutMs?: number) {
  return {
    ssl: tlsOptions(target),
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    connectionTimeoutMillis: timeoutMs ?? CONNECT_TIMEOUT_MS,
    ...(timeoutMs ? { query_timeout: timeoutMs } : {}),
    application_name: 'pgops',
  };
}

/** `timeoutMs` bounds the connection and each query: a failover's probes must not hang on a frozen server. */
export async function connectTarget(target: TargetConfig, options: { timeoutMs?: number } = {}): Promise<Client> {
  const client = new Client(clientOptions(target, options.timeoutMs));
  // Errors after connect (server killed mid-query) surface through the query; don't crash the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw targetFailure(target, err);
  }
  return client;
}

/** Runs `work` with a fresh connection to the target and always closes it. */
export async function withTarget<T>(
  target: TargetConfig,
  work: (client: Client) => Promise<T>,
  options: { timeoutMs?: number } = {},
): Promise<T> {
  const client = await connectTarget(target, options);
  try {
    return await work(client);
  } catch (err) {
    throw targetFailure(target, err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const pools = new Map<string, Pool>();
const POOL_IDLE_MS = 10_000;

/**
 * Like withTarget, on a connection kept open between calls, for activities that run many times a
 * second against one target (embedBatch): there a new connection (a forked backend, SCRAM, cold
 * catalog caches) costs more CPU than the work. Only for work that leaves no session state behind.
 * A connection whose work failed is closed, not reused; idle ones close after 10 s.
 */
export async function withPooledTarget<T>(target: TargetConfig, work: (client: ClientBase) => Promise<T>): Promise<T> {
  const key = JSON.stringify([target.name, target.host, target.port, target.database, target.user]);
  let pool = pools.get(key);
  if (!pool) {
    pool = new Pool({ ...clientOptions(target), max: 8, idleTimeoutMillis: POOL_IDLE_MS, allowExitOnIdle: true });
    // A connection dropped by the server (restart, failover) fails its query or, idle, leaves the
    // pool; either way its 'error' event must not crash the worker.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    pools.set(key, pool);
  }
  let client;
  try {
    client = await pool.connect();
  } catch (err) {
    throw targetFailure(target, err);
  }
  let failed = false;
  try {
    return await work(client);
  } catch (err) {
    failed = true;
    throw targetFailure(target, err);
  } finally {
    client.release(failed);
  }
}

/** Closes the pooled connections (worker shutdown, tests). */
export async function closePooledTargets(): Promise<void> {
  const open = [...pools.values()];
  pools.clear();
  await Promise.all(open.map((pool) => pool.end().catch(() => undefined)));
}

/** Runs `statements` in one transaction: all take effect, or none (and the error is rethrown). */
export async function inOneTransaction(client: Client, statements: string[]): Promise<void> {
  await client.query('BEGIN');
  try {
    for (const statement of statements) await client.query(statement);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
