// The embedding backfill for the app and the CLI: start (or attach to) the backfill of a table,
// watch it, pause and resume it; and the queries the game runs on the vectors.
import type { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { ClientBase } from 'pg';
import { embeddingBackfillId, identifier, resolveEmbeddingBackfill } from '../embeddings/defaults';
import {
  EMBEDDING_BACKFILL_WORKFLOW,
  embeddingProgressQuery,
  pauseEmbeddingSignal,
  resumeEmbeddingSignal,
  type EmbedBatchResult,
  type EmbeddingBackfillInput,
  type EmbeddingBackfillWorkflow,
  type EmbeddingProgress,
} from '../embeddings/contract';
import { PGOPS_TARGET } from '../shared/temporal/searchAttributes';
import { progressWithHeartbeats } from './progress';

export type EmbeddingBackfillHandle = WorkflowHandle<EmbeddingBackfillWorkflow>;

export { embeddingBackfillId, EmbeddingInputInvalid } from '../embeddings/defaults';

/**
 * Starts the backfill of a table, or attaches to the one already running for it: the workflow id
 * is one per table and column, and a start while it runs returns the running backfill's handle.
 * Throws EmbeddingInputInvalid at once for malformed input.
 */
export async function startEmbeddingBackfill(
  client: Client,
  options: { taskQueue: string; workflowId?: string },
  input: EmbeddingBackfillInput = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<EmbeddingBackfillWorkflow>> {
  const spec = resolveEmbeddingBackfill(input);
  return client.workflow.start<EmbeddingBackfillWorkflow>(EMBEDDING_BACKFILL_WORKFLOW, {
    taskQueue: options.taskQueue,
    workflowId: options.workflowId ?? embeddingBackfillId(spec),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [input],
    typedSearchAttributes: [{ key: PGOPS_TARGET, value: spec.target }],
  });
}

export function embeddingBackfillHandle(client: Client, input: EmbeddingBackfillInput = {}): EmbeddingBackfillHandle {
  return client.workflow.getHandle(embeddingBackfillId(resolveEmbeddingBackfill(input)));
}

/** The workflow's progress, plus what the batches in flight have embedded so far (from their heartbeats). */
export function embeddingProgress(handle: WorkflowHandle): Promise<EmbeddingProgress> {
  return progressWithHeartbeats<EmbeddingProgress, EmbedBatchResult>(handle, embeddingProgressQuery, (progress, details) => {
    progress.done += details.embedded ?? 0;
  });
}

export async function pauseEmbeddingBackfill(handle: WorkflowHandle): Promise<void> {
  await handle.signal(pauseEmbeddingSignal);
}

export async function resumeEmbeddingBackfill(handle: WorkflowHandle): Promise<void> {
  await handle.signal(resumeEmbeddingSignal);
}

export interface SimilarQuestion {
  id: string;
  content: string;
  /** Cosine distance: 0 is the same direction, 1 unrelated, 2 opposite. */
  distance: number;
}

export interface VectorQueryOptions {
  /** The column the backfill filled (default `embedding`); `vector` or `halfvec`. */
  embeddingColumn?: string;
}

function embeddingColumn(db: ClientBase, options: VectorQueryOptions): string {
  return db.escapeIdentifier(identifier('embeddingColumn', options.embeddingColumn ?? 'embedding'));
}

/**
 * "You got this wrong — try these": the `limit` questions nearest to question `questionId` by
 * cosine distance, as `ORDER BY embedding <=> $1 LIMIT k`, which an HNSW cosine index serves.
 * The query vector takes the column's own type (vector or halfvec), so the index applies.
 */
export async function findSimilarQuestions(
  db: ClientBase,
  questionId: string | number,
  options: VectorQueryOptions & { limit?: number } = {},
): Promise<SimilarQuestion[]> {
  const column = embeddingColumn(db, options);
  const { rows } = await db.query<{ id: string; content: string; distance: number }>(
    `SELECT q.id::text AS id, q.content, q.${column} <=> source.v AS distance
       FROM questions q, (SELECT ${column} AS v FROM questions WHERE id = $1 AND ${column} IS NOT NULL) source
      WHERE q.id <> $1 AND q.${column} IS NOT NULL
      ORDER BY q.${column} <=> source.v
      LIMIT $2`,
    [questionId, options.limit ?? 5],
  );
  return rows.map((r) => ({ ...r, distance: Number(r.distance) }));
}

/**
 * Before a newly generated question is stored: the nearest existing question if it is closer than
 * `maxDistance` (cosine), else undefined. `embedding` must come from the model the backfill used.
 */
export async function findDuplicateQuestion(
  db: ClientBase,
  embedding: ArrayLike<number>,
  options: VectorQueryOptions & { maxDistance?: number } = {},
): Promise<SimilarQuestion | undefined> {
  const column = embeddingColumn(db, options);
  // $1 is untyped: PostgreSQL gives it the column's type, vector or halfvec.
  const { rows } = await db.query<{ id: string; content: string; distance: number }>(
    `SELECT id::text AS id, content, ${column} <=> $1 AS distance
       FROM questions WHERE ${column} IS NOT NULL
      ORDER BY ${column} <=> $1
      LIMIT 1`,
    [`[${Array.from(embedding).join(',')}]`],
  );
  const nearest = rows[0] && { ...rows[0], distance: Number(rows[0].distance) };
  return nearest && nearest.distance < (options.maxDistance ?? 0.05) ? nearest : undefined;
}
