// Records the history of one real stackCheck run into test/histories/ for the replay tests.
import { runStackCheck } from '../../src/client';
import { saveHistory } from './histories';
import { stackConfig, withWorker } from './stack';

async function main(): Promise<void> {
  const workflowId = `record-stack-check-${Date.now()}`;
  const file = await withWorker(stackConfig(), async ({ client, taskQueue }) => {
    await runStackCheck(client, { taskQueue, workflowId });
    return saveHistory(client, workflowId, 'stackCheck');
  });
  console.log(`recorded ${file}`);
  process.exit(0);
}

void main();
