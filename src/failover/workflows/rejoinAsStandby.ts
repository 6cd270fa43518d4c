// rejoinAsStandby: after a failover, turn the old primary into a standby of the new one.
// pg_rewind (the local stack has data checksums and wal_log_hints) or, when it cannot work, a
// fresh pg_basebackup with the old data directory kept aside; start; confirm it streams.
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { RejoinInput, RejoinResult, StepTiming } from '../contract';
import { NAME_PATTERN } from '../../shared/targets';


const { rewindOrRebuild } = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
});
const { startAsStandby, confirmStreaming } = proxyActivities<Activities>({
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

export async function rejoinAsStandby(input: RejoinInput): Promise<RejoinResult> {
  for (const key of ['cluster', 'node', 'newPrimary'] as const) {
    if (!input || typeof input[key] !== 'string' || !NAME_PATTERN.test(input[key])) {
      throw ApplicationFailure.nonRetryable(`input.${key} must be a configured name, got ${JSON.stringify(input?.[key])}`, 'BadInput');
    }
  }
  const steps: StepTiming[] = [];
  async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    const value = await run();
    steps.push({ step: name, startedAt: new Date(started).toISOString(), ms: Date.now() - started, outcome: 'ok' });
    return value;
  }
  const nodes = { cluster: input.cluster, node: input.node, newPrimary: input.newPrimary };
  const rebuilt = await step('rewind or rebuild', () =>
    rewindOrRebuild({ ...nodes, allowBaseBackup: input.allowBaseBackup ?? true, workflowId: workflowInfo().workflowId }),
  );
  await step('start as standby', () => startAsStandby(nodes));
  const streaming = await step('confirm streaming', () => confirmStreaming(nodes));
  return { node: input.node, newPrimary: input.newPrimary, ...rebuilt, receiverStatus: streaming.receiverStatus, steps };
}
