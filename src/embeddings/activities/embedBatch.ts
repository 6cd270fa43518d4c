// One batch: read the rows of a key range that still need work, set aside the ones the model
// cannot take (never more than the backfill allows, never blanking a vector), embed the rest, and
// write the vectors back in one statement per API request.
// Idempotent: a retry reads only the rows an earlier attempt did not write, and a vector is
// written only if the row's text is still the text that was embedded.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import type OpenAI from 'openai';
import type { WorkerConfig } from '../../shared/config';
import { estimateTokens, splitIntoRequests } from '../defaults';
import type { EmbedBatchResult, EmbeddingBackfillSpec, EmbeddingBatchPlan, RateLimitHint } from '../contract';
import { heartbeatWhile } from '../../shared/heartbeat';
import { resolveTarget, withPooledTarget } from '../../shared/postgres/connection';
import { apiLocation, createEmbeddingsClient, InputRejected, RateLimited, requestEmbeddings } from './embeddingsApi';
import { type EmbeddingTable, needsWork, requirePrepared, resolveEmbeddingTable, textHash } from './embeddingTable';
import { binaryVectorArray, textVectorArray } from './vectorArray';

/** 429s are the API pacing us, not failures: wait as asked, this many times per batch at most. */
const MAX_RATE_LIMIT_WAITS = 100;

interface Row {
  key: string;
  text: string;
  /** Hex SHA-256 of the text as read; the write only lands if the row still hashes to it. */
  hash: string;
}

interface BadRow extends Row {
  reason: string;
}

export interface EmbedBatchRequest {
  spec: EmbeddingBackfillSpec;
  batch: EmbeddingBatchPlan;
  /** Rows this batch may still set aside before the backfill stops (absent: no limit). */
  errorsAllowed?: number;
}

function rejectReason(row: Row, tokens: number, spec: EmbeddingBackfillSpec): string | undefined {
  if (row.text.trim() === '') return 'empty text';
  if (tokens > spec.maxTokensPerInput) {
    return `text of ~${tokens} tokens (estimated) is over the model's limit of ${spec.maxTokensPerInput} tokens per input`;
  }
  return undefined;
}

async function readRows(db: ClientBase, table: EmbeddingTable, spec: EmbeddingBackfillSpec, batch: EmbeddingBatchPlan): Promise<Row[]> {
  const work = needsWork(table, spec, 2);
  const params: unknown[] = [batch.lastKey, ...work.params];
  let after = '';
  if (batch.afterKey !== undefined) {
    params.push(batch.afterKey);
    after = `AND t.${table.key} > $${params.length}`;
  }
  const { rows } = await db.query<Row>(
    `SELECT t.${table.key}::text AS key, ${table.text} AS text, encode(${textHash(table)}, 'hex') AS hash
       FROM ${table.qualified} t
      WHERE t.${table.key} <= $1 ${after} AND ${work.sql}
      ORDER BY t.${table.key}`,
    params,
  );
  return rows;
}

/**
 * Records why rows were set aside, for the text they hold now: the errors table is what keeps them
 * out of later passes (see needsWork). The rows themselves are not touched, so a vector embedded
 * from an earlier text stays rather than becoming NULL. One statement.
 */
async function recordBadRows(db: ClientBase, table: EmbeddingTable, spec: EmbeddingBackfillSpec, bad: BadRow[]): Promise<number> {
  if (bad.length === 0) return 0;
  const { rowCount } = await db.query(
    `WITH bad AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS b(key, hash, reason))
     INSERT INTO ${table.errors} AS e (table_name, embedding_column, row_key, model, reason, content_sha256)
     SELECT $5, $6, bad.key, $4, bad.reason, decode(bad.hash, 'hex')
       FROM bad JOIN ${table.qualified} t ON t.${table.key} = bad.key::${table.keyType} AND encode(${textHash(table)}, 'hex') = bad.hash
     ON CONFLICT (table_name, embedding_column, row_key)
       DO UPDATE SET model = excluded.model, reason = excluded.reason, content_sha256 = excluded.content_sha256, recorded_at = now()`,
    [bad.map((r) => r.key), bad.map((r) => r.hash), bad.map((r) => r.reason), spec.model, table.label, spec.embeddingColumn],
  );
  return rowCount ?? 0;
}

