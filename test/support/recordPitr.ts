// For the history recorder: point-in-time restores and a restore drill on a cluster of their own
// (ports 26310-26312, instances on 26330-26331), each decided the way its history is named.
import type { Client } from '@temporalio/client';
import { decidePointInTimeRestore, pitrStatus, startPointInTimeRestore, startRestoreDrill } from '../../src/client';
import { pitrApproveSignal } from '../../src/pitr/contract';
import { createPitrFixture, instanceDir, TEST_TABLE } from './pitrFixture';
import { waitUntil } from './workerProcess';

export type RecordedPitr = 'approved' | 'rejected' | 'expired' | 'drill';

export async function recordPitr(client: Client, workflowId: string, outcome: RecordedPitr): Promise<void> {
  const f = await createPitrFixture(`record-pitr-${outcome}`, 26310);
  try {
    await f.baseBackup();
    await f.sql(`INSERT INTO ${TEST_TABLE} SELECT g, 'deleted later' FROM generate_series(1, 100) g`);
    const [{ at }] = await f.sql<{ at: string }>('SELECT clock_timestamp()::text AS at');
    await f.sql(`DELETE FROM ${TEST_TABLE}`);
    await f.archiveWal();
    const instance = { dataDir: instanceDir(f, 'recorded'), port: outcome === 'drill' ? 26331 : 26330 };
    if (outcome === 'drill') {
      await (await startRestoreDrill(client, { taskQueue: f.taskQueue, workflowId }, { cluster: f.cluster.name, instance })).result();
      return;
    }
    const handle = await startPointInTimeRestore(
      client,
      { taskQueue: f.taskQueue, workflowId },
      { cluster: f.cluster.name, target: { kind: 'time', time: at }, instance, mode: 'side', requestedBy: 'recorder', reason: 'recording a replay history', approvalTimeout: outcome === 'expired' ? '3 seconds' : undefined },
    );
    await waitUntil('the restore to wait for approval', async () => (await pitrStatus(client, workflowId)).stage === 'awaiting-approval', 120_000);
    if (outcome === 'approved') {
      await handle.signal(pitrApproveSignal, { approver: 'recorder', reason: 'refused: two-person rule' });
      await decidePointInTimeRestore(client, workflowId, 'approve', { approver: 'second-operator', reason: 'recording a replay history' });
    } else if (outcome === 'rejected') {
      await decidePointInTimeRestore(client, workflowId, 'reject', { approver: 'second-operator', reason: 'recording a rejection' });
    }
    await handle.result();
    if (outcome === 'approved') {
      await f.cluster.asServerUser('pg_ctl', ['-D', instance.dataDir, '-m', 'immediate', 'stop']).catch(() => undefined);
    }
  } finally {
    await f.down();
  }
}
