// Every workflow the worker registers.
export { stackCheck } from './stackCheck';
export { nightlyBackup } from './nightlyBackup';
export { guardedRestore } from './guardedRestore';
export { embeddingBackfill } from './embeddingBackfill';
export { failoverPromotion } from './failoverPromotion';
export { rejoinAsStandby } from './rejoinAsStandby';
export { failoverWatcher } from './failoverWatcher';
