// The Temporal side of the checklist: which workers poll pgops' task queues, and which runs wait
// for an operator's approval (and for how long).
import type { Client } from '@temporalio/client';
import type { WorkerConfig } from '../../shared/config';
import { connectClient } from '../../shared/temporal/connection';
import { describePollers } from '../../shared/temporal/pollers';
import { GUARDED_RESTORE_WORKFLOW, restoreStatusQuery } from '../../restore/contract';
import { FAILOVER_PROMOTION_WORKFLOW, failoverStatusQuery } from '../../failover/contract';
import type { DoctorLine } from '../contract';
import { duration } from './serverHealth';

const APPROVAL_WARN_MS = 3_600_000;

export function temporalHealthActivities(config: WorkerConfig) {
  async function checkWorkers(input: { taskQueues: string[] }): Promise<DoctorLine[]> {
    const client = await connectClient(config.temporal);
    try {
      const pollers = await Promise.all(input.taskQueues.map((queue) => pollerLine(client, queue)));
      return [...pollers, ...(await awaitingApproval(client))];
    } finally {
      await client.connection.close();
    }
  }
  return { checkWorkers };
}

async function pollerLine(client: Client, taskQueue: string): Promise<DoctorLine> {
  const { workflowPollers, activityPollers } = await describePollers(client, taskQueue);
  const workers = [...new Set([...workflowPollers, ...activityPollers])];
  return {
    check: 'workers',
    subject: `task queue ${taskQueue}`,
    status: activityPollers.length === 0 ? 'fail' : 'ok',
    saw: workers.length ? `${workers.length} polling: ${workers.slice(0, 4).join(', ')}${workers.length > 4 ? ', …' : ''}` : 'no worker polls it',
    ...(activityPollers.length === 0 ? { next: `start a worker for it: PGOPS_TASK_QUEUE=${taskQueue} pgops worker` } : {}),
  };
}

async function awaitingApproval(client: Client): Promise<DoctorLine[]> {
  const lines: DoctorLine[] = [];
  const query = `ExecutionStatus = 'Running' AND (WorkflowType = '${GUARDED_RESTORE_WORKFLOW}' OR WorkflowType = '${FAILOVER_PROMOTION_WORKFLOW}')`;
  for await (const run of client.workflow.list({ query })) {
    const handle = client.workflow.getHandle(run.workflowId, run.runId);
    const waiting =
      run.type === GUARDED_RESTORE_WORKFLOW
        ? (await handle.query(restoreStatusQuery)).stage === 'awaiting-approval'
        : (await handle.query(failoverStatusQuery)).waitingFor !== undefined;
    if (!waiting) continue;
    const open = Date.now() - run.startTime.getTime();
    lines.push({
      check: 'approval',
      subject: `${run.type} ${run.workflowId}`,
      status: open > APPROVAL_WARN_MS ? 'warn' : 'ok',
      saw: `waits for an approval; started ${duration(open)} ago`,
      next: run.type === GUARDED_RESTORE_WORKFLOW ? `pgops restore status ${run.workflowId}, then approve or reject` : 'pgops failover status, then pgops failover approve',
    });
  }
  if (lines.length === 0) lines.push({ check: 'approval', subject: 'restores and failovers', status: 'ok', saw: 'none waits for an approval' });
  return lines;
}
