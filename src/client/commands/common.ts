// What every CLI command shares: one-line errors, and a Temporal client that is always closed.
import type { Client } from '@temporalio/client';
import { loadTemporalConfig, type TemporalConfig } from '../../config';
import { connectClient } from '../../temporal/connection';

/** An error the CLI prints as one line, without a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export async function withTemporal<T>(work: (client: Client, config: TemporalConfig) => Promise<T>): Promise<T> {
  const config = loadTemporalConfig();
  const client = await connectClient(config);
  try {
    return await work(client, config);
  } finally {
    await client.connection.close();
  }
}

export function megabytes(bytes: number | undefined): string {
  return bytes === undefined ? '-' : `${(bytes / 1e6).toFixed(1)} MB`;
}
