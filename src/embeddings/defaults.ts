// Defaults and validation of an embedding backfill, shared by the client (to refuse bad input
// before starting), the workflow (to refuse it again, since anything can start a workflow) and the
// activities. Pure: safe inside workflow code.
import type { EmbeddingBackfillInput, EmbeddingBackfillSpec, EmbeddingRowFilter } from './contract';
import { isDuration } from '../shared/duration';
import { NAME_PATTERN } from '../shared/targets';

/** OpenAI's caps: inputs per request, tokens per request, tokens per input (text-embedding-3-*). */
export const API_MAX_INPUTS_PER_REQUEST = 2_048;
export const API_MAX_TOKENS_PER_REQUEST = 300_000;
export const MODEL_MAX_TOKENS_PER_INPUT = 8_192;
/** pgvector's HNSW indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000. */
export const HNSW_MAX_VECTOR_DIMENSIONS = 2_000;
export const MAX_HALFVEC_DIMENSIONS = 4_000;

export const DEFAULT_EMBEDDING_BACKFILL = {
  target: 'primary',
  schema: 'public',
  table: 'questions',
  keyColumn: 'id',
  textColumns: ['content'],
  embeddingColumn: 'embedding',
  model: 'text-embedding-3-small',
  dimensions: 1_536,
  batchSize: 512,
  requestsPerBatch: 2,
  maxTokensPerRequest: API_MAX_TOKENS_PER_REQUEST,
  maxTokensPerInput: MODEL_MAX_TOKENS_PER_INPUT,
  maxErrors: 1_000,
  batchesInFlight: 2,
  batchesPerRun: 200,
  requestTimeoutMs: 60_000,
  heartbeatTimeout: '30 seconds',
} as const;

/**
 * A conservative token count without a tokenizer. Byte-level BPE (cl100k, used by the
 * text-embedding-3 models) never makes a token of less than one byte, and averages about 4 bytes
 * per token for English and 2.5–3 for Korean (3-byte Hangul, often one token per syllable); half
 * the UTF-8 byte length overestimates both, so a row we accept fits the model and a request we
 * size fits the API. A strict bound (one token per byte) would turn rows of 2–4× the real limit
 * away as too long.
 */
export function estimateTokens(utf8Bytes: number): number {
  return Math.ceil(utf8Bytes / 2);
}

/**
 * Cuts items, in order, into API requests of at most `batchSize` inputs and `maxTokensPerRequest`
 * estimated tokens. The planner sizes batches with it and the batch activity sends what it returns,
 * so both agree on what a request is.
 */
export function splitIntoRequests<T>(items: T[], tokensOf: (item: T) => number, spec: Pick<EmbeddingBackfillSpec, 'batchSize' | 'maxTokensPerRequest'>): T[][] {
  const requests: T[][] = [];
  let tokens = 0;
  for (const item of items) {
    const cost = tokensOf(item);
    const last = requests[requests.length - 1];
    if (!last || last.length >= spec.batchSize || tokens + cost > spec.maxTokensPerRequest) {
      requests.push([item]);
      tokens = cost;
    } else {
      last.push(item);
      tokens += cost;
    }
  }
  return requests;
}

export class EmbeddingInputInvalid extends Error {
  override name = 'EmbeddingInputInvalid';
}

const NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
const FILTER_OPS: EmbeddingRowFilter['op'][] = ['=', '<>', '<', '<=', '>', '>=', 'is null', 'is not null'];

