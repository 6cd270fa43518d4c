// The embeddings API through the official `openai` client: OpenAI itself, or any compatible server
// (Azure OpenAI's v1 endpoint, Ollama, vLLM) at PGOPS_OPENAI_BASE_URL. The key comes from the
// worker's environment only.
import { ApplicationFailure } from '@temporalio/common';
import OpenAI, { APIConnectionError, APIError, AuthenticationError, BadRequestError, NotFoundError, PermissionDeniedError, RateLimitError } from 'openai';
import type { WorkerConfig } from '../../shared/config';
import type { RateLimitHint } from '../contract';

export function createEmbeddingsClient(config: WorkerConfig, timeoutMs: number): OpenAI {
  if (!config.openai.apiKey) {
    throw ApplicationFailure.nonRetryable(
      'PGOPS_OPENAI_API_KEY is not set in the worker\'s environment: the embeddings API needs a key (local servers such as Ollama accept any value)',
      'EmbeddingApiKeyMissing',
    );
  }
  // Retries are ours: 429s wait inside the activity as the server asks, other failures go to
  // Temporal's retry policy, so the client itself never retries behind our back.
  return new OpenAI({ apiKey: config.openai.apiKey, baseURL: config.openai.baseUrl, timeout: timeoutMs, maxRetries: 0 });
}

export function apiLocation(config: WorkerConfig): string {
  return config.openai.baseUrl ?? 'https://api.openai.com/v1';
}

export interface EmbeddingsResponse {
  vectors: Float32Array[];
  tokens: number;
  rateLimit: RateLimitHint;
}

/** "1s", "6m0s", "20ms", "0.5s" (OpenAI's x-ratelimit-reset-* format) -> ms. */
export function parseResetDuration(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  let ms = 0;
  let matched = false;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    matched = true;
    ms += Number(amount) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  }
  return matched ? Math.ceil(ms) : undefined;
}

function numberHeader(headers: Headers | undefined, name: string): number | undefined {
  const value = headers?.get(name);
  return value === null || value === undefined || value === '' || Number.isNaN(Number(value)) ? undefined : Number(value);
}

/**
 * The longest wait a server's pacing headers may impose. A broken or hostile server could
 * otherwise park a batch (or the whole backfill) for hours; after this the request is simply
 * tried again, and a still-limited answer asks again.
 */
export const MAX_SERVER_WAIT_MS = 60_000;

const boundedWait = (ms: number) => Math.min(Math.max(0, ms), MAX_SERVER_WAIT_MS);

export function rateLimitHint(headers: Headers | undefined): RateLimitHint {
  const resets = [parseResetDuration(headers?.get('x-ratelimit-reset-requests')), parseResetDuration(headers?.get('x-ratelimit-reset-tokens'))];
  const known = resets.filter((ms): ms is number => ms !== undefined);
  return {
    remainingRequests: numberHeader(headers, 'x-ratelimit-remaining-requests'),
    remainingTokens: numberHeader(headers, 'x-ratelimit-remaining-tokens'),
    resetMs: known.length ? boundedWait(Math.max(...known)) : undefined,
  };
}

/** How long a 429 asks us to wait: retry-after-ms, retry-after (seconds or a date), else the reset headers. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number {
  return boundedWait(askedWaitMs(headers, now));
}

function askedWaitMs(headers: Headers | undefined, now: number): number {
  const ms = numberHeader(headers, 'retry-after-ms');
  if (ms !== undefined) return ms;
  const after = headers?.get('retry-after');
  if (after) {
    if (/^\d+(\.\d+)?$/.test(after)) return Number(after) * 1_000;
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return date - now;
  }
  return rateLimitHint(headers).resetMs ?? 1_000;
}

/** A 429 with the wait the server asked for. */
export class RateLimited extends Error {
  constructor(readonly waitMs: number) {
    super(`rate limited; retry after ${waitMs} ms`);
  }
}

/** A request the API refused because of what we sent (an input over the model's limit): split it. */
export class InputRejected extends Error {}

/** A vector as the body carried it: base64 (cut out of the body already), a base64 string, or floats. */
type RawVector = Buffer | string | number[];

