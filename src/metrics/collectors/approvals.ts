// Workflows waiting for an operator: guarded restores at their approval gate, failovers at any of
// their gates (approval, forced promotion, fencing confirmation). Read from the runs' status
// queries at scrape time.
import type { Client } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { restoreStatus } from '../../client/restores';
import { failoverStatus } from '../../client/failovers';
import { GUARDED_RESTORE_WORKFLOW } from '../../restore/contract';
import { FAILOVER_PROMOTION_WORKFLOW } from '../../failover/contract';
import { PGOPS_TARGET } from '../../shared/temporal/searchAttributes';
import { epochSeconds, sampledGauge } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';
import { answerWithin, runningWorkflows } from './openWorkflows';

export interface WaitingWorkflow {
  workflow: string;
  workflowId: string;
  /** The restore's target, or the failover's cluster. */
  target: string;
  waitingFor: string;
  since: number;
}

export async function waitingForApproval(temporal: Client, taskQueue: string): Promise<WaitingWorkflow[]> {
  const [restores, failovers] = await Promise.all([
    runningWorkflows(temporal, taskQueue, GUARDED_RESTORE_WORKFLOW),
    runningWorkflows(temporal, taskQueue, FAILOVER_PROMOTION_WORKFLOW),
  ]);
  const waiting = await Promise.all([
    ...restores.map(async (run): Promise<WaitingWorkflow | undefined> => {
      const status = await answerWithin(() => restoreStatus(temporal, run.workflowId));
      if (status?.stage !== 'awaiting-approval') return undefined;
      return {
        workflow: GUARDED_RESTORE_WORKFLOW,
        workflowId: run.workflowId,
        target: run.typedSearchAttributes.get(PGOPS_TARGET) ?? '',
        waitingFor: 'approval',
        // A run older than the field: its start, an upper bound of the wait.
        since: epochSeconds(status.awaitingApprovalSince) ?? run.startTime.getTime() / 1000,
      };
    }),
    ...failovers.map(async (run): Promise<WaitingWorkflow | undefined> => {
      const status = await answerWithin(() => failoverStatus(temporal.workflow.getHandle(run.workflowId)));
      if (!status?.waitingFor) return undefined;
      return {
        workflow: FAILOVER_PROMOTION_WORKFLOW,
        workflowId: run.workflowId,
        target: status.cluster,
        waitingFor: status.waitingFor,
        since: epochSeconds(status.waitingSince) ?? run.startTime.getTime() / 1000,
      };
    }),
  ]);
  return waiting.filter((w): w is WaitingWorkflow => w !== undefined);
}

export function registerApprovalMetrics(registry: Registry, temporal: Client, taskQueue: string, options: ScrapeSourceOptions): ScrapeSource<unknown>[] {
  const source = new ScrapeSource('temporal:approvals', () => waitingForApproval(temporal, taskQueue), options);
  sampledGauge(registry, source, {
    name: 'pgops_approval_waiting_since_timestamp_seconds',
    help: 'When each running workflow began waiting for an operator (Unix time); time() minus it is how long it has waited.',
    labelNames: ['workflow', 'workflow_id', 'target', 'waiting_for'],
    *samples(waiting) {
      for (const w of waiting) yield [{ workflow: w.workflow, workflow_id: w.workflowId, target: w.target, waiting_for: w.waitingFor }, w.since];
    },
  });
  sampledGauge(registry, source, {
    name: 'pgops_approvals_waiting',
    help: 'Running workflows waiting for an operator, by workflow type.',
    labelNames: ['workflow'],
    *samples(waiting) {
      for (const workflow of [GUARDED_RESTORE_WORKFLOW, FAILOVER_PROMOTION_WORKFLOW]) yield [{ workflow }, waiting.filter((w) => w.workflow === workflow).length];
    },
  });
  return [source];
}