function wholeNumber(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EmbeddingInputInvalid(`${name}=${value} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/**
 * Names are only shape-checked here; the activities check them against the catalog and quote
 * them. The shape check keeps nonsense out of workflow ids and error messages.
 */
export function identifier(name: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new EmbeddingInputInvalid(`${name}=${JSON.stringify(value)} is not a table or column name (letters, digits, _ and $, at most 63)`);
  }
  return value;
}

export function resolveEmbeddingBackfill(input: EmbeddingBackfillInput = {}): EmbeddingBackfillSpec {
  const d = DEFAULT_EMBEDDING_BACKFILL;
  const target = input.target ?? d.target;
  if (typeof target !== 'string' || !NAME_PATTERN.test(target)) {
    throw new EmbeddingInputInvalid(`target=${JSON.stringify(target)} must name a configured target (e.g. "primary")`);
  }
  const textColumns = input.textColumns ?? [...d.textColumns];
  if (!Array.isArray(textColumns) || textColumns.length === 0) throw new EmbeddingInputInvalid('textColumns must name at least one column');
  const dimensions = wholeNumber('dimensions', input.dimensions ?? d.dimensions, 1, MAX_HALFVEC_DIMENSIONS);
  const maxTokensPerRequest = wholeNumber('maxTokensPerRequest', input.maxTokensPerRequest ?? d.maxTokensPerRequest, 1, API_MAX_TOKENS_PER_REQUEST);
  const maxTokensPerInput = wholeNumber('maxTokensPerInput', input.maxTokensPerInput ?? d.maxTokensPerInput, 1, maxTokensPerRequest);
  const requestsPerMinute = input.requestsPerMinute === undefined ? undefined : wholeNumber('requestsPerMinute', input.requestsPerMinute, 1, 10_000_000);
  const tokensPerMinute =
    input.tokensPerMinute === undefined ? undefined : wholeNumber('tokensPerMinute', input.tokensPerMinute, maxTokensPerInput, 1_000_000_000);
  const model = input.model ?? d.model;
  if (typeof model !== 'string' || !/^[\w.:/@-]{1,200}$/.test(model)) throw new EmbeddingInputInvalid(`model=${JSON.stringify(model)} is not a model name`);
  const filter = input.filter ?? [];
  if (!Array.isArray(filter)) throw new EmbeddingInputInvalid(`filter must be a list of {column, op, value} conditions, got ${JSON.stringify(filter)}`);
  for (const condition of filter) {
    if (!condition || typeof condition !== 'object') throw new EmbeddingInputInvalid(`filter has ${JSON.stringify(condition)}, not a {column, op, value} condition`);
    identifier('filter.column', condition.column);
    if (!FILTER_OPS.includes(condition.op)) throw new EmbeddingInputInvalid(`filter.op=${JSON.stringify(condition.op)} must be one of ${FILTER_OPS.join(', ')}`);
    const needsValue = !condition.op.startsWith('is ');
    if (needsValue !== (condition.value !== undefined)) {
      throw new EmbeddingInputInvalid(`filter on ${condition.column}: "${condition.op}" ${needsValue ? 'needs' : 'takes no'} value`);
    }
  }
  const index = input.index === true ? {} : input.index || undefined;
  if (index?.maintenanceWorkMem !== undefined && !/^\d+\s*(kB|MB|GB)$/.test(index.maintenanceWorkMem)) {
    throw new EmbeddingInputInvalid(`index.maintenanceWorkMem=${JSON.stringify(index.maintenanceWorkMem)} must be a size such as "256MB"`);
  }
  if (index?.m !== undefined) wholeNumber('index.m', index.m, 2, 100);
  if (index?.efConstruction !== undefined) wholeNumber('index.efConstruction', index.efConstruction, 4, 1_000);
  return {
    target,
    schema: identifier('schema', input.schema ?? d.schema),
    table: identifier('table', input.table ?? d.table),
    keyColumn: identifier('keyColumn', input.keyColumn ?? d.keyColumn),
    textColumns: textColumns.map((column, i) => identifier(`textColumns[${i}]`, column)),
    embeddingColumn: identifier('embeddingColumn', input.embeddingColumn ?? d.embeddingColumn),
    model,
    dimensions,
    batchSize: wholeNumber('batchSize', input.batchSize ?? d.batchSize, 1, API_MAX_INPUTS_PER_REQUEST),
    requestsPerBatch: wholeNumber('requestsPerBatch', input.requestsPerBatch ?? d.requestsPerBatch, 1, 64),
    maxTokensPerRequest,
    maxTokensPerInput,
    filter,
    maxErrors: wholeNumber('maxErrors', input.maxErrors ?? d.maxErrors, 0, 100_000_000),
    batchesInFlight: wholeNumber('batchesInFlight', input.batchesInFlight ?? d.batchesInFlight, 1, 64),
    requestsPerMinute,
    tokensPerMinute,
    batchesPerRun: wholeNumber('batchesPerRun', input.batchesPerRun ?? d.batchesPerRun, 1, 10_000),
    requestTimeoutMs: wholeNumber('requestTimeoutMs', input.requestTimeoutMs ?? d.requestTimeoutMs, 100, 600_000),
    index,
    heartbeatTimeout: duration('heartbeatTimeout', input.heartbeatTimeout ?? d.heartbeatTimeout),
  };
}

/** One workflow id per table and column, so a second start attaches to the running backfill. */
export function embeddingBackfillId(spec: Pick<EmbeddingBackfillSpec, 'target' | 'schema' | 'table' | 'embeddingColumn'>): string {
  return `embedding-backfill-${spec.target}-${spec.schema}.${spec.table}.${spec.embeddingColumn}`;
}

/** A duration as Temporal reads it, checked here: a bad one would otherwise fail only at the first activity, after prepare changed the table. */
function duration(name: string, value: string): string {
  if (typeof value !== 'string' || !isDuration(value)) throw new EmbeddingInputInvalid(`${name}=${JSON.stringify(value)} must be a duration such as "30 seconds"`);
  return value;
}
