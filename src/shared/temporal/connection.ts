// One way to reach Temporal, for the worker and for clients alike.
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { TemporalConfig } from '../config';

function tlsOptions(config: TemporalConfig) {
  if (!config.tls) return undefined;
  const { serverRootCaPath, clientCertPath, clientKeyPath, serverName } = config.tls;
  return {
    serverNameOverride: serverName,
    serverRootCACertificate: serverRootCaPath ? readFileSync(serverRootCaPath) : undefined,
    clientCertPair:
      clientCertPath && clientKeyPath ? { crt: readFileSync(clientCertPath), key: readFileSync(clientKeyPath) } : undefined,
  };
}

/** Thrown when Temporal cannot be reached, with the address and the variable to check. */
export class TemporalUnreachable extends Error {
  override name = 'TemporalUnreachable';
}

function unreachable(config: TemporalConfig, err: unknown): TemporalUnreachable {
  const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new TemporalUnreachable(
    `cannot reach Temporal at ${config.address} (PGOPS_TEMPORAL_ADDRESS, namespace ${config.namespace}): ${reason}`,
  );
}

export async function connectClient(config: TemporalConfig): Promise<Client> {
  try {
    const connection = await Connection.connect({
      address: config.address,
      tls: tlsOptions(config),
      apiKey: config.apiKey,
      connectTimeout: '5s',
    });
    return new Client({ connection, namespace: config.namespace });
  } catch (err) {
    throw unreachable(config, err);
  }
}

export async function connectWorkerConnection(config: TemporalConfig): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect({ address: config.address, tls: tlsOptions(config), apiKey: config.apiKey });
  } catch (err) {
    throw unreachable(config, err);
  }
}
