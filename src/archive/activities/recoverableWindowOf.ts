// For the chain audit: whether the archive's head can still be reached from a base backup of the
// audited root, whatever holes lie before it. The audit has read the chain; this reads the base
// backup records and asks the one window computation (../recoveryWindow.ts).
import type { WorkerConfig } from '../../shared/config';
import { createS3Client } from '../../shared/storage/s3Client';
import { resolveCluster } from '../../failover/activities/cluster';
import { listBaseBackups } from '../catalog';
import { recoverableWindow, type RecoverableWindow, type TimelineSwitch, type WalChain } from '../recoveryWindow';
import { asArchiveFailure } from './archiveStore';

export interface RecoverableWindowOfInput {
  cluster: string;
  /** The audited root, <prefix>/physical/<cluster>/<system identifier>. */
  root: string;
  chain: WalChain;
  switches: TimelineSwitch[];
}

export function recoverableWindowActivities(config: WorkerConfig) {
  async function recoverableWindowOf(input: RecoverableWindowOfInput): Promise<RecoverableWindow> {
    resolveCluster(config, input.cluster);
    const s3 = createS3Client(config.s3);
    try {
      const backups = (await listBaseBackups(s3, config.s3, config.encryption, input.cluster, input.root)).map((b) => b.record);
      return recoverableWindow(backups, input.chain, input.switches);
    } catch (err) {
      throw asArchiveFailure(config, err);
    } finally {
      s3.destroy();
    }
  }
  return { recoverableWindowOf };
}
