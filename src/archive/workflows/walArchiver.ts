// walArchiver: the cluster's WAL leaves the primary continuously. One per cluster (workflow id
// wal-archive-<cluster>). Each round prepares the current primary (slots, checks) and runs the
// supervising activity, which streams with pg_receivewal and ships to S3 until the round ends, the
// primary changes, or WAL was lost: then the gap is written down and the webhook told. A failure
// retrying cannot cure (a server or bucket it cannot use, two different copies of one segment)
// pauses the archiver and tells the webhook; `resume` tries again. History stays bounded by
// continue-as-new.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  archiveStatusQuery,
  pauseArchiveSignal,
  primaryChangedSignal,
  resumeArchiveSignal,
  type ArchiveGap,
  type ArchivePreparation,
  type ArchiveRoundResult,
  type WalArchiverInput,
  type WalArchiveState,
} from '../contract';
import { NAME_PATTERN } from '../../shared/targets';
import { causeMessage } from '../../shared/temporal/causeMessage';

const DEFAULT_ROUND_MS = 10 * 60_000;
const ROUNDS_PER_RUN = 50;
const KEPT_GAPS = 20;
/** Failures that name a configuration problem: the workflow cannot do anything for this cluster. */
const FATAL = ['UnknownCluster', 'BadInput'];

const { prepareArchive } = proxyActivities<Activities>({
  startToCloseTimeout: '60 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const { recordArchiveGap, notifyWebhook } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

function supervisor(roundMs: number) {
  // A dead worker is noticed within 15 s and the round moves to another (which resumes from the slot).
  return proxyActivities<Activities>({
    startToCloseTimeout: roundMs + 2 * 60_000,
    heartbeatTimeout: '15 seconds',
    // A paused or redirected round ends only once its final upload pass is done, so two rounds never share the spool.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
  }).runWalArchiver;
}

/** The typed failure inside an activity failure, if retrying it cannot help. */
function nonRetryableCause(err: unknown): ApplicationFailure | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && cause.nonRetryable ? cause : undefined;
}

export async function walArchiver(input: WalArchiverInput): Promise<void> {
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) {
    throw ApplicationFailure.nonRetryable(`input.cluster must name a configured cluster (e.g. "main"), got ${JSON.stringify(input?.cluster)}`, 'BadInput');
  }
  const roundMs = input.roundMs ?? DEFAULT_ROUND_MS;
  const runWalArchiver = supervisor(roundMs);
  const state: WalArchiveState = input.carried ?? { cluster: input.cluster, archivingSince: new Date().toISOString(), rounds: 0, warnings: [], gaps: [] };
  let round: CancellationScope | undefined;
  let resetSpool = false;

  setHandler(archiveStatusQuery, () => state);
  setHandler(pauseArchiveSignal, (pause) => {
    if (typeof pause?.by !== 'string' || !pause.by.trim()) return;
    state.paused = { by: pause.by.slice(0, 200), reason: String(pause.reason ?? '').slice(0, 500), at: new Date().toISOString() };
    round?.cancel();
  });
  setHandler(resumeArchiveSignal, () => {
    state.paused = undefined;
  });
  setHandler(primaryChangedSignal, () => round?.cancel());

  for (let rounds = 0; ; rounds++) {
    if (rounds >= ROUNDS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof walArchiver>({ cluster: input.cluster, roundMs: input.roundMs, carried: state });
    }
    if (state.paused) {
      await condition(() => state.paused === undefined);
      continue;
    }
    try {
      const prep = await prepareArchive({ cluster: input.cluster });
      noteRound(prep);
      if (prep.gap) {
        await reportGap(prep, prep.gap);
        resetSpool = true;
      }
      const result = await inRound(() => runWalArchiver({ prep, roundMs, resetSpool }));
      resetSpool = false;
      if (!result) continue; // paused, or told the primary moved
      state.progress = result.progress;
      state.lastError = result.progress.lastError;
      if (result.gap) await reportGap(prep, result.gap);
      state.rounds += 1;
    } catch (err) {
      const cause = nonRetryableCause(err);
      if (!cause) throw err;
      if (FATAL.includes(cause.type ?? '')) throw cause;
      await pauseFor(cause.message);
    }
  }

  function noteRound(prep: ArchivePreparation): void {
    state.primary = prep.primary;
    state.timeline = prep.timeline;
    state.systemIdentifier = prep.systemIdentifier;
    state.root = prep.root;
    state.walStatus = prep.walStatus;
    state.warnings = prep.warnings;
  }

  /** The round in a scope a pause or a primaryChanged signal cancels; undefined when one did. */
  async function inRound(work: () => Promise<ArchiveRoundResult>): Promise<ArchiveRoundResult | undefined> {
    round = new CancellationScope();
    try {
      return await round.run(work);
    } catch (err) {
      if (isCancellation(err) && round.consideredCancelled) return undefined;
      throw err;
    } finally {
      round = undefined;
    }
  }

  async function reportGap(prep: ArchivePreparation, gap: ArchiveGap): Promise<void> {
    const key = await recordArchiveGap({ root: prep.root, node: prep.primary, gap });
    const recorded = { ...gap, key };
    state.gaps = [...state.gaps, recorded].slice(-KEPT_GAPS);
    await notifyWebhook({ kind: 'wal-archive', workflowId: workflowInfo().workflowId, cluster: input.cluster, status: 'gap', gap: recorded }).catch(() => undefined);
  }

  async function pauseFor(reason: string): Promise<void> {
    state.lastError = reason;
    state.paused = { by: 'archiver', reason: `${reason} (fix it, then: pgops wal resume --cluster ${input.cluster})`, at: new Date().toISOString() };
    await notifyWebhook({ kind: 'wal-archive', workflowId: workflowInfo().workflowId, cluster: input.cluster, status: 'paused', error: reason }).catch((err) => {
      state.warnings = [...state.warnings, `webhook: ${causeMessage(err)}`];
    });
  }
}
