// Records the histories of real stackCheck and nightlyBackup runs into test/histories/ for the
// replay tests. Run after an intentional workflow change: npx tsx test/support/recordHistory.ts
import { runStackCheck, startBackup } from '../../src/client';
import { saveHistory } from './histories';
import { stackConfig, withWorker } from './stack';

async function main(): Promise<void> {
  const stamp = Date.now();
  const files = await withWorker(stackConfig(), async ({ client, taskQueue }) => {
    await runStackCheck(client, { taskQueue, workflowId: `record-stack-check-${stamp}` });
    const backup = await startBackup(client, { taskQueue, workflowId: `record-nightly-backup-${stamp}` }, { target: 'primary', verify: 'list' });
    await backup.result();
    return [
      await saveHistory(client, `record-stack-check-${stamp}`, 'stackCheck'),
      await saveHistory(client, backup.workflowId, 'nightlyBackup'),
    ];
  });
  console.log(`recorded ${files.join(', ')}`);
  process.exit(0);
}

void main();
