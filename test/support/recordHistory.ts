// Records the histories of real workflow runs into test/histories/ for the replay tests.
// Run after an intentional workflow change, naming the workflows to re-record (default: all):
//   npx tsx test/support/recordHistory.ts [stackCheck] [nightlyBackup] [guardedRestore-rejected] ...
import type { Client } from '@temporalio/client';
import { withTarget } from '../../src/shared/postgres/connection';
import { decideRestore, restoreStatus, runStackCheck, startBackup, startRestore } from '../../src/client';
import { approveSignal } from '../../src/restore/contract';
import { runDoctor } from '../../src/client/doctor';
import { recordEmbeddingBackfill } from './embeddingFixture';
import { saveHistory } from './histories';
import { recordFailover, recordWatcher } from './replicaCluster';
import { recordBaseBackup } from './recordBaseBackup';
import { recordWalArchiverGap, recordWalChainAudit } from './recordWalChainAudit';
import { recordPitr } from './recordPitr';
import { stackConfig, withWorker } from './stack';
import { recordWalArchiver } from './walArchive';

/** Runs the workflow to its end on the given task queue under the given id; returns the run to save when not the latest. */
type Recorder = (client: Client, taskQueue: string, workflowId: string) => Promise<string | void>;

/**
 * A restore beside csarena of a fresh backup, stopped at its approval gate. Each outcome's
 * recorder decides it (or lets it expire) and removes what the restore may have created.
 */
async function restoreAwaitingApproval(client: Client, taskQueue: string, workflowId: string, approvalTimeout?: string) {
  await (await startBackup(client, { taskQueue, workflowId: `${workflowId}-backup` }, { target: 'primary', verify: 'list' })).result();
  const newDatabase = `csarena_record_${Date.now()}`;
  const handle = await startRestore(client, { taskQueue, workflowId }, { target: 'primary', backup: 'latest', mode: 'new-database', newDatabase, requestedBy: 'recorder', approvalTimeout });
  while ((await restoreStatus(client, workflowId)).stage !== 'awaiting-approval') await new Promise((r) => setTimeout(r, 200));
  const dropRestored = () => withTarget({ ...stackConfig().targets.primary, database: 'postgres' }, (c) => c.query(`DROP DATABASE IF EXISTS ${newDatabase} WITH (FORCE)`));
  return { handle, dropRestored };
}

