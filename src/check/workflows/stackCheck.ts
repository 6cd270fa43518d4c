// stackCheck: a smoke test of everything a worker depends on. Each check reports on its own,
// so one down service does not hide the state of the others.
import { ActivityFailure, ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { CheckRow, StackCheckInput, StackCheckReport } from '../contract';

const { probeTarget, confirmStandbyReplays, roundTripObject } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '5 seconds',
    maximumAttempts: 3,
    nonRetryableErrorTypes: ['UnknownTarget', 'PgAuthFailed', 'PgDatabaseMissing', 'BucketMissing', 'S3AuthFailed'],
  },
});

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.message;
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

async function check(component: string, run: () => Promise<string>): Promise<CheckRow> {
  try {
    return { component, ok: true, detail: await run() };
  } catch (err) {
    return { component, ok: false, detail: failureMessage(err) };
  }
}

export async function stackCheck(input: StackCheckInput = {}): Promise<StackCheckReport> {
  const primary = input.primary ?? 'primary';
  const standby = input.standby ?? 'standby';
  // Unique per run and the same on replay: names the marker row and the test object.
  const token = `${workflowInfo().workflowId}-${workflowInfo().runId}`;

  const checks = await Promise.all([
    check(`postgres ${primary}`, async () => {
      const p = await probeTarget(primary);
      const vector = p.extensions.vector
        ? `pgvector ${p.extensions.vector}`
        : p.pgvectorAvailable
          ? `pgvector ${p.pgvectorAvailable} available (CREATE EXTENSION vector not yet run)`
          : 'pgvector not available on this server';
      return `PostgreSQL ${p.serverVersion} (${p.inRecovery ? 'in recovery' : 'read-write'}), db ${p.database}, ${vector}, pg_dump ${p.pgDumpVersion}`;
    }),
    check(`replication ${primary} -> ${standby}`, async () => {
      const r = await confirmStandbyReplays({ primary, standby, marker: token });
      return `${r.replicationState}, marker row replayed after ${r.replayedAfterMs} ms, replay lag ${r.replayLagBytes} bytes`;
    }),
    check('s3', async () => {
      const s = await roundTripObject(`pgops-check/${token}`);
      return `bucket ${s.bucket}: put/get/delete of ${s.bytes} bytes in ${s.roundTripMs} ms${s.encryption ? `; ${s.encryption}` : ''}`;
    }),
  ]);
  return { ok: checks.every((c) => c.ok), checks };
}
