// Daily Temporal Schedules (the nightly logical backup, the base backups): one spec, one policy.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';

export interface DailyScheduleOptions {
  scheduleId: string;
  /** Local time of day, "HH:MM". */
  at: string;
  timezone: string;
  action: {
    workflowType: string;
    taskQueue: string;
    workflowId: string;
    args: unknown[];
    typedSearchAttributes?: SearchAttributePair[];
  };
}

function dailySpec(options: DailyScheduleOptions) {
  const match = /^(\d{1,2}):(\d{2})$/.exec(options.at);
  if (!match || Number(match[1]) > 23 || Number(match[2]) > 59) throw new Error(`--at ${options.at} is not a time of day (HH:MM)`);
  return {
    spec: { calendars: [{ hour: Number(match[1]), minute: Number(match[2]) }], timezone: options.timezone },
    action: { type: 'startWorkflow' as const, ...options.action },
    // A backup still running when the next is due means something is wrong: don't stack them.
    // After downtime, a run missed within the last 2 hours still starts; older ones are skipped.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '2 hours' },
  };
}

/** Creates the schedule, or updates it in place when it exists. Returns "created" or "updated". */
export async function installDailySchedule(client: Client, options: DailyScheduleOptions): Promise<'created' | 'updated'> {
  const { spec, action, policies } = dailySpec(options);
  try {
    await client.schedule.create({ scheduleId: options.scheduleId, spec, action, policies });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(options.scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
    return 'updated';
  }
}
