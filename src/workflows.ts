// Every workflow the worker registers.
export { stackCheck } from './check/workflows/stackCheck';
export { nightlyBackup } from './backup/workflows/nightlyBackup';
export { guardedRestore } from './restore/workflows/guardedRestore';
export { embeddingBackfill } from './embeddings/workflows/embeddingBackfill';
export { failoverPromotion } from './failover/workflows/failoverPromotion';
export { rejoinAsStandby } from './failover/workflows/rejoinAsStandby';
export { failoverWatcher } from './failover/workflows/failoverWatcher';
