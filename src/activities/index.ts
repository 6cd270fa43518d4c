// Every activity the worker registers, built from the worker's configuration.
import type { WorkerConfig } from '../config';
import { stackProbeActivities } from './postgres/stackProbes';
import { roundTripActivities } from './storage/roundTripObject';

export function createActivities(config: WorkerConfig) {
  return {
    ...stackProbeActivities(config),
    ...roundTripActivities(config),
  };
}

export type Activities = ReturnType<typeof createActivities>;
