// Who polls a task queue: a workflow started where nobody polls waits silently forever, so the
// CLI warns at once and pgops doctor lists the workers.
import type { Client } from '@temporalio/client';

/** Temporal's TaskQueueType: workflow tasks and activity tasks are polled separately. */
const TASK_QUEUE_TYPE = { workflow: 1, activity: 2 } as const;

export interface TaskQueuePollers {
  taskQueue: string;
  /** Worker identities seen polling recently (Temporal keeps them for a few minutes). */
  workflowPollers: string[];
  activityPollers: string[];
}

export async function describePollers(client: Client, taskQueue: string): Promise<TaskQueuePollers> {
  const describe = async (type: number) => {
    const response = await client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: taskQueue }, taskQueueType: type });
    return (response.pollers ?? []).map((p) => p.identity ?? 'unknown');
  };
  const [workflowPollers, activityPollers] = await Promise.all([describe(TASK_QUEUE_TYPE.workflow), describe(TASK_QUEUE_TYPE.activity)]);
  return { taskQueue, workflowPollers, activityPollers };
}

/** The warning a command prints when it has just started a run nobody will pick up. */
export async function noWorkerWarning(client: Client, taskQueue: string): Promise<string | undefined> {
  const pollers = await describePollers(client, taskQueue).catch(() => undefined);
  if (!pollers || pollers.workflowPollers.length > 0) return undefined;
  return `no worker polls task queue "${taskQueue}": the run waits until one does (start one with: pgops worker)`;
}
