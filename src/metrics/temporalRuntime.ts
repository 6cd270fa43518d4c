// The Temporal SDK's own worker metrics (task slots, poll latencies, sticky cache, activity and
// workflow task outcomes), exported the SDK's way: its Rust core serves them in Prometheus format.
// Runtime.install must run before the first connection or worker, once per process.
import { Runtime } from '@temporalio/worker';
import { ConfigError, type MetricsConfig } from '../shared/config';
import { formatAddress } from './server';

export function installTemporalRuntime(metrics: MetricsConfig): void {
  if (!metrics.temporalListen) return;
  const address = formatAddress(metrics.temporalListen);
  try {
    install(address);
  } catch (err) {
    // The core's own words, e.g. "Failed to start prometheus metrics exporter: Address already in use".
    const reason = (err as Error).message.split('\n')[0];
    throw new ConfigError(`PGOPS_TEMPORAL_METRICS_ADDRESS=${address}: cannot listen there (${reason}); choose another host:port, or off`);
  }
}

function install(bindAddress: string): void {
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: {
          bindAddress,
          // Prometheus' conventions, as pgops' own metrics follow them: counters end in _total,
          // durations are in seconds and say so.
          countersTotalSuffix: true,
          unitSuffix: true,
          useSecondsForDurations: true,
        },
      },
    },
  });
}
