// failoverWatcher: the failover nobody has to start. One per cluster (workflow id
// failover-watch-<cluster>); its heartbeating activity probes the current primary, and when a
// probe fails it runs failoverPromotion as a child, whose confirmation window and cut-off-worker
// guard decide whether anything is promoted. A dead worker's watch moves to another worker on
// the heartbeat timeout; history stays bounded by continue-as-new. Pausable by signal, and paused
// by a switchover or a restore of the cluster while it runs.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../../activities';
import {
  failoverWorkflowId,
  pauseWatchSignal,
  resumeWatchSignal,
  watchStatusQuery,
  type FailoverResult,
  type WatchedFailover,
  type WatchInput,
  type WatchPause,
  type WatchState,
  type WatchVerdict,
} from '../contract';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { failoverPromotion } from './failoverPromotion';
import { NAME_PATTERN } from '../../shared/targets';

/** One round of watching; the activity returns earlier when a probe fails. */
const WATCH_ROUND_MS = 10 * 60_000;
const DEFAULT_PAUSE_MS = 60 * 60_000;
const ROUNDS_PER_RUN = 100;
/** After a failover that promoted nothing, wait before the next: 30 s, doubling, at most 10 min. */
const FRUITLESS_BACKOFF_MS = 30_000;
const MAX_BACKOFF_MS = 10 * 60_000;

// A silent worker is noticed within seconds and the watch retried on another, for as long as it takes.
const { watchPrimary } = proxyActivities<Activities>({
  startToCloseTimeout: WATCH_ROUND_MS + 60_000,
  heartbeatTimeout: '5 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

function validPause(pause: WatchPause): boolean {
  return (
    typeof pause?.by === 'string' && pause.by.trim() !== '' && pause.by.length <= 200 &&
    typeof pause.reason === 'string' && pause.reason.length <= 500 &&
    (pause.forMs === undefined || (Number.isFinite(pause.forMs) && pause.forMs > 0))
  );
}

export async function failoverWatcher(input: WatchInput): Promise<void> {
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) {
    throw ApplicationFailure.nonRetryable(`input.cluster must name a configured cluster (e.g. "main"), got ${JSON.stringify(input?.cluster)}`, 'BadInput');
  }
  const state: WatchState = input.carried ?? {
    cluster: input.cluster,
    watchingSince: new Date().toISOString(),
    pauses: {},
    failoversStarted: 0,
    fruitlessFailovers: 0,
  };
  let watching: CancellationScope | undefined;

  const activePauses = () => {
    for (const [by, pause] of Object.entries(state.pauses)) if (pause.untilMs <= Date.now()) delete state.pauses[by];
    return Object.keys(state.pauses).length;
  };
  setHandler(watchStatusQuery, () => (activePauses(), state));
  setHandler(pauseWatchSignal, (pause) => {
    if (!validPause(pause)) return; // a malformed pause must not stop the watching
    state.pauses[pause.by] = { reason: pause.reason, untilMs: Date.now() + (pause.forMs ?? DEFAULT_PAUSE_MS) };
    watching?.cancel();
  });
  setHandler(resumeWatchSignal, (resume) => {
    if (resume?.all) state.pauses = {};
    else if (typeof resume?.by === 'string') delete state.pauses[resume.by];
  });

  for (let round = 0; ; round++) {
    if (round >= ROUNDS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof failoverWatcher>({ cluster: input.cluster, carried: state });
    }
    if (activePauses() > 0) {
      const until = Math.min(...Object.values(state.pauses).map((p) => p.untilMs));
      await condition(() => activePauses() === 0, Math.max(1, until - Date.now()));
      continue;
    }
    const verdict = await watchOnce(input.cluster);
    if (!verdict) continue; // paused mid-round
    state.primary = verdict.primary;
    if (verdict.outcome === 'healthy') {
      state.fruitlessFailovers = 0;
      continue;
    }
    state.lastFailover = await runFailover(verdict);
    state.failoversStarted += state.lastFailover.outcome === 'already-running' ? 0 : 1;
    if (state.lastFailover.outcome === 'promoted') {
      state.fruitlessFailovers = 0;
    } else {
      // Nothing promoted and the primary may still be unreachable from here (a worker cut off,
      // no candidate): wait, longer each time, instead of starting failovers back to back.
      const backoff = Math.min(MAX_BACKOFF_MS, FRUITLESS_BACKOFF_MS * 2 ** state.fruitlessFailovers);
      state.fruitlessFailovers += 1;
      await condition(() => activePauses() > 0, backoff);
    }
  }

  /** One watch round in a scope a pause can cancel; undefined when it was. */
  async function watchOnce(cluster: string): Promise<WatchVerdict | undefined> {
    watching = new CancellationScope();
    try {
      return await watching.run(() => watchPrimary({ cluster, forMs: WATCH_ROUND_MS }));
    } catch (err) {
      if (isCancellation(err) && activePauses() > 0) return undefined;
      throw err;
    } finally {
      watching = undefined;
    }
  }

  async function runFailover(verdict: WatchVerdict): Promise<WatchedFailover> {
    const workflowId = failoverWorkflowId(input.cluster);
    const startedAt = new Date().toISOString();
    const seen = { workflowId, startedAt, primary: verdict.primary };
    try {
      const result: FailoverResult = await executeChild(failoverPromotion, {
        workflowId,
        args: [{
          cluster: input.cluster,
          mode: 'failover',
          reason: `watcher: primary ${verdict.primary} stopped answering: ${verdict.error ?? 'no answer'}`,
          requestedBy: 'failover watcher',
          failingSinceMs: verdict.failingSinceMs,
        }],
        // The failover outlives a watcher that is stopped or continues as new mid-way.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowExecutionTimeout: '1 day',
      });
      return {
        ...seen,
        outcome: result.outcome === 'promoted' ? 'promoted' : 'cancelled',
        detail: result.outcome === 'promoted' ? `promoted ${result.newPrimary}` : (result.reason ?? 'no promotion'),
      };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        return { ...seen, outcome: 'already-running', detail: `${workflowId} is already running (started by an operator?)` };
      }
      if (err instanceof ChildWorkflowFailure) return { ...seen, outcome: 'failed', detail: causeMessage(err.cause ?? err) };
      throw err;
    }
  }
}
