// The embeddings API through the official `openai` client: OpenAI itself, or any compatible server
// (Azure OpenAI's v1 endpoint, Ollama, vLLM) at PGOPS_OPENAI_BASE_URL. The key comes from the
// worker's environment only.
import { ApplicationFailure } from '@temporalio/common';
import OpenAI, { APIConnectionError, APIError, AuthenticationError, BadRequestError, NotFoundError, PermissionDeniedError, RateLimitError } from 'openai';
import type { WorkerConfig } from '../../config';
import type { RateLimitHint } from '../../embeddingTypes';

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

export function rateLimitHint(headers: Headers | undefined): RateLimitHint {
  const resets = [parseResetDuration(headers?.get('x-ratelimit-reset-requests')), parseResetDuration(headers?.get('x-ratelimit-reset-tokens'))];
  const known = resets.filter((ms): ms is number => ms !== undefined);
  return {
    remainingRequests: numberHeader(headers, 'x-ratelimit-remaining-requests'),
    remainingTokens: numberHeader(headers, 'x-ratelimit-remaining-tokens'),
    resetMs: known.length ? Math.max(...known) : undefined,
  };
}

/** How long a 429 asks us to wait: retry-after-ms, retry-after (seconds or a date), else the reset headers. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number {
  const ms = numberHeader(headers, 'retry-after-ms');
  if (ms !== undefined) return ms;
  const after = headers?.get('retry-after');
  if (after) {
    if (/^\d+(\.\d+)?$/.test(after)) return Number(after) * 1_000;
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
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

function decodeVector(embedding: string | number[], dimensions: number, model: string): Float32Array {
  const vector =
    typeof embedding === 'string'
      ? (() => {
          const bytes = Buffer.from(embedding, 'base64');
          // A view when the bytes are 4-aligned (a buffer this size has its own memory), else a copy.
          if (bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
          return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
        })()
      : Float32Array.from(embedding);
  if (vector.length !== dimensions) {
    throw ApplicationFailure.nonRetryable(
      `model ${model} returned ${vector.length}-dimensional vectors, but the column holds ${dimensions}; ` +
        `the model may not support the dimensions parameter, so pass dimensions: ${vector.length}`,
      'EmbeddingDimensionMismatch',
    );
  }
  return vector;
}

/** One API request. Throws RateLimited on 429, InputRejected on 400, and Temporal failures otherwise. */
export async function requestEmbeddings(
  openai: OpenAI,
  config: WorkerConfig,
  request: { model: string; dimensions: number; texts: string[] },
): Promise<EmbeddingsResponse> {
  try {
    const { data: body, response } = await openai.embeddings
      .create({ model: request.model, input: request.texts, dimensions: request.dimensions, encoding_format: 'base64' })
      .withResponse();
    if (body.data.length !== request.texts.length) {
      throw ApplicationFailure.retryable(`the embeddings API returned ${body.data.length} vectors for ${request.texts.length} inputs`, 'EmbeddingApiUnavailable');
    }
    const vectors = new Array<Float32Array>(request.texts.length);
    for (const item of body.data) vectors[item.index] = decodeVector(item.embedding as unknown as string | number[], request.dimensions, request.model);
    return { vectors, tokens: body.usage?.prompt_tokens ?? 0, rateLimit: rateLimitHint(response.headers) };
  } catch (err) {
    throw explain(err, config, request.model);
  }
}

function explain(err: unknown, config: WorkerConfig, model: string): Error {
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
  // Timeouts, refused connections and 5xx: the service is having a moment, Temporal retries.
  if (err instanceof APIConnectionError || err instanceof APIError) {
    return ApplicationFailure.retryable(`the embeddings API at ${where} failed: ${err.message}`, 'EmbeddingApiUnavailable');
  }
  return err instanceof Error ? err : new Error(String(err));
}
