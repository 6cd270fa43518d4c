// Recorded workflow histories, checked in under test/histories/, that replay tests run the
// current workflow code against. Re-record with: npx tsx test/support/recordHistory.ts
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { historyFromJSON, historyToJSON, type History } from '@temporalio/common/lib/proto-utils';

export const HISTORIES_DIR = path.resolve(__dirname, '../histories');

export function recordedHistories(): { name: string; history: History }[] {
  return readdirSync(HISTORIES_DIR)
    .filter((file) => file.endsWith('.json'))
    .map((file) => ({ name: file, history: historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES_DIR, file), 'utf8'))) }));
}

/** The run's history: the latest run of the id unless `runId` names one (a run that continued as new). */
export async function fetchHistory(client: Client, workflowId: string, runId?: string): Promise<History> {
  return client.workflow.getHandle(workflowId, runId).fetchHistory();
}

export async function saveHistory(client: Client, workflowId: string, name: string, runId?: string): Promise<string> {
  const file = path.join(HISTORIES_DIR, `${name}.json`);
  writeFileSync(file, historyToJSON(await fetchHistory(client, workflowId, runId)));
  return file;
}

/** The named activity's scheduled, started, completed and cancel-requested events in a run's history. */
export async function activityEvents(handle: WorkflowHandle, activityType: string) {
  const events = (await handle.fetchHistory()).events!;
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType);
  const scheduledIds = new Set(scheduled.map((e) => String(e.eventId)));
  const of = (id: unknown) => scheduledIds.has(String(id));
  return {
    scheduled,
    started: events.filter((e) => of(e.activityTaskStartedEventAttributes?.scheduledEventId)),
    completed: events.filter((e) => of(e.activityTaskCompletedEventAttributes?.scheduledEventId)),
    cancelRequested: events.filter((e) => of(e.activityTaskCancelRequestedEventAttributes?.scheduledEventId)),
  };
}

/** The highest attempt number the named activity was started with (0 when it never started). */
export async function activityAttempts(handle: WorkflowHandle, activityType: string): Promise<number> {
  const { started } = await activityEvents(handle, activityType);
  return Math.max(0, ...started.map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 0));
}

export async function activityCompletions(handle: WorkflowHandle, activityType: string): Promise<number> {
  return (await activityEvents(handle, activityType)).completed.length;
}
