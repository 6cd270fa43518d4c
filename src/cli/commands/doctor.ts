// pgops doctor: the incident checklist, one table, exit code 1 on any failed line.
import { parseArgs } from 'node:util';
import { runDoctor } from '../../client/doctor';
import type { DoctorReport } from '../../doctor/contract';
import { noWorkerWarning } from '../../shared/temporal/pollers';
import { formatTable } from '../format';
import { withTemporal } from './common';

export async function doctorCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false }, target: { type: 'string', multiple: true } } });
  return withTemporal(async (client, config) => {
    // The doctor runs on a worker next to the servers; without one it would wait forever.
    const noWorker = await noWorkerWarning(client, config.taskQueue);
    if (noWorker) {
      console.error(`pgops: doctor cannot run: ${noWorker}`);
      return 1;
    }
    const report = await runDoctor(client, { taskQueue: config.taskQueue }, { targets: values.target });
    console.log(values.json ? JSON.stringify(report, null, 2) : doctorTable(report));
    return report.status === 'fail' ? 1 : 0;
  });
}

function doctorTable(report: DoctorReport): string {
  const table = formatTable(
    ['status', 'check', 'subject', 'saw', 'next'],
    report.lines.map((l) => [l.status === 'ok' ? 'ok' : l.status.toUpperCase(), l.check, l.subject, l.saw, l.next ?? '']),
  );
  const counts = (['ok', 'warn', 'fail'] as const).map((s) => `${report.lines.filter((l) => l.status === s).length} ${s}`).join(', ');
  return `${table}\n\n${counts}`;
}
