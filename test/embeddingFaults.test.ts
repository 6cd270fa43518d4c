// The embedding backfill under faults: an API that answers 429 (with Retry-After), 500 and
// too slowly; a worker SIGKILLed mid-run; a cancellation mid-run. Each ends with every row's
// vector right (or, cancelled, every batch in flight written), and little sent twice.
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { fakeEmbedding } from '../src/dev/fakeEmbeddingsServer';
import { connectClient, startEmbeddingBackfill } from '../src/client';
import type { EmbeddingBackfillInput, EmbeddingBatchPlan } from '../src/embeddings/contract';
import { createEmbeddingFixture, storedEmbeddings, wrongVectors, type EmbeddingFixture } from './support/embeddingFixture';
import { activityAttempts, activityEvents } from './support/histories';
import { withWorker } from './support/stack';
import { startWorkerProcess, waitUntil, type WorkerProcess } from './support/workerProcess';

const ROWS = 1_200;
let fixture: EmbeddingFixture;
let client: Client;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  fixture = await createEmbeddingFixture(ROWS);
  client = await connectClient(fixture.config.temporal);
}, 60_000);

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await client?.connection.close();
  await fixture?.cleanup();
});

beforeEach(() => fixture.server.reset());

/** Each test fills a column of its own, in few dimensions: faults, not vector sizes, are under test here. */
function input(column: string, extra: EmbeddingBackfillInput = {}): EmbeddingBackfillInput {
  return { target: fixture.targetName, embeddingColumn: column, dimensions: 64, batchSize: 20, requestsPerBatch: 1, ...extra };
}

async function embeddedRows(column: string): Promise<number> {
  return Number((await fixture.db.query(`SELECT count(*) AS n FROM questions WHERE ${column} IS NOT NULL`)).rows[0].n);
}

/** Texts the API embedded (and answered with 200) more than once. */
function embeddedTwice(): number {
  return [...fixture.server.embeddedCount.values()].filter((n) => n > 1).length;
}

/**
 * When the workflow dispatched each batch, with its estimated tokens: the start of the workflow
 * task that scheduled it, which is the clock the workflow's budget reads. Retries are not new
 * dispatches and add no scheduled event.
 */
async function dispatches(handle: WorkflowHandle): Promise<{ at: number; tokens: number }[]> {
  const at = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) =>
    Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
  const out: { at: number; tokens: number }[] = [];
  let taskStarted = 0;
  for (const e of (await handle.fetchHistory()).events!) {
    if (e.workflowTaskStartedEventAttributes) taskStarted = at(e);
    if (e.activityTaskScheduledEventAttributes?.activityType?.name !== 'embedBatch') continue;
    const request = defaultPayloadConverter.fromPayload<{ batch: EmbeddingBatchPlan }>(e.activityTaskScheduledEventAttributes.input!.payloads![0]);
    out.push({ at: taskStarted, tokens: request.batch.estimatedTokens });
  }
  return out;
}

/** The largest sum of `amount` over any window of `windowMs`. */
function busiestWindow(points: { at: number; amount: number }[], windowMs: number): number {
  let best = 0;
  for (const start of points) {
    best = Math.max(best, points.filter((p) => p.at >= start.at && p.at < start.at + windowMs).reduce((sum, p) => sum + p.amount, 0));
  }
  return best;
}

