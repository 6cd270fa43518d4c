// Running workflows of the worker's task queue and what their queries say, for gauges about work
// in progress (approvals waited for, backfill progress). Only this task queue: a query to a run
// no worker polls for would wait out its timeout, and another deployment's runs are not ours.
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';

/** At most this many runs of one type are queried per scrape. */
const MAX_RUNS = 50;
const QUERY_DEADLINE_MS = 3_000;

export async function runningWorkflows(temporal: Client, taskQueue: string, workflowType: string): Promise<WorkflowExecutionInfo[]> {
  const query = `WorkflowType = '${workflowType}' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue.replace(/'/g, "\\'")}'`;
  const runs: WorkflowExecutionInfo[] = [];
  for await (const run of temporal.workflow.list({ query, pageSize: MAX_RUNS })) {
    runs.push(run);
    if (runs.length >= MAX_RUNS) break;
  }
  return runs;
}

/** `ask()` within the deadline, else undefined: one stuck run must not hold the scrape. */
export async function answerWithin<T>(ask: () => Promise<T>, ms = QUERY_DEADLINE_MS): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([ask().catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}
