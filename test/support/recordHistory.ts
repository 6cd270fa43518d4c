// Records the histories of real workflow runs into test/histories/ for the replay tests.
// Run after an intentional workflow change, naming the workflows to re-record (default: all):
//   npx tsx test/support/recordHistory.ts [stackCheck] [nightlyBackup] ...
import type { Client } from '@temporalio/client';
import { withTarget } from '../../src/shared/postgres/connection';
import { restoreStatus, runStackCheck, startBackup, startRestore } from '../../src/client';
import { recordEmbeddingBackfill } from './embeddingFixture';
import { saveHistory } from './histories';
import { recordFailover, recordWatcher } from './replicaCluster';
import { stackConfig, withWorker } from './stack';

type Recorder = (client: Client, taskQueue: string, workflowId: string) => Promise<void>;

/** One entry per workflow: run it to completion on the given task queue under the given id. */
const RECORDERS: Record<string, Recorder> = {
  stackCheck: async (client, taskQueue, workflowId) => {
    await runStackCheck(client, { taskQueue, workflowId });
  },
  nightlyBackup: async (client, taskQueue, workflowId) => {
    await (await startBackup(client, { taskQueue, workflowId }, { target: 'primary', verify: 'list' })).result();
  },
  // A restore beside csarena of a fresh backup, with one refused and one accepted approval.
  guardedRestore: async (client, taskQueue, workflowId) => {
    await (await startBackup(client, { taskQueue, workflowId: `${workflowId}-backup` }, { target: 'primary', verify: 'list' })).result();
    const newDatabase = `csarena_record_${Date.now()}`;
    const handle = await startRestore(client, { taskQueue, workflowId }, { target: 'primary', backup: 'latest', mode: 'new-database', newDatabase, requestedBy: 'recorder' });
    while ((await restoreStatus(client, workflowId)).stage !== 'awaiting-approval') await new Promise((r) => setTimeout(r, 200));
    await handle.signal('approve', { approver: 'recorder', reason: 'refused: two-person rule' });
    await handle.signal('approve', { approver: 'second-operator', reason: 'recording a replay history' });
    await handle.result();
    await withTarget({ ...stackConfig().targets.primary, database: 'postgres' }, (c) => c.query(`DROP DATABASE ${newDatabase} WITH (FORCE)`));
  },
  // On an isolated primary + standby of their own: the primary SIGKILLed, then the old primary rejoined.
  failoverPromotion: (client, _taskQueue, workflowId) => recordFailover(client, workflowId, 'failoverPromotion'),
  rejoinAsStandby: (client, _taskQueue, workflowId) => recordFailover(client, workflowId, 'rejoinAsStandby'),
  failoverWatcher: (client, _taskQueue, workflowId) => recordWatcher(client, workflowId),
  // On a scratch database with a local embeddings API, and a worker that sees both.
  embeddingBackfill: (client, _taskQueue, workflowId) => recordEmbeddingBackfill(client, workflowId),
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
      await RECORDERS[name](client, taskQueue, workflowId);
      saved.push(await saveHistory(client, workflowId, name));
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
