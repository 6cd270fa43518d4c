// One way to open a connection to a named target, and to explain why it failed.
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import type { TargetConfig, WorkerConfig } from '../../config';

const CONNECT_TIMEOUT_MS = 5_000;

export function resolveTarget(config: WorkerConfig, name: string): TargetConfig {
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

/** `timeoutMs` bounds the connection and each query: a failover's probes must not hang on a frozen server. */
export async function connectTarget(target: TargetConfig, options: { timeoutMs?: number } = {}): Promise<Client> {
  const client = new Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    connectionTimeoutMillis: options.timeoutMs ?? CONNECT_TIMEOUT_MS,
    ...(options.timeoutMs ? { query_timeout: options.timeoutMs } : {}),
    application_name: 'pgops',
  });
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
