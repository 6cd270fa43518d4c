// The point-in-time restore and drill activities, built from the worker's configuration. They
// act on the instance's files on this machine: run them on workers of the machine that holds the
// instance's data directory (docs/pitr.md).
import type { WorkerConfig } from '../../shared/config';
import { appendAuditRecord } from '../../shared/storage/auditLog';
import type { PitrAudit, RestoreInstance } from '../contract';
import { configureRecoveryActivities } from './configureRecovery';
import { drillActivities } from './drillChecks';
import { fetchBaseBackupActivities } from './fetchBaseBackup';
import { inspectActivities } from './inspectRestored';
import { claimInstance, removeInstance } from './instance';
import { planRecoveryActivities } from './planRecovery';
import { promoteActivities } from './promoteInstance';
import { replayActivities } from './replayToTarget';

export function pitrActivities(config: WorkerConfig) {
  return {
    ...planRecoveryActivities(config),
    ...fetchBaseBackupActivities(config),
    ...configureRecoveryActivities(config),
    ...replayActivities(config),
    ...inspectActivities(config),
    ...promoteActivities(config),
    ...drillActivities(config),
    claimRestoreInstance: (input: { cluster: string; instance: RestoreInstance; restoreId: string }): Promise<void> =>
      claimInstance(config, input.cluster, input.instance, input.restoreId),
    removeRestoreInstance: (input: { cluster: string; instance: RestoreInstance; restoreId: string }): Promise<string> =>
      removeInstance(config, input.cluster, input.instance, input.restoreId),
    /** Appends the restore's record to the audit trail (once, however often retried). */
    recordPitrAudit: (audit: PitrAudit): Promise<string> => appendAuditRecord(config, 'pitr', `${audit.workflowId}/${audit.runId}`, audit, audit.finishedAt),
  };
}
