// Every activity the worker registers, built from the worker's configuration.
import type { WorkerConfig } from './shared/config';
import { doctorActivities } from './doctor/activities';
import { embeddingActivities } from './embeddings/activities';
import { failoverActivities } from './failover/activities';
import { webhookActivities } from './shared/notify/webhook';
import { restoreActivities } from './restore/activities/restoreDatabase';
import { dumpActivities } from './backup/activities/dumpDatabase';
import { stackProbeActivities } from './check/activities/stackProbes';
import { verifyActivities } from './backup/activities/verifyByTestRestore';
import { auditActivities } from './shared/storage/auditLog';
import { fetchActivities } from './restore/activities/fetchBackup';
import { pruneActivities } from './backup/activities/pruneBackups';
import { roundTripActivities } from './check/activities/roundTripObject';
import { uploadActivities } from './backup/activities/uploadBackup';
import { archiveActivities, baseBackupActivities } from './archive/activities';
import { pitrActivities } from './pitr/activities';

export function createActivities(config: WorkerConfig) {
  return {
    ...stackProbeActivities(config),
    ...roundTripActivities(config),
    ...dumpActivities(config),
    ...verifyActivities(config),
    ...uploadActivities(config),
    ...pruneActivities(config),
    ...webhookActivities(config),
    ...fetchActivities(config),
    ...restoreActivities(config),
    ...auditActivities(config),
    ...embeddingActivities(config),
    ...failoverActivities(config),
    ...doctorActivities(config),
    ...baseBackupActivities(config),
    ...archiveActivities(config),
    ...pitrActivities(config),
  };
}

export type Activities = ReturnType<typeof createActivities>;
