// The doctor's checks, each an activity of its own so one slow or failing source does not hide the rest.
import type { WorkerConfig } from '../../shared/config';
import { archiveHealthActivities } from './archiveHealth';
import { backupHealthActivities, type BackupGroup } from './backupHealth';
import { diskSpaceActivities } from './diskSpace';
import { replicationHealthActivities } from './replicationHealth';
import { serverHealthActivities } from './serverHealth';
import { temporalHealthActivities } from './temporalHealth';

export function doctorActivities(config: WorkerConfig) {
  return {
    ...serverHealthActivities(config),
    ...diskSpaceActivities(config),
    ...replicationHealthActivities(config),
    ...backupHealthActivities(config),
    ...archiveHealthActivities(config),
    ...temporalHealthActivities(config),
    /** What the doctor looks at when not told: every configured target, the task queue, each cluster's backups. */
    async doctorScope(): Promise<DoctorScope> {
      const clustered = new Set(Object.values(config.clusters).flatMap((c) => [c.primary, ...c.standbys]));
      const backups = [
        // A cluster's data is backed up as the cluster ("main:primary") or as one of its nodes.
        ...Object.values(config.clusters).map((c) => ({ subject: `cluster ${c.name}`, catalogs: [c.name, c.primary, ...c.standbys] })),
        ...Object.keys(config.targets)
          .filter((t) => !clustered.has(t) && t !== config.verifyTarget)
          .map((t) => ({ subject: t, catalogs: [t] })),
      ];
      return { targets: Object.keys(config.targets), backups, taskQueues: [config.temporal.taskQueue] };
    },
  };
}

export interface DoctorScope {
  targets: string[];
  backups: BackupGroup[];
  taskQueues: string[];
}
