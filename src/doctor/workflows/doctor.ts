// pgops doctor: the incident checklist, every item looked at in parallel, one report. A check
// that fails to run is a failed line of the report, never a failed doctor.
import { ActivityFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { worstStatus, type DoctorInput, type DoctorLine, type DoctorReport } from '../contract';

const { doctorScope, checkServer, checkDisks, checkReplication, checkBackups, checkArchives, checkWorkers } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 2 },
});

export async function doctor(input: DoctorInput = {}): Promise<DoctorReport> {
  const startedAt = new Date().toISOString();
  const scope = await doctorScope();
  const targets = input.targets ?? scope.targets;
  const idleInTransactionWarnMs = input.idleInTransactionWarnMs ?? 5 * 60_000;
  const parts = await Promise.all([
    ...targets.map((target) => lines(`server ${target}`, () => checkServer({ target, idleInTransactionWarnMs }))),
    lines('disks', () => checkDisks()),
    lines('replication', () => checkReplication()),
    lines('backups', () => checkBackups({ groups: scope.backups })),
    lines('archives', () => checkArchives()),
    lines('workers', () => checkWorkers({ taskQueues: input.taskQueues ?? scope.taskQueues })),
  ]);
  const all = parts.flat();
  return { startedAt, finishedAt: new Date().toISOString(), lines: all, status: worstStatus(all) };
}

async function lines(what: string, check: () => Promise<DoctorLine[]>): Promise<DoctorLine[]> {
  try {
    return await check();
  } catch (err) {
    const message = err instanceof ActivityFailure && err.cause ? err.cause.message : String(err);
    return [{ check: what, subject: what, status: 'fail', saw: `the check itself failed: ${message}`, next: 'see the doctor run in the Temporal UI' }];
  }
}
