// One batch: read the rows of a key range that still need work, set aside the ones the model
// cannot take, embed the rest, and write the vectors back in one statement per API request.
// Idempotent: a retry reads only the rows an earlier attempt did not write, and a vector is
// written only if the row's text is still the text that was embedded.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import type OpenAI from 'openai';
import type { WorkerConfig } from '../../config';
import { estimateTokens, splitIntoRequests } from '../../embeddingDefaults';
import type { EmbedBatchResult, EmbeddingBackfillSpec, EmbeddingBatchPlan, RateLimitHint } from '../../embeddingTypes';
import { heartbeatWhile } from '../heartbeat';
import { resolveTarget, withPooledTarget } from '../postgres/connection';
import { createEmbeddingsClient, InputRejected, RateLimited, requestEmbeddings } from './embeddingsApi';
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

/** Marks rows as seen with this text and model (no vector) and records why, in one statement. */
async function recordBadRows(db: ClientBase, table: EmbeddingTable, spec: EmbeddingBackfillSpec, bad: BadRow[]): Promise<number> {
  if (bad.length === 0) return 0;
  const { rowCount } = await db.query(
    `WITH bad AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS b(key, hash, reason)),
          marked AS (
            UPDATE ${table.qualified} t
               SET ${table.embedding} = NULL, ${table.hash} = decode(bad.hash, 'hex'), ${table.model} = $4
              FROM bad
             WHERE t.${table.key} = bad.key::${table.keyType} AND encode(${textHash(table)}, 'hex') = bad.hash
            RETURNING bad.key, bad.hash, bad.reason)
     INSERT INTO ${table.errors} AS e (table_name, embedding_column, row_key, model, reason, content_sha256)
     SELECT $5, $6, key, $4, reason, decode(hash, 'hex') FROM marked
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

export function embedBatchActivities(config: WorkerConfig) {
  async function embedBatch({ spec, batch }: EmbedBatchRequest): Promise<EmbedBatchResult> {
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
        const bad: BadRow[] = [];
        const good: (Row & { tokens: number })[] = [];
        for (const row of rows) {
          const tokens = estimateTokens(Buffer.byteLength(row.text));
          const reason = rejectReason(row, tokens, spec);
          if (reason) bad.push({ ...row, reason });
          else good.push({ ...row, tokens });
        }

        const embed = async (part: Row[]): Promise<void> => {
          let response;
          try {
            response = await withRateLimitWaits(openai, config, spec, part, result, (ms) => (waiting = ms));
          } catch (err) {
            if (!(err instanceof InputRejected)) throw err;
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
