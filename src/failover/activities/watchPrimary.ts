// The watcher's eyes: probe the cluster's current primary every interval and report the first
// failed probe. The failover's own confirmation window decides whether it is a failure.
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledFailure, Context } from '@temporalio/activity';
import type { WorkerConfig } from '../../shared/config';
import type { WatchVerdict } from '../contract';
import { resolveTarget } from '../../shared/postgres/connection';
import { resolveCluster } from './cluster';
import { workerShutdownSignal } from '../../shared/temporal/workerShutdown';
import { readTopology } from './topology';
import { probePrimary } from './walPositions';

/** The primary can move without a failover of ours (an operator's switchover): look again this often. */
const TOPOLOGY_REFRESH_MS = 30_000;

export function watchActivities(config: WorkerConfig) {
  async function watchPrimary(input: { cluster: string; forMs: number }): Promise<WatchVerdict> {
    const cluster = resolveCluster(config, input.cluster);
    const { probeIntervalMs, probeTimeoutMs } = cluster.policy;
    const context = Context.current();
    const until = Date.now() + input.forMs;
    let probes = 0;
    let primary = (await readTopology(config, cluster.name)).primary;
    let refreshedAt = Date.now();
    // A stopping worker ends the watch round as if its time were up; the next round goes to a worker that polls.
    while (Date.now() < until && !workerShutdownSignal.aborted) {
      if (Date.now() - refreshedAt > TOPOLOGY_REFRESH_MS) {
        primary = (await readTopology(config, cluster.name)).primary;
        refreshedAt = Date.now();
      }
      const startedMs = Date.now();
      const probe = await probePrimary(resolveTarget(config, primary), probeTimeoutMs);
      probes += 1;
      if (!probe.ok) return { outcome: 'failing', primary, probes, failingSinceMs: startedMs, error: probe.error };
      context.heartbeat({ primary, probes });
      if (context.cancellationSignal.aborted) throw new CancelledFailure('watch paused');
      await sleep(Math.max(0, startedMs + probeIntervalMs - Date.now()), undefined, { signal: AbortSignal.any([context.cancellationSignal, workerShutdownSignal]) }).catch(() => undefined);
    }
    return { outcome: 'healthy', primary, probes };
  }
  return { watchPrimary };
}
