// The worker's metrics: pgops' own at PGOPS_METRICS_ADDRESS (/metrics), the Temporal SDK's at
// PGOPS_TEMPORAL_METRICS_ADDRESS. See docs/metrics.md.
import type { WorkerConfig } from '../shared/config';
import { connectClient } from '../shared/temporal/connection';
import { createMetricsRegistry } from './registry';
import { startMetricsServer, type MetricsServer } from './server';

export { installTemporalRuntime } from './temporalRuntime';
export { createMetricsRegistry } from './registry';
export { startMetricsServer, formatAddress } from './server';

/** Serves /metrics while the worker runs; undefined when PGOPS_METRICS_ADDRESS=off. */
export async function startWorkerMetrics(config: WorkerConfig): Promise<MetricsServer | undefined> {
  if (!config.metrics.listen) return undefined;
  const temporal = await connectClient(config.temporal);
  try {
    const server = await startMetricsServer(createMetricsRegistry(config, temporal), config.metrics.listen);
    return {
      address: server.address,
      async close() {
        await server.close();
        await temporal.connection.close();
      },
    };
  } catch (err) {
    await temporal.connection.close();
    throw err;
  }
}
