// The embedding backfill's activities: prepare, plan, embed a batch, build the index.
import type { WorkerConfig } from '../../shared/config';
import { buildIndexActivities } from './buildEmbeddingIndex';
import { embedBatchActivities } from './embedBatch';
import { planEmbeddingActivities } from './planEmbeddingBatches';
import { prepareEmbeddingActivities } from './prepareEmbeddingBackfill';

export function embeddingActivities(config: WorkerConfig) {
  return {
    ...prepareEmbeddingActivities(config),
    ...planEmbeddingActivities(config),
    ...embedBatchActivities(config),
    ...buildIndexActivities(config),
  };
}