/** Writes the vectors of rows whose text is unchanged, and clears their old errors: one statement. */
async function writeVectors(
  db: ClientBase,
  table: EmbeddingTable,
  spec: EmbeddingBackfillSpec,
  rows: Row[],
  vectors: Float32Array[],
  vectorType: 'vector' | 'halfvec',
  vectorTypeOid: number,
): Promise<number> {
  const vectorParam = vectorType === 'vector' ? binaryVectorArray(vectors, vectorTypeOid) : textVectorArray(vectors);
  const { rows: written } = await db.query<{ n: string }>(
    `WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::${vectorType}[]) AS v(key, hash, vec)),
          written AS (
            UPDATE ${table.qualified} t
               SET ${table.embedding} = v.vec, ${table.hash} = decode(v.hash, 'hex'), ${table.model} = $4
              FROM v
             WHERE t.${table.key} = v.key::${table.keyType} AND encode(${textHash(table)}, 'hex') = v.hash
            RETURNING v.key),
          cleared AS (
            DELETE FROM ${table.errors} e USING written
             WHERE e.table_name = $5 AND e.embedding_column = $6 AND e.row_key = written.key)
     SELECT count(*) AS n FROM written`,
    [rows.map((r) => r.key), rows.map((r) => r.hash), vectorParam, spec.model, table.label, spec.embeddingColumn],
  );
  return Number(written[0].n);
}

/** A text every embeddings model takes: what tells a refused request from a refused input. */
const PROBE_TEXT = 'pgops request check';

/**
 * A 400 does not say whether an input or the request itself was refused (a model that takes no
 * `dimensions`, after an operator changed the model). One input any model takes, sent with the same
 * model and dimensions, tells them apart: refused too, the fault is the request's, and the run stops
 * before anything is set aside.
 */
async function requireRequestAccepted(send: (rows: Row[]) => Promise<unknown>, config: WorkerConfig, spec: EmbeddingBackfillSpec): Promise<void> {
  try {
    await send([{ key: '', text: PROBE_TEXT, hash: '' }]);
  } catch (err) {
    if (!(err instanceof InputRejected)) throw err;
    throw ApplicationFailure.nonRetryable(
      `the embeddings API at ${apiLocation(config)} refuses any request for model ${spec.model} with ${spec.dimensions} dimensions, ` +
        `whatever its input: ${err.message}. Nothing was written or set aside; check the backfill's model and dimensions`,
      'EmbeddingRequestRejected',
    );
  }
}

/** Setting rows aside is for a few bad texts; many at once point at a cause to fix first. */
function requireWithinErrorBudget(bad: BadRow[], errorsAllowed: number | undefined, table: EmbeddingTable, spec: EmbeddingBackfillSpec): void {
  if (errorsAllowed === undefined || bad.length <= errorsAllowed) return;
  throw ApplicationFailure.nonRetryable(
    `${bad.length} rows of ${table.label} cannot be embedded (row ${bad[0].key}: ${bad[0].reason}), more than the ${errorsAllowed} ` +
      `this backfill may still set aside (maxErrors=${spec.maxErrors}); none of them was recorded. ` +
      `Fix the rows or the model settings, or raise maxErrors`,
    'EmbeddingTooManyErrors',
  );
}

function sortRows(rows: Row[], spec: EmbeddingBackfillSpec): { bad: BadRow[]; good: (Row & { tokens: number })[] } {
  const bad: BadRow[] = [];
  const good: (Row & { tokens: number })[] = [];
  for (const row of rows) {
    const tokens = estimateTokens(Buffer.byteLength(row.text));
    const reason = rejectReason(row, tokens, spec);
    if (reason) bad.push({ ...row, reason });
    else good.push({ ...row, tokens });
  }
  return { bad, good };
}

