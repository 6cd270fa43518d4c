// The activities of a point-in-time restore and of a restore drill, each with the timeouts and
// retries its kind of work needs.
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';

export function pitrSteps(heartbeatTimeout: string) {
  // Reading the catalog and the archive's listing: S3 outages are waited out.
  const { planRecovery, resolveClusterRole, restorePolicy } = proxyActivities<Activities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  // Downloading a cluster and replaying its WAL take hours for a big one: heartbeats notice a dead worker.
  const { fetchBaseBackup, replayToTarget } = proxyActivities<Activities>({
    startToCloseTimeout: '12 hours',
    heartbeatTimeout,
    // Cleanup must not delete the files while a cancelled step still writes them.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  const { claimRestoreInstance, configureRecovery, inspectRestored, promoteInstance, checkBiggestIndexes } = proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
  // The switch of a replace: the failover's own steps, bounded like there.
  const { fenceOldPrimary, repointClients } = proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 5 },
  });
  const { removeRestoreInstance, recordPitrAudit, recordDrill, notifyWebhook } = proxyActivities<Activities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  return {
    planRecovery,
    resolveClusterRole,
    restorePolicy,
    claimRestoreInstance,
    fetchBaseBackup,
    configureRecovery,
    replayToTarget,
    inspectRestored,
    promoteInstance,
    checkBiggestIndexes,
    fenceOldPrimary,
    repointClients,
    removeRestoreInstance,
    recordPitrAudit,
    recordDrill,
    notifyWebhook,
  };
}
