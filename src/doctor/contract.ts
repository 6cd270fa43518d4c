// pgops doctor: the incident checklist as one workflow that runs next to the servers and prints
// one line per thing it looked at, with what it saw and what to do next.
import type { TargetName } from '../shared/targets';

export type DoctorStatus = 'ok' | 'warn' | 'fail';

export interface DoctorLine {
  /** The checklist item: "server", "disk", "connections", "locks", "statements", … */
  check: string;
  /** What was looked at: a target, a path, a cluster, a task queue. */
  subject: string;
  status: DoctorStatus;
  /** The number or fact seen, e.g. "38 of 200 connections (19%)". */
  saw: string;
  /** What to do next, when anything. */
  next?: string;
}

export interface DoctorInput {
  /** The targets whose servers are checked (default: every configured target). */
  targets?: TargetName[];
  /** The task queues whose workers are listed (default: the worker's own). */
  taskQueues?: string[];
  /** Idle-in-transaction sessions older than this are reported (default 5 minutes). */
  idleInTransactionWarnMs?: number;
}

export interface DoctorReport {
  startedAt: string;
  finishedAt: string;
  lines: DoctorLine[];
  /** The worst status of any line. */
  status: DoctorStatus;
}

export function worstStatus(lines: Pick<DoctorLine, 'status'>[]): DoctorStatus {
  if (lines.some((l) => l.status === 'fail')) return 'fail';
  return lines.some((l) => l.status === 'warn') ? 'warn' : 'ok';
}

// ---------------------------------------------------------------- workflow types
// The name the worker registers (src/workflows.ts) and the clients start (test/contracts.test.ts).

export const DOCTOR_WORKFLOW = 'doctor';
export type DoctorWorkflow = (input?: DoctorInput) => Promise<DoctorReport>;
