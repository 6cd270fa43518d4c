// The WAL archive's activities.
import type { WorkerConfig } from '../../shared/config';
import type { ArchiveGap } from '../contract';
import { asArchiveFailure, WalArchiveStore } from './archiveStore';
import { prepareArchiveActivities } from './prepareArchive';
import { runWalArchiverActivities } from './runWalArchiver';
import { walChainActivities } from './walChain';

export function archiveActivities(config: WorkerConfig) {
  /** Writes the gap's record under <root>/gaps/ (kept for the audit); returns its key. */
  async function recordArchiveGap(input: { root: string; node: string; gap: ArchiveGap }): Promise<string> {
    const store = new WalArchiveStore(config, input.root, input.node, config.stagingDir);
    try {
      return await store.recordGap(input.gap);
    } catch (err) {
      throw asArchiveFailure(config, err);
    } finally {
      store.destroy();
    }
  }
  return {
    ...prepareArchiveActivities(config),
    ...runWalArchiverActivities(config),
    ...walChainActivities(config),
    recordArchiveGap,
  };
}
