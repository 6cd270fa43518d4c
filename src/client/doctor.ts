// Running pgops doctor, for the CLI and for operators' own tooling.
import type { Client } from '@temporalio/client';
import { DOCTOR_WORKFLOW, type DoctorInput, type DoctorReport, type DoctorWorkflow } from '../doctor/contract';

export async function runDoctor(client: Client, options: { taskQueue: string; workflowId?: string }, input: DoctorInput = {}): Promise<DoctorReport> {
  return client.workflow.execute<DoctorWorkflow>(DOCTOR_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? `doctor-${new Date().toISOString().replace(/[-:.]/g, '')}`,
    args: [input],
    workflowExecutionTimeout: '5 minutes',
  });
}
