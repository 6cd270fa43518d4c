// The Temporal SDK's own worker metrics (task slots, poll latencies, sticky cache, activity and
// workflow task outcomes), exported the SDK's way: its Rust core serves them in Prometheus format.
// Runtime.install must run before the first connection or worker, once per process.
import { Runtime } from '@temporalio/worker';
import type { MetricsConfig } from '../shared/config';
import { formatAddress } from './server';

export function installTemporalRuntime(metrics: MetricsConfig): void {
  if (!metrics.temporalListen) return;
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: {
          bindAddress: formatAddress(metrics.temporalListen),
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
