// Workflow code (runs inside the walArchiver and walChainAudit workflows): after a gap in the WAL
// archive, a fresh full base backup, so the recoverable window restarts past the gap. A child that
// outlives its starter (the archiver continues as new, an audit ends in seconds), under the gap's
// own workflow id: whoever finds the gap first starts it, everyone after finds it started. Only a
// run that failed may be started again.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, startChild, WorkflowIdReusePolicy } from '@temporalio/workflow';
import { causeMessage } from '../shared/temporal/causeMessage';
import { BASE_BACKUP_WORKFLOW, gapBaseBackupWorkflowId, type BaseBackupWorkflow, type GapBaseBackup } from './contract';

export async function startGapBaseBackup(cluster: string, systemIdentifier: string, gapSegment: string): Promise<GapBaseBackup> {
  const workflowId = gapBaseBackupWorkflowId(cluster, systemIdentifier, gapSegment);
  try {
    await startChild<BaseBackupWorkflow>(BASE_BACKUP_WORKFLOW, {
      workflowId,
      args: [{ cluster, mode: 'full', notifyOnSuccess: true }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    });
    return { workflowId, outcome: 'started' };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, outcome: 'already-started' };
    // The gap must still reach the webhook; the next audit tries the backup again.
    return { workflowId, outcome: 'failed-to-start', detail: causeMessage(err) };
  }
}
