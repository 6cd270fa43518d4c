// Determinism guard: the current workflow code must replay histories recorded from earlier runs,
// and the history of a run made just now.
import { Worker } from '@temporalio/worker';
import { runStackCheck } from '../src/client';
import { fetchHistory, recordedHistories } from './support/histories';
import { stackConfig, withWorker, workflowBundle } from './support/stack';

describe('workflow replay', () => {
  const recorded = recordedHistories();

  test('histories are recorded for every workflow, and for the paths that are not the happy one', () => {
    expect(recorded.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'stackCheck.json',
        'doctor.json',
        'nightlyBackup.json',
        'nightlyBackup-failed.json',
        'guardedRestore.json',
        'guardedRestore-rejected.json',
        'guardedRestore-expired.json',
        'failoverPromotion.json',
        'failoverPromotion-switchover.json',
        'rejoinAsStandby.json',
        'embeddingBackfill.json',
        'embeddingBackfill-continued.json',
        'failoverWatcher.json',
        'baseBackup.json',
        'baseBackup-fallback.json',
        'walArchiver.json',
        'walArchiver-gap.json',
        'walChainAudit.json',
        'walChainAudit-gap.json',
        'pointInTimeRestore.json',
        'pointInTimeRestore-rejected.json',
        'pointInTimeRestore-expired.json',
        'restoreDrill.json',
      ]),
    );
  });

  test('the recorded unhappy paths end the way they are named', () => {
    const lastEvent = (name: string) => recorded.find((r) => r.name === name)!.history.events!.at(-1)!;
    expect(lastEvent('nightlyBackup-failed.json').workflowExecutionFailedEventAttributes).toBeTruthy();
    expect(lastEvent('embeddingBackfill-continued.json').workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
    const result = (name: string) => JSON.parse(Buffer.from(lastEvent(name).workflowExecutionCompletedEventAttributes!.result!.payloads![0].data as Uint8Array).toString());
    expect(result('baseBackup.json').record).toMatchObject({ kind: 'incremental' });
    const childStarts = (name: string) => recorded.find((r) => r.name === name)!.history.events!.filter((e) => e.childWorkflowExecutionStartedEventAttributes).length;
    expect(childStarts('walArchiver-gap.json')).toBe(1);
    expect(result('walChainAudit.json')).toMatchObject({ status: 'ok', holes: [] });
    expect(result('walChainAudit-gap.json')).toMatchObject({ status: 'gap', baseBackup: { outcome: 'started' }, notified: true });
    expect(result('baseBackup-fallback.json')).toMatchObject({ record: { kind: 'full' }, fullBecause: expect.stringMatching(/WAL summarization is enabled/) });
    expect(result('pointInTimeRestore.json')).toMatchObject({ outcome: 'restored', mode: 'side', decision: { approver: 'second-operator' }, ignored: [{ why: expect.stringMatching(/two-person rule/) }] });
    expect(result('pointInTimeRestore-rejected.json')).toMatchObject({ outcome: 'rejected', instanceRemoved: true });
    expect(result('pointInTimeRestore-expired.json')).toMatchObject({ outcome: 'expired', instanceRemoved: true });
    expect(result('restoreDrill.json')).toMatchObject({ ok: true, provedAt: expect.any(String) });
    for (const [name, outcome] of [['guardedRestore-rejected.json', 'rejected'], ['guardedRestore-expired.json', 'expired'], ['failoverPromotion-switchover.json', 'promoted']] as const) {
      const payload = lastEvent(name).workflowExecutionCompletedEventAttributes!.result!.payloads![0];
      expect(JSON.parse(Buffer.from(payload.data as Uint8Array).toString())).toMatchObject(name.includes('switchover') ? { outcome, mode: 'switchover' } : { outcome });
    }
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
