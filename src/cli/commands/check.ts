import { runStackCheck } from '../../client';
import { formatTable } from '../format';
import { warnWhenNoWorker, withTemporal } from './common';

export async function checkCommand(): Promise<number> {
  return withTemporal(async (client, config) => {
    await warnWhenNoWorker(client, config.taskQueue);
    const report = await runStackCheck(client, { taskQueue: config.taskQueue });
    console.log(formatTable(['component', 'status', 'detail'], report.checks.map((c) => [c.component, c.ok ? 'ok' : 'FAILED', c.detail])));
    return report.ok ? 0 : 1;
  });
}
