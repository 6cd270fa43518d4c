// Determinism guard: the current workflow code must replay histories recorded from earlier runs,
// and the history of a run made just now.
import { Worker } from '@temporalio/worker';
import { runStackCheck } from '../src/client';
import { fetchHistory, recordedHistories } from './support/histories';
import { stackConfig, withWorker, workflowBundle } from './support/stack';

describe('workflow replay', () => {
  const recorded = recordedHistories();

  test('histories are recorded for every workflow', () => {
    expect(recorded.map((r) => r.name)).toEqual(expect.arrayContaining(['stackCheck.json', 'nightlyBackup.json', 'guardedRestore.json', 'failoverPromotion.json', 'rejoinAsStandby.json', 'embeddingBackfill.json', 'failoverWatcher.json']));
  });

  test.each(recorded.map((r) => [r.name, r.history] as const))('replays recorded %s', async (_name, history) => {
    await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history)).resolves.toBeUndefined();
  });

  test('replays a stackCheck run made now', async () => {
    const workflowId = `replay-stack-check-${Date.now()}`;
    const history = await withWorker(stackConfig(), async ({ client, taskQueue }) => {
      await runStackCheck(client, { taskQueue, workflowId });
      return fetchHistory(client, workflowId);
    });
    await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history)).resolves.toBeUndefined();
  });
});
