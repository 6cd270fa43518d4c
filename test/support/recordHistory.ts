// Records the histories of real workflow runs into test/histories/ for the replay tests.
// Run after an intentional workflow change, naming the workflows to re-record (default: all):
//   npx tsx test/support/recordHistory.ts [stackCheck] [nightlyBackup] ...
import type { Client } from '@temporalio/client';
import { runStackCheck, startBackup } from '../../src/client';
import { saveHistory } from './histories';
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
  console.error(err.message);
  process.exit(1);
});
