// Every activity the worker registers, built from the worker's configuration.
import type { WorkerConfig } from '../config';
import { embeddingActivities } from './embeddings';
import { failoverActivities } from './failover';
import { webhookActivities } from './notify/webhook';
import { restoreActivities } from './postgres/restoreDatabase';
import { dumpActivities } from './postgres/dumpDatabase';
import { stackProbeActivities } from './postgres/stackProbes';
import { verifyActivities } from './postgres/verifyByTestRestore';
import { auditActivities } from './storage/auditLog';
import { fetchActivities } from './storage/fetchBackup';
import { pruneActivities } from './storage/pruneBackups';
import { roundTripActivities } from './storage/roundTripObject';
import { uploadActivities } from './storage/uploadBackup';

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
  };
}

export type Activities = ReturnType<typeof createActivities>;
