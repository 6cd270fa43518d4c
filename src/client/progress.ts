// Live progress of a running workflow: its progress query gives the stage, the heartbeats of its
// running activities the counts since, without an event in history per tick.
import { defaultPayloadConverter, type QueryDefinition } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';

/** The progress query's answer, with each running activity's latest heartbeat details merged in by `merge`. */
export async function progressWithHeartbeats<P, D>(handle: WorkflowHandle, query: QueryDefinition<P>, merge: (progress: P, details: Partial<D>) => void): Promise<P> {
  const progress = await handle.query(query);
  const description = await handle.describe();
  for (const activity of description.raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (payload) merge(progress, defaultPayloadConverter.fromPayload<Partial<D>>(payload));
  }
  return progress;
}
