// Temporal Schedules: daily ones (the nightly logical backup, the base backups) and interval ones
// (the WAL-chain audit); one way to create or update each, one overlap policy.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Duration, SearchAttributePair } from '@temporalio/common';
import { isDuration } from '../shared/duration';

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
export function installDailySchedule(client: Client, options: DailyScheduleOptions): Promise<'created' | 'updated'> {
  return installSchedule(client, options.scheduleId, dailySpec(options));
}

export interface IntervalScheduleOptions {
  scheduleId: string;
  /** A duration ("1 hour", "15m"). */
  every: string;
  action: DailyScheduleOptions['action'];
}

/** Every `every` (from the epoch, so in step however often it is re-installed); a run still going skips the next. */
export function installIntervalSchedule(client: Client, options: IntervalScheduleOptions): Promise<'created' | 'updated'> {
  if (!isDuration(options.every)) throw new Error(`--every ${options.every} is not a duration such as "1 hour" or "15m"`);
  return installSchedule(client, options.scheduleId, {
    spec: { intervals: [{ every: options.every as Duration }] },
    action: { type: 'startWorkflow' as const, ...options.action },
    // A missed run is worth catching up only until the next one is due.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: options.every as Duration },
  });
}

type Definition = Pick<ScheduleOptions, 'spec' | 'action' | 'policies'>;

async function installSchedule(client: Client, scheduleId: string, { spec, action, policies }: Definition): Promise<'created' | 'updated'> {
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
    return 'updated';
  }
}