function decodeVector(embedding: RawVector, dimensions: number, model: string): Float32Array {
  let vector: Float32Array;
  if (Array.isArray(embedding)) vector = Float32Array.from(embedding);
  else {
    const bytes = typeof embedding === 'string' ? Buffer.from(embedding, 'base64') : embedding;
    // A view when the bytes are 4-aligned (a buffer this size has its own memory), else a copy.
    vector =
      bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0
        ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
        : new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  }
  if (vector.length !== dimensions) {
    throw ApplicationFailure.nonRetryable(
      `model ${model} returned ${vector.length}-dimensional vectors, but the column holds ${dimensions}; ` +
        `the model may not support the dimensions parameter, so pass dimensions: ${vector.length}`,
      'EmbeddingDimensionMismatch',
    );
  }
  return vector;
}

interface EmbeddingsBody {
  /** `embedding` is the ordinal of a vector cut out of the body (see parseEmbeddingsBody), or as sent. */
  data: { index: number; embedding: number | string | number[] }[];
  usage?: { prompt_tokens?: number };
}

const EMBEDDING_FIELD = Buffer.from('"embedding":"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The body with its vectors cut out before JSON.parse: each `"embedding":"<base64>"` is decoded
 * straight from the bytes and replaced by its ordinal, so JSON.parse reads only the small rest
 * (and still checks the shape and gives each vector's index). Decoding 8 KB of UTF-8 and parsing
 * it as a JSON string per 1536-d vector cost the worker more than a second of CPU per 100k rows.
 * A field written another way (spaces, an escaped "\/") is left to JSON.parse as it is. The cuts
 * fall on ASCII quotes, so no UTF-8 character is split.
 */
export function parseEmbeddingsBody(bytes: Buffer): { body: EmbeddingsBody; vectors: Buffer[] } {
  const vectors: Buffer[] = [];
  let rest = '';
  let from = 0;
  for (let at = bytes.indexOf(EMBEDDING_FIELD); at >= 0; at = bytes.indexOf(EMBEDDING_FIELD, from)) {
    const start = at + EMBEDDING_FIELD.length;
    const end = bytes.indexOf(QUOTE, start);
    if (end < 0) break;
    if (bytes.subarray(start, end).includes(BACKSLASH)) {
      rest += bytes.toString('utf8', from, end + 1);
    } else {
      rest += `${bytes.toString('utf8', from, at)}"embedding":${vectors.length}`;
      vectors.push(Buffer.from(bytes.toString('latin1', start, end), 'base64'));
    }
    from = end + 1;
  }
  rest += bytes.toString('utf8', from);
  return { body: JSON.parse(rest) as EmbeddingsBody, vectors };
}

/**
 * The most bytes an answer to `request` may take: every value as a float written out in JSON
 * (base64 needs 5.4 bytes a value), 1 KiB of framing a vector and 64 KiB besides. Anything longer
 * is not an answer, and reading it whole could exhaust the worker's memory.
 */
export function maxAnswerBytes(request: { dimensions: number; texts: string[] }): number {
  return 64 * 1024 + request.texts.length * (1024 + request.dimensions * 32);
}

/** The whole body, or undefined (and the connection given up) once it passes `limit` bytes. */
export async function readAtMost(response: Response, limit: number): Promise<Buffer | undefined> {
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    size += read.value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(read.value);
  }
  return Buffer.concat(chunks, size);
}

async function readEmbeddingsBody(
  response: Response,
  config: WorkerConfig,
  request: { dimensions: number; texts: string[] },
): Promise<{ body: EmbeddingsBody; vectors: Buffer[] }> {
  const limit = maxAnswerBytes(request);
  const bytes = await readAtMost(response, limit);
  if (!bytes) {
    throw ApplicationFailure.retryable(
      `the embeddings API at ${apiLocation(config)} sent more than ${limit} bytes for ${request.texts.length} vectors of ${request.dimensions} dimensions; stopped reading it`,
      'EmbeddingApiUnavailable',
    );
  }
  let parsed: { body: EmbeddingsBody; vectors: Buffer[] } | undefined;
  try {
    parsed = parseEmbeddingsBody(bytes);
  } catch {
    // not JSON: said below
  }
  if (!parsed || !Array.isArray(parsed.body?.data)) {
    throw ApplicationFailure.retryable(
      `the embeddings API at ${apiLocation(config)} answered ${response.status} with a body that is not an embeddings list: ${bytes.subarray(0, 200).toString('utf8')}`,
      'EmbeddingApiUnavailable',
    );
  }
  return parsed;
}

/** One decoded vector per input, placed by the `index` the API gave it: none missing, none twice. */
function vectorsInInputOrder(body: EmbeddingsBody, cut: Buffer[], request: { model: string; dimensions: number; texts: string[] }): Float32Array[] {
  if (body.data.length !== request.texts.length) {
    throw ApplicationFailure.retryable(`the embeddings API returned ${body.data.length} vectors for ${request.texts.length} inputs`, 'EmbeddingApiUnavailable');
  }
  const vectors = new Array<Float32Array>(request.texts.length);
  for (const item of body.data) {
    if (!Number.isInteger(item?.index) || item.index < 0 || item.index >= vectors.length || vectors[item.index]) {
      throw ApplicationFailure.retryable(
        `the embeddings API returned a vector for input ${item?.index}, which is not one of the request's ${vectors.length} or came twice`,
        'EmbeddingApiUnavailable',
      );
    }
    const raw = typeof item.embedding === 'number' ? cut[item.embedding] : item.embedding;
    if (raw === undefined || raw === null) {
      throw ApplicationFailure.retryable(`the embeddings API returned no vector for input ${item.index}`, 'EmbeddingApiUnavailable');
    }
    vectors[item.index] = decodeVector(raw, request.dimensions, request.model);
  }
  return vectors;
}

/** One API request. Throws RateLimited on 429, InputRejected on 400, and Temporal failures otherwise. */
export async function requestEmbeddings(
  openai: OpenAI,
  config: WorkerConfig,
  request: { model: string; dimensions: number; texts: string[] },
): Promise<EmbeddingsResponse> {
  // The client's own timeout ends once the headers are in; this deadline also bounds the body.
  const deadline = AbortSignal.timeout(openai.timeout);
  try {
    const response = await openai.embeddings
      .create({ model: request.model, input: request.texts, dimensions: request.dimensions, encoding_format: 'base64' }, { signal: deadline })
      .asResponse();
    const { body, vectors: cut } = await readEmbeddingsBody(response, config, request);
    return { vectors: vectorsInInputOrder(body, cut, request), tokens: body.usage?.prompt_tokens ?? 0, rateLimit: rateLimitHint(response.headers) };
  } catch (err) {
    throw explain(err, config, request.model, deadline.aborted);
  }
}

function explain(err: unknown, config: WorkerConfig, model: string, timedOut: boolean): Error {
  const where = apiLocation(config);
  if (err instanceof RateLimitError) return new RateLimited(retryAfterMs(err.headers));
  if (err instanceof AuthenticationError || err instanceof PermissionDeniedError) {
    return ApplicationFailure.nonRetryable(
      `the embeddings API at ${where} refused PGOPS_OPENAI_API_KEY (${err.status}): ${err.message}`,
      'EmbeddingApiAuthFailed',
    );
  }
  if (err instanceof NotFoundError) {
    return ApplicationFailure.nonRetryable(`the embeddings API at ${where} does not know model ${model} (404): ${err.message}`, 'EmbeddingModelUnknown');
  }
  if (err instanceof BadRequestError) return new InputRejected(err.message);
  if (timedOut) {
    return ApplicationFailure.retryable(`the embeddings API at ${where} did not finish its answer within the request timeout`, 'EmbeddingApiUnavailable');
  }
  // Timeouts, refused connections and 5xx: the service is having a moment, Temporal retries.
  if (err instanceof APIConnectionError || err instanceof APIError) {
    return ApplicationFailure.retryable(`the embeddings API at ${where} failed: ${err.message}`, 'EmbeddingApiUnavailable');
  }
  return err instanceof Error ? err : new Error(String(err));
}
