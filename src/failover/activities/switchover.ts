// Planned switchover: hold clients, stop the primary with a clean shutdown checkpoint, and tell
// the workflow which LSN the candidate must have received. Undone by resumeOldPrimary on abort.
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { SwitchoverStop } from '../contract';
import { heartbeatDuring } from '../../shared/heartbeat';
import { clusterNode, resolveCluster } from './cluster';
import { pgbouncerCommand } from './repoint';
import { controlData, serverControl, startServer, stopServer } from './serverControl';

export function switchoverActivities(config: WorkerConfig) {
  async function stopPrimaryForSwitchover(input: { cluster: string; primary: string }): Promise<SwitchoverStop> {
    const cluster = resolveCluster(config, input.cluster);
    const primary = clusterNode(config, cluster, input.primary);
    serverControl(primary); // a switchover needs the clean stop only local server control gives
    let pausedEndpoint = false;
    if (cluster.pgbouncerIni && !cluster.repointCommand) {
      // PAUSE waits for running transactions to end and holds new ones: clients wait, not fail.
      await pgbouncerCommand(cluster, 'PAUSE', 20_000);
      pausedEndpoint = true;
    }
    await heartbeatDuring(() => `stopping ${input.primary}`, () => stopServer(config, primary));
    const control = await controlData(config, primary);
    const state = control['Database cluster state'];
    if (state !== 'shut down') {
      throw ApplicationFailure.nonRetryable(
        `${input.primary} did not shut down cleanly (cluster state "${state}"): without a shutdown checkpoint the switchover cannot prove zero loss`,
        'UncleanShutdown',
      );
    }
    return { checkpointLsn: control['Latest checkpoint location'], pausedEndpoint };
  }

  /** Abort path: start the old primary again and let held clients through to it. */
  async function resumeOldPrimary(input: { cluster: string; primary: string }): Promise<string> {
    const cluster = resolveCluster(config, input.cluster);
    const primary = clusterNode(config, cluster, input.primary);
    await heartbeatDuring(() => `starting ${input.primary}`, () => startServer(config, primary));
    if (cluster.pgbouncerIni && !cluster.repointCommand) await pgbouncerCommand(cluster, 'RESUME');
    return `restarted ${input.primary}${cluster.pgbouncerIni ? ' and resumed PgBouncer' : ''}`;
  }

  return { stopPrimaryForSwitchover, resumeOldPrimary };
}