describe('embeddingBackfill under faults', () => {
  test('429s with Retry-After, 500s and a timed-out request: the run completes within its budget, at most one batch embedded twice', async () => {
    const rpm = 240;
    const tpm = 240_000;
    fixture.server.faultPlan = (n) => {
      if (n === 5) return { kind: 'timeout', holdMs: 2_500 };
      if (n % 7 === 0) return { kind: '429', retryAfterMs: 700 };
      if (n % 11 === 0) return { kind: '500' };
      return undefined;
    };
    const { handle, result } = await withWorker(fixture.config, async ({ client: workerClient, taskQueue }) => {
      const handle = await startEmbeddingBackfill(
        workerClient,
        { taskQueue },
        input('embedding_faults', { batchesInFlight: 3, requestsPerMinute: rpm, tokensPerMinute: tpm, requestTimeoutMs: 1_000 }),
      );
      return { handle: client.workflow.getHandle(handle.workflowId), result: await handle.result() };
    });

    expect(result.progress).toMatchObject({ stage: 'done', done: ROWS, errors: 0 });
    expect(wrongVectors(await storedEmbeddings(fixture.db, 'embedding_faults'), 64)).toEqual([]);
    const statuses = fixture.server.log.map((r) => r.status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(3);
    expect(statuses.filter((s) => s === 500).length).toBeGreaterThan(3);
    expect(result.progress.rateLimitedMs).toBeGreaterThan(0);
    // Only the batch whose answer came too late was sent again after the server had embedded it.
    expect(embeddedTwice()).toBeGreaterThan(0);
    expect(embeddedTwice()).toBeLessThanOrEqual(20);

    // The budget: a bucket of one second's worth, refilled at the per-minute rate. Over any 10 s,
    // at most 10 s of rate plus that second's burst (plus one for rounding).
    const sent = await dispatches(handle);
    expect(sent.length).toBeGreaterThanOrEqual(ROWS / 20);
    expect(busiestWindow(sent.map((d) => ({ at: d.at, amount: 1 })), 10_000)).toBeLessThanOrEqual((rpm / 60) * 11 + 1);
    const largestBatch = Math.max(...sent.map((d) => d.tokens));
    expect(busiestWindow(sent.map((d) => ({ at: d.at, amount: d.tokens })), 10_000)).toBeLessThanOrEqual((tpm / 60) * 10 + Math.max(tpm / 60, largestBatch) + largestBatch);
    // ...and it is a budget, not a suggestion: 60 batches at 4 a second cannot take less than ~14 s.
    expect(sent[sent.length - 1].at - sent[0].at).toBeGreaterThanOrEqual(((sent.length - rpm / 60) / (rpm / 60)) * 1000 - 500);
  }, 120_000);

  test('SIGKILL of the worker mid-run: a new worker finishes the same run, no row missing, no batch lost', async () => {
    fixture.server.latencyMs = 150;
    const taskQueue = `emb-kill-${randomUUID()}`;
    const start = async () => {
      const w = await startWorkerProcess({ ...fixture.env, PGOPS_TASK_QUEUE: taskQueue });
      workers.push(w);
      return w;
    };
    const first = await start();
    const handle = await startEmbeddingBackfill(client, { taskQueue }, input('embedding_kill', { batchesInFlight: 3, heartbeatTimeout: '5 seconds' }));
    // Killed while the server holds a request that arrived under 50 ms ago (of its 150): that batch
    // cannot have finished on the first worker, so it must be retried. Killed between batches, the
    // run would only move to the new worker with nothing to retry.
    const heldJustNow = () => fixture.server.log.some((r) => r.status === 0 && Date.now() - r.at < 50);
    await waitUntil('a quarter of the rows embedded and a request just arrived', async () => (await embeddedRows('embedding_kill')) >= ROWS / 4 && heldJustNow());
    await first.kill('SIGKILL');
    const writtenBeforeKill = await embeddedRows('embedding_kill');
    expect(writtenBeforeKill).toBeLessThan(ROWS);
    await start();
    const result = await handle.result();

    expect(wrongVectors(await storedEmbeddings(fixture.db, 'embedding_kill'), 64)).toEqual([]);
    expect(result.progress.errors).toBe(0);
    // Every row was embedded by exactly one recorded batch, or found already written by a retry.
    expect(result.progress.done + result.progress.skipped).toBeGreaterThanOrEqual(ROWS);
    // The batches in flight at the kill were retried; nothing else was sent twice.
    expect(await activityAttempts(handle, 'embedBatch')).toBeGreaterThan(1);
    expect(embeddedTwice()).toBeLessThanOrEqual(3 * 20);
  }, 240_000);

  test('cancellation lets the batches in flight finish and be written, then ends the run', async () => {
    fixture.server.latencyMs = 400;
    await withWorker(fixture.config, async ({ client, taskQueue }) => {
      const handle = await startEmbeddingBackfill(client, { taskQueue }, input('embedding_cancel', { batchesInFlight: 3 }));
      await waitUntil('the first batch to be written', async () => (await embeddedRows('embedding_cancel')) > 0);
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow(/cancel/i);
      const batches = await activityEvents(handle, 'embedBatch');
      const scheduled = batches.scheduled.length;
      // No batch was asked to stop; every one dispatched completed.
      expect(batches.cancelRequested).toHaveLength(0);
      expect(batches.completed).toHaveLength(scheduled);
      const written = await embeddedRows('embedding_cancel');
      expect(written).toBe(scheduled * 20);
      expect(written).toBeLessThan(ROWS);
      expect(fixture.server.log.filter((r) => r.status === 200).length).toBe(scheduled);
    });
  }, 60_000);
});

/** The message a failed run ends with (the workflow's, naming its activity's cause). */
async function failureMessage(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof WorkflowFailedError)) throw new Error(`expected the backfill to fail, got ${String(err)}`);
  return err.cause?.message ?? '';
}

