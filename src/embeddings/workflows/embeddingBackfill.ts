// embeddingBackfill: every row of a table embedded, and re-embedded when its text changes.
// prepare → passes of keyset-paged batches (a bounded number in flight, within a requests- and
// tokens-per-minute budget) → optionally an HNSW index. Pause/resume by signal, progress by query,
// and cancellation lets the batches in flight finish before the run ends.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { EmbeddingInputInvalid, resolveEmbeddingBackfill } from '../defaults';
import { causeMessage } from '../../shared/temporal/causeMessage';
import type {
  EmbedBatchResult,
  EmbeddingBackfillCarry,
  EmbeddingBackfillInput,
  EmbeddingBackfillResult,
  EmbeddingBackfillSpec,
  EmbeddingBatchPlan,
  EmbeddingProgress,
} from '../contract';
import { embeddingProgressQuery, pauseEmbeddingSignal, resumeEmbeddingSignal } from '../contract';


/** A pass over the table finds rows edited while the previous one ran; under endless edits, stop after this many. */
const MAX_PASSES = 5;
/** The shortest wait for the budget (see the dispatch loop). */
const MIN_BUDGET_SLEEP_MS = 250;
/** Batches planned per page: enough to keep every in-flight slot busy between plans. */
const PLANNED_BATCHES_PER_SLOT = 4;