/** One entry per recorded history (test/histories/<name>.json). */
const RECORDERS: Record<string, Recorder> = {
  stackCheck: async (client, taskQueue, workflowId) => {
    await runStackCheck(client, { taskQueue, workflowId });
  },
  doctor: async (client, taskQueue, workflowId) => {
    await runDoctor(client, { taskQueue, workflowId }, { taskQueues: [taskQueue] });
  },
  nightlyBackup: async (client, taskQueue, workflowId) => {
    await (await startBackup(client, { taskQueue, workflowId }, { target: 'primary', verify: 'list' })).result();
  },
  // A target the worker does not know: the dump fails for good, and the run ends failed.
  'nightlyBackup-failed': async (client, taskQueue, workflowId) => {
    await (await startBackup(client, { taskQueue, workflowId }, { target: 'nosuchtarget', verify: 'list' })).result().catch(() => undefined);
  },
  // With one refused and one accepted approval.
  guardedRestore: async (client, taskQueue, workflowId) => {
    const { handle, dropRestored } = await restoreAwaitingApproval(client, taskQueue, workflowId);
    await handle.signal(approveSignal, { approver: 'recorder', reason: 'refused: two-person rule' });
    await handle.signal(approveSignal, { approver: 'second-operator', reason: 'recording a replay history' });
    await handle.result();
    await dropRestored();
  },
  'guardedRestore-rejected': async (client, taskQueue, workflowId) => {
    const { handle, dropRestored } = await restoreAwaitingApproval(client, taskQueue, workflowId);
    await decideRestore(client, workflowId, 'reject', { approver: 'second-operator', reason: 'recording a rejection' });
    await handle.result();
    await dropRestored();
  },
  'guardedRestore-expired': async (client, taskQueue, workflowId) => {
    const { handle, dropRestored } = await restoreAwaitingApproval(client, taskQueue, workflowId, '3 seconds');
    await handle.result();
    await dropRestored();
  },
  // On an isolated primary + standby of their own: the primary SIGKILLed, then the old primary rejoined.
  failoverPromotion: (client, _taskQueue, workflowId) => recordFailover(client, workflowId, 'failoverPromotion'),
  'failoverPromotion-switchover': (client, _taskQueue, workflowId) => recordFailover(client, workflowId, 'switchover'),
  rejoinAsStandby: (client, _taskQueue, workflowId) => recordFailover(client, workflowId, 'rejoinAsStandby'),
  failoverWatcher: (client, _taskQueue, workflowId) => recordWatcher(client, workflowId),
  // On a scratch database with a local embeddings API, and a worker that sees both.
  embeddingBackfill: async (client, _taskQueue, workflowId) => {
    await recordEmbeddingBackfill(client, workflowId);
  },
  // Three batches per run: the saved first run ends in its continuation.
  'embeddingBackfill-continued': (client, _taskQueue, workflowId) => recordEmbeddingBackfill(client, workflowId, { batchesPerRun: 3 }),
  // On a cluster of its own: an auto run after a full one takes an incremental ...
  baseBackup: (client, _taskQueue, workflowId) => recordBaseBackup(client, workflowId),
  // ... or, with summarize_wal off, falls back to a full backup.
  'baseBackup-fallback': (client, _taskQueue, workflowId) => recordBaseBackup(client, workflowId, { fallback: true }),
  // Two 5-second rounds on an archived cluster of its own over the stack's servers, a pause and a resume, then stopped.
  walArchiver: (client, _taskQueue, workflowId) => recordWalArchiver(client, workflowId),
  // Its slot lost while it was paused: the gap recorded and a full base backup started (a child).
  'walArchiver-gap': (client, _taskQueue, workflowId) => recordWalArchiverGap(client, workflowId),
  // On a cluster of its own: the audit over a gapless archive, and over one with a segment deleted (a full base backup started).
  walChainAudit: (client, _taskQueue, workflowId) => recordWalChainAudit(client, workflowId),
  'walChainAudit-gap': (client, _taskQueue, workflowId) => recordWalChainAudit(client, workflowId, { gap: true }),
  // On a cluster of its own: restored to the moment before a DELETE, then approved (after a
  // refused self-approval), rejected, or left to expire; and a restore drill.
  pointInTimeRestore: (client, _taskQueue, workflowId) => recordPitr(client, workflowId, 'approved'),
  'pointInTimeRestore-rejected': (client, _taskQueue, workflowId) => recordPitr(client, workflowId, 'rejected'),
  'pointInTimeRestore-expired': (client, _taskQueue, workflowId) => recordPitr(client, workflowId, 'expired'),
  restoreDrill: (client, _taskQueue, workflowId) => recordPitr(client, workflowId, 'drill'),
};

async function main(names: string[]): Promise<void> {
  const unknown = names.filter((name) => !(name in RECORDERS));
  if (unknown.length) throw new Error(`no recorder for ${unknown.join(', ')}; known: ${Object.keys(RECORDERS).join(', ')}`);
  const selected = names.length ? names : Object.keys(RECORDERS);
  const stamp = Date.now();
  const files = await withWorker(stackConfig(), async ({ client, taskQueue }) => {
    const saved: string[] = [];
    for (const name of selected) {
      const workflowId = `record-${name}-${stamp}`;
      const runId = await RECORDERS[name](client, taskQueue, workflowId);
      saved.push(await saveHistory(client, workflowId, name, runId || undefined));
    }
    return saved;
  });
  console.log(`recorded ${files.join(', ')}`);
  process.exit(0);
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message);
  process.exit(1);
});
