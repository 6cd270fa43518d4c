// pgops schedule install|pause|resume|show: the Temporal Schedule that runs nightlyBackup (and,
// through manageSchedule, the ones that run baseBackup and the WAL-chain audit).
import { parseArgs } from 'node:util';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Client } from '@temporalio/client';
import { backupScheduleId, installBackupSchedule } from '../../client/backups';
import { UsageError, withTemporal } from './common';

export async function scheduleCommand(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      target: { type: 'string', default: 'primary' },
      at: { type: 'string', default: '03:00' },
      timezone: { type: 'string', default: 'Asia/Seoul' },
    },
  });
  const target = values.target!;
  return withTemporal((client, config) =>
    manageSchedule(client, action, backupScheduleId(target), async () => {
      const outcome = await installBackupSchedule(client, { taskQueue: config.taskQueue, target, at: values.at!, timezone: values.timezone! });
      return `${outcome} schedule ${backupScheduleId(target)}: nightlyBackup of ${target} daily at ${values.at} ${values.timezone}`;
    }),
  );
}

/** install (through `install`, which returns the line to print), pause, resume or show a schedule. */
export async function manageSchedule(client: Client, action: string | undefined, scheduleId: string, install: () => Promise<string>): Promise<number> {
  const handle = client.schedule.getHandle(scheduleId);
  switch (action) {
    case 'install':
      console.log(await install());
      return 0;
    case 'pause':
      await handle.pause(`paused with pgops by ${process.env.USER ?? 'unknown'}`);
      console.log(`paused ${handle.scheduleId}`);
      return 0;
    case 'resume':
      await handle.unpause(`resumed with pgops by ${process.env.USER ?? 'unknown'}`);
      console.log(`resumed ${handle.scheduleId}`);
      return 0;
    case 'show': {
      const d = await handle.describe();
      const calendar = d.spec.calendars?.[0];
      const interval = d.spec.intervals?.[0];
      const pad = (ranges: { start: number }[] | undefined) => String(ranges?.[0]?.start ?? 0).padStart(2, '0');
      console.log(
        [
          `schedule ${d.scheduleId} (${d.state.paused ? 'paused' : 'active'})`,
          interval
            ? `  runs       every ${msToNumber(interval.every) / 60_000} min`
            : `  runs       daily at ${pad(calendar?.hour)}:${pad(calendar?.minute)} ${d.spec.timezone ?? 'UTC'}`,
          `  overlap    ${d.policies.overlap}, catch-up window ${d.policies.catchupWindow} ms`,
          `  next       ${d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()).join(', ')}`,
          `  recent     ${d.info.recentActions.map((a) => `${a.takenAt.toISOString()} ${a.action.workflow.workflowId}`).join(', ') || 'none'}`,
        ].join('\n'),
      );
      return 0;
    }
    default:
      throw new UsageError(`schedule needs install, pause, resume or show, got ${action ?? 'nothing'}`);
  }
}