export function embedBatchActivities(config: WorkerConfig) {
  async function embedBatch({ spec, batch, errorsAllowed }: EmbedBatchRequest): Promise<EmbedBatchResult> {
    const openai = createEmbeddingsClient(config, spec.requestTimeoutMs);
    const result: EmbedBatchResult = { embedded: 0, errors: 0, skipped: 0, changedMeanwhile: 0, requests: 0, tokens: 0, rateLimitedMs: 0 };
    let waiting: number | undefined;
    const heartbeats = heartbeatWhile(() => ({ ...result, waitingForRateLimitMs: waiting }), { quietStartMs: 1_000 });
    try {
      return await withPooledTarget(resolveTarget(config, spec.target), async (db) => {
        const table = await resolveEmbeddingTable(db, spec);
        const { vectorType, vectorTypeOid } = requirePrepared(table, spec);
        const rows = await readRows(db, table, spec, batch);
        result.skipped = Math.max(0, batch.rows - rows.length);
        const { bad, good } = sortRows(rows, spec);
        const send = (part: Row[]) => withRateLimitWaits(openai, config, spec, part, result, (ms) => (waiting = ms));
        let requestChecked: Promise<void> | undefined;

        const embed = async (part: Row[]): Promise<void> => {
          let response;
          try {
            response = await send(part);
          } catch (err) {
            if (!(err instanceof InputRejected)) throw err;
            await (requestChecked ??= requireRequestAccepted(send, config, spec));
            // The API refused the request for its content: halve it until the offending row is alone.
            if (part.length === 1) {
              bad.push({ ...part[0], reason: `rejected by the embeddings API: ${err.message}` });
              return;
            }
            const half = Math.ceil(part.length / 2);
            await embed(part.slice(0, half));
            await embed(part.slice(half));
            return;
          }
          const written = await writeVectors(db, table, spec, part, response.vectors, vectorType, vectorTypeOid);
          result.embedded += written;
          result.changedMeanwhile += part.length - written;
          heartbeats.progressed();
        };
        // The batch's requests go out together: the workflow budgeted them as one dispatch.
        const parts = splitIntoRequests(good, (row) => row.tokens, spec);
        await Promise.all(parts.map(embed));
        requireWithinErrorBudget(bad, errorsAllowed, table, spec);
        result.errors = await recordBadRows(db, table, spec, bad);
        result.changedMeanwhile += bad.length - result.errors;
        return result;
      });
    } finally {
      heartbeats.stop();
    }
  }
  return { embedBatch };
}

async function withRateLimitWaits(
  openai: OpenAI,
  config: WorkerConfig,
  spec: EmbeddingBackfillSpec,
  rows: Row[],
  result: EmbedBatchResult,
  onWait: (ms: number | undefined) => void,
): Promise<{ vectors: Float32Array[]; rateLimit: RateLimitHint }> {
  for (let waits = 0; ; waits++) {
    result.requests += 1;
    try {
      const response = await requestEmbeddings(openai, config, { model: spec.model, dimensions: spec.dimensions, texts: rows.map((r) => r.text) });
      result.tokens += response.tokens;
      result.rateLimit = response.rateLimit;
      return response;
    } catch (err) {
      if (!(err instanceof RateLimited)) throw err;
      if (waits >= MAX_RATE_LIMIT_WAITS) {
        throw ApplicationFailure.retryable(`still rate limited after ${waits} waits`, 'EmbeddingApiRateLimited');
      }
      onWait(err.waitMs);
      const started = Date.now();
      // Context.sleep ends early if the activity is cancelled; heartbeats go on meanwhile.
      await Context.current().sleep(err.waitMs);
      result.rateLimitedMs += Date.now() - started;
      onWait(undefined);
    }
  }
}