async function runBackfill(extra: EmbeddingBackfillInput & { embeddingColumn: string }) {
  return withWorker(fixture.config, async ({ client: workerClient, taskQueue }) =>
    (await startEmbeddingBackfill(workerClient, { taskQueue, workflowId: `emb-400-${randomUUID()}` }, input(extra.embeddingColumn, extra))).result(),
  );
}

async function errorRowsOf(column: string): Promise<{ row_key: string; reason: string }[]> {
  return (await fixture.db.query('SELECT row_key, reason FROM pgops_embedding_errors WHERE embedding_column = $1 ORDER BY row_key', [column])).rows;
}

describe('embeddingBackfill when the API refuses with 400', () => {
  const column = 'embedding_refused';

  test('a 400 to the whole request (a model that takes no dimensions) fails the run with the API\'s message and changes no row', async () => {
    await runBackfill({ embeddingColumn: column });
    const before = await storedEmbeddings(fixture.db, column);
    expect(wrongVectors(before, 64)).toEqual([]);

    const message = await failureMessage(runBackfill({ embeddingColumn: column, model: 'text-embedding-ada-002' }));
    expect(message).toMatch(/refuses any request for model text-embedding-ada-002 with 64 dimensions, whatever its input: .*does not support specifying dimensions/);
    expect(await storedEmbeddings(fixture.db, column)).toEqual(before);
    expect(await errorRowsOf(column)).toEqual([]);
  }, 120_000);

  test('a row the API refuses keeps the vector it had, is set aside once, and a later run sends nothing for it', async () => {
    const { rows } = await fixture.db.query<{ id: string; content: string }>(`SELECT id::text AS id, content FROM questions WHERE ${column} IS NOT NULL ORDER BY id LIMIT 1`);
    const [row] = rows;
    // Over the fake's 8,192 tokens, under the limit we are told, so only the API refuses it.
    await fixture.db.query(`UPDATE questions SET content = repeat('Explain the TLB. ', 2500) WHERE id = $1`, [row.id]);
    try {
      const result = await runBackfill({ embeddingColumn: column, maxTokensPerInput: 30_000 });
      expect(result.progress).toMatchObject({ stage: 'done', errors: 1 });
      const kept = (await storedEmbeddings(fixture.db, column)).find((r) => r.id === row.id)!;
      expect(kept.embedding).not.toBeNull();
      expect(kept.embedding!.every((x, i) => Math.abs(x - fakeEmbedding(row.content, 64)[i]) < 1e-6)).toBe(true);
      expect(await errorRowsOf(column)).toEqual([{ row_key: row.id, reason: expect.stringMatching(/rejected by the embeddings API: .*maximum context length/) }]);

      fixture.server.reset();
      const again = await runBackfill({ embeddingColumn: column, maxTokensPerInput: 30_000 });
      expect(again.progress).toMatchObject({ stage: 'done', done: 0, errors: 0 });
      expect(fixture.server.log).toEqual([]);
    } finally {
      await fixture.db.query('UPDATE questions SET content = $2 WHERE id = $1', [row.id, row.content]);
    }
  }, 120_000);

  test('more rows to set aside than maxErrors: the run stops, says so, and sets aside no more than that', async () => {
    const { rows } = await fixture.db.query<{ id: string; content: string }>('SELECT id::text AS id, content FROM questions ORDER BY id LIMIT 5');
    await fixture.db.query(`UPDATE questions SET content = '  ' WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
    try {
      const message = await failureMessage(runBackfill({ embeddingColumn: 'embedding_budget', maxErrors: 2, batchesInFlight: 1 }));
      expect(message).toMatch(/\d+ rows of public\.questions cannot be embedded \(row \d+: empty text\), more than the [0-2] this backfill may still set aside \(maxErrors=2\)/);
      // Batches before the one that stopped the run may have set aside up to the limit, never more.
      expect((await errorRowsOf('embedding_budget')).length).toBeLessThanOrEqual(2);
    } finally {
      for (const row of rows) await fixture.db.query('UPDATE questions SET content = $2 WHERE id = $1', [row.id, row.content]);
    }
  }, 120_000);
});