function backfillActivities(heartbeatTimeout: string) {
  const { planEmbeddingBatches } = proxyActivities<Activities>({
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  // Adding columns gives up at once when a long transaction (the nightly dump) holds the table, so
  // prepare keeps trying for as long as such a transaction may last.
  const { prepareEmbeddingBackfill } = proxyActivities<Activities>({
    startToCloseTimeout: '10 minutes',
    scheduleToCloseTimeout: '3 hours',
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' },
  });
  // 429s are waited out inside the activity (they are pacing, not failure); timeouts and 5xx come
  // back here and are retried with backoff.
  const { embedBatch } = proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
  });
  const { buildEmbeddingIndex } = proxyActivities<Activities>({
    startToCloseTimeout: '12 hours',
    heartbeatTimeout,
    retry: { initialInterval: '10 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
  });
  return { prepareEmbeddingBackfill, planEmbeddingBatches, embedBatch, buildEmbeddingIndex };
}

/**
 * A token bucket per budget, on workflow time so replays agree. It holds one second's worth (at
 * least one request), so a run starts at once and then keeps to the rate instead of bursting a
 * whole minute's budget and idling.
 */
class Budget {
  constructor(
    private readonly perMinute: number | undefined,
    public level: number,
    public at: number,
  ) {}

  /** Adds what flowed in since the last refill, up to a second's worth (or `amount`, if larger). */
  refill(now: number, amount = 0): void {
    if (this.perMinute !== undefined) {
      const capacity = Math.max(this.perMinute / 60, amount);
      this.level = Math.min(capacity, this.level + (now - this.at) * (this.perMinute / 60_000));
    }
    this.at = now;
  }

  /** How long to wait before `amount` fits. */
  waitFor(amount: number, now: number): number {
    if (this.perMinute === undefined) return 0;
    this.refill(now, amount);
    return this.level >= amount ? 0 : Math.ceil((amount - this.level) / (this.perMinute / 60_000));
  }

  take(amount: number): void {
    if (this.perMinute !== undefined) this.level -= amount;
  }
}

function validate(input: EmbeddingBackfillInput): EmbeddingBackfillSpec {
  try {
    return resolveEmbeddingBackfill(input);
  } catch (err) {
    if (err instanceof EmbeddingInputInvalid) throw ApplicationFailure.nonRetryable(err.message, 'BadInput');
    throw err;
  }
}

export async function embeddingBackfill(input: EmbeddingBackfillInput, carry?: EmbeddingBackfillCarry): Promise<EmbeddingBackfillResult> {
  const spec = validate(input);
  const activities = backfillActivities(spec.heartbeatTimeout);
  const progress: EmbeddingProgress = carry?.progress ?? {
    workflowId: workflowInfo().workflowId,
    target: spec.target,
    table: `${spec.schema}.${spec.table}`,
    stage: 'preparing',
    done: 0,
    total: 0,
    errors: 0,
    skipped: 0,
    requests: 0,
    tokens: 0,
    rateLimitedMs: 0,
    batchesInFlight: 0,
    pass: 1,
    rowsPerSecond: 0,
    startedAt: new Date().toISOString(),
  };
  let paused = carry?.paused ?? false;
  let activeMs = carry?.activeMs ?? 0;
  let activeSince = Date.now();
  const activeNow = () => activeMs + (paused ? 0 : Date.now() - activeSince);

  setHandler(embeddingProgressQuery, () => {
    const seconds = activeNow() / 1000;
    const rowsPerSecond = seconds > 0 ? progress.done / seconds : 0;
    const remaining = Math.max(0, progress.total - progress.done - progress.errors - progress.skipped);
    return {
      ...progress,
      stage: paused && progress.stage === 'embedding' ? 'paused' : progress.stage,
      rowsPerSecond: Math.round(rowsPerSecond * 10) / 10,
      etaSeconds: rowsPerSecond > 0 && progress.stage === 'embedding' ? Math.round(remaining / rowsPerSecond) : undefined,
    };
  });
  setHandler(pauseEmbeddingSignal, () => {
    if (!paused) activeMs += Date.now() - activeSince;
    paused = true;
  });
  setHandler(resumeEmbeddingSignal, () => {
    if (paused) activeSince = Date.now();
    paused = false;
  });

  const requestBudget = new Budget(spec.requestsPerMinute, carry?.bucket.requests ?? Math.max(1, (spec.requestsPerMinute ?? 0) / 60), carry?.bucket.at ?? Date.now());
  const tokenBudget = new Budget(spec.tokensPerMinute, carry?.bucket.tokens ?? (spec.tokensPerMinute ?? 0) / 60, carry?.bucket.at ?? Date.now());
  // Both buckets are refilled up to the same moment before the run continues as new, so one time carries both.
  /** Set from the API's x-ratelimit-* headers: no new request before this time. */
  let holdUntil = 0;

  const queue: EmbeddingBatchPlan[] = [];
  let afterKey = carry?.afterKey;
  let exhausted = false;
  let foundThisPass = carry !== undefined; // a continued run is mid-pass
  let batchesThisRun = 0;
  let failure: unknown;
  const pendingRows = () => queue.reduce((n, b) => n + b.rows, 0);

  const absorb = (result: EmbedBatchResult) => {
    progress.done += result.embedded;
    progress.errors += result.errors;
    progress.skipped += result.skipped;
    progress.requests += result.requests;
    progress.tokens += result.tokens;
    progress.rateLimitedMs += result.rateLimitedMs;
    const hint = result.rateLimit;
    if (hint?.resetMs !== undefined && (hint.remainingRequests === 0 || hint.remainingTokens === 0)) {
      holdUntil = Math.max(holdUntil, Date.now() + hint.resetMs);
    }
  };

  const dispatch = (batch: EmbeddingBatchPlan) => {
    progress.batchesInFlight += 1;
    batchesThisRun += 1;
    // Cancelling the backfill must not cancel a batch mid-request: it finishes and is written.
    const errorsAllowed = Math.max(0, spec.maxErrors - progress.errors);
    CancellationScope.nonCancellable(() => activities.embedBatch({ spec, batch, errorsAllowed })).then(
      (result) => absorb(result),
      (err) => (failure ??= err),
    ).finally(() => (progress.batchesInFlight -= 1));
  };

  const drain = () => condition(() => progress.batchesInFlight === 0);

  try {
    if (!carry) {
      const prepared = await activities.prepareEmbeddingBackfill(spec);
      progress.total = prepared.rowsNeedingWork;
    }
    progress.stage = 'embedding';
    for (;;) {
      if (failure) throw failure;
      if (queue.length === 0 && !exhausted) {
        const page = await activities.planEmbeddingBatches({ spec, afterKey, maxBatches: spec.batchesInFlight * PLANNED_BATCHES_PER_SLOT });
        queue.push(...page.batches);
        exhausted = page.exhausted;
        if (page.batches.length) {
          afterKey = page.batches[page.batches.length - 1].lastKey;
          foundThisPass = true;
        }
        progress.total = Math.max(progress.total, progress.done + progress.errors + progress.skipped + pendingRows());
        continue;
      }
      if (queue.length === 0) {
        await drain();
        if (failure) throw failure;
        if (!foundThisPass || progress.pass >= MAX_PASSES) break;
        // Rows edited behind the scan, or changed between read and write, still need work.
        progress.pass += 1;
        afterKey = undefined;
        exhausted = false;
        foundThisPass = false;
        continue;
      }
      if (batchesThisRun >= spec.batchesPerRun || workflowInfo().continueAsNewSuggested) {
        await drain();
        if (failure) throw failure;
        if (!paused) activeMs += Date.now() - activeSince;
        const now = Date.now();
        requestBudget.refill(now);
        tokenBudget.refill(now);
        return await continueAsNew<typeof embeddingBackfill>(input, {
          progress,
          afterKey: queue[0].afterKey,
          paused,
          activeMs,
          bucket: { requests: requestBudget.level, tokens: tokenBudget.level, at: now },
        });
      }
      await condition(() => (!paused && progress.batchesInFlight < spec.batchesInFlight) || failure !== undefined);
      if (failure) continue;
      const batch = queue[0];
      const requests = batch.requests ?? 1;
      const wait = Math.max(holdUntil - Date.now(), requestBudget.waitFor(requests, Date.now()), tokenBudget.waitFor(batch.estimatedTokens, Date.now()));
      if (wait > 0) {
        // Every timer costs a workflow task; at high rates, waking once per batch would cap the
        // dispatch rate below the budget. Sleeping a little longer lets the bucket fill with several
        // batches' worth, dispatched together; the bucket still bounds the rate.
        await sleep(Math.max(wait, MIN_BUDGET_SLEEP_MS));
        continue; // paused, failed or cancelled meanwhile? look again
      }
      requestBudget.take(requests);
      tokenBudget.take(batch.estimatedTokens);
      dispatch(queue.shift()!);
    }

    progress.total = progress.done + progress.errors + progress.skipped;
    progress.rowsPerSecond = Math.round((progress.done / Math.max(1, activeNow() / 1000)) * 10) / 10;
    let indexBuilt: EmbeddingBackfillResult['indexBuilt'];
    if (spec.index) {
      progress.stage = 'indexing';
      const index = await activities.buildEmbeddingIndex(spec);
      indexBuilt = { name: index.name, ms: index.ms };
    }
    progress.stage = 'done';
    return { progress, indexBuilt };
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      progress.stage = 'cancelled';
      await CancellationScope.nonCancellable(drain);
      throw err;
    }
    progress.stage = 'failed';
    progress.error = causeMessage(err);
    await CancellationScope.nonCancellable(drain);
    throw ApplicationFailure.nonRetryable(
      `embedding backfill of ${progress.table}.${spec.embeddingColumn} on ${spec.target} failed: ${progress.error}`,
      'EmbeddingBackfillFailed',
    );
  }
}
