// The failover and rejoin activities, and the audit record of a failover.
import type { WorkerConfig } from '../../shared/config';
import type { FailoverResult } from '../contract';
import { appendAuditRecord } from '../../shared/storage/auditLog';
import { confirmAndChooseActivities } from './confirmAndChoose';
import { fenceAndPromoteActivities } from './fenceAndPromote';
import { rejoinActivities } from './rejoin';
import { repointActivities } from './repoint';
import { switchoverActivities } from './switchover';
import { topologyActivities } from './topology';
import { watchActivities } from './watchPrimary';

export function failoverActivities(config: WorkerConfig) {
  /** Appends the failover's record to the audit trail in S3 (once, however often retried). */
  async function recordFailoverAudit(result: FailoverResult): Promise<string> {
    // workflowId alone would make a later failover run under the same id look already recorded.
    const id = result.runId ? `${result.workflowId}/${result.runId}` : result.workflowId;
    return appendAuditRecord(config, 'failovers', id, result, result.finishedAt);
  }
  return {
    ...topologyActivities(config),
    ...confirmAndChooseActivities(config),
    ...fenceAndPromoteActivities(config),
    ...switchoverActivities(config),
    ...repointActivities(config),
    ...rejoinActivities(config),
    ...watchActivities(config),
    recordFailoverAudit,
  };
}
