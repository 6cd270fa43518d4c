// A local OpenAI-compatible /v1/embeddings server for tests, benchmarks and the demo: the real
// OpenAI cannot be reached from here. Vectors are derived from the text alone (SHA-256 seeds a
// PRNG, then the vector is normalised), so anyone can recompute what a row must hold. Latency,
// 429s with Retry-After, 500s, timeouts and answers stalled mid-body can be injected; counters
// tell tests what was sent.
//
//   npx tsx src/dev/fakeEmbeddingsServer.ts [--port 8089] [--latency-ms 0]
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

export type Fault =
  | { kind: '429'; retryAfterMs: number }
  | { kind: '500' }
  /** The answer is held back whole for holdMs. */
  | { kind: 'timeout'; holdMs: number }
  /** Headers and half the body go out, then the rest holdMs later. */
  | { kind: 'stall'; holdMs: number }
  /** A good answer padded with whitespace to `bytes`, streamed without a content-length. */
  | { kind: 'oversize'; bytes: number };

export interface ServedRequest {
  at: number;
  status: number;
  inputs: number;
  tokens: number;
  /** Set once an oversize answer ends: whether the client hung up before all of it was written. */
  cutShort?: boolean;
}

export interface FakeEmbeddingsServer {
  /** Base URL for the openai client, ending in /v1. */
  url: string;
  /** Added before every response. */
  latencyMs: number;
  /** Faults for the next requests, one per request, in order. */
  inject(...faults: Fault[]): void;
  /** Decides a fault for each request; consulted when no injected fault is queued. */
  faultPlan?: (requestNumber: number) => Fault | undefined;
  /** Every request, in arrival order. */
  log: ServedRequest[];
  /** How many times each text was embedded and answered with 200. */
  embeddedCount: Map<string, number>;
  /** The most requests that were being answered at the same time. */
  maxConcurrent: number;
  reset(): void;
  close(): Promise<void>;
}

/** The fake's token count: about 4 bytes a token, like English under cl100k. */
export function fakeTokenCount(text: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text) / 4));
}
const MAX_INPUT_TOKENS = 8_192;
/** Like OpenAI's, these refuse every request that passes `dimensions`, whatever its input. */
const MODELS_WITHOUT_DIMENSIONS = ['text-embedding-ada-002'];

/** The vector the fake returns for `text`: unit length, a pure function of text and dimensions. */
export function fakeEmbedding(text: string, dimensions: number): Float32Array {
  const seed = createHash('sha256').update(text).digest();
  // sfc32, seeded with 128 bits of the hash: fast, and plenty for test vectors.
  let a = seed.readUInt32LE(0);
  let b = seed.readUInt32LE(4);
  let c = seed.readUInt32LE(8);
  let d = seed.readUInt32LE(12);
  const vector = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    const x = (t >>> 0) / 4_294_967_296 - 0.5;
    vector[i] = x;
    norm += x * x;
  }
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < dimensions; i++) vector[i] *= scale;
  return vector;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const apiError = (message: string, type: string) => ({ error: { message, type, param: null, code: null } });

/**
 * The 200 body for encoding_format "base64", written straight into one buffer. JSON.stringify and
 * then UTF-8 encoding megabytes of base64 cost this process ~6 CPU-s per 100k vectors, on the
 * cores the benchmark measures the backfill on; a real API spends that on its own machines.
 */
export function base64EmbeddingsBody(vectors: Float32Array[], model: string, usage: { prompt_tokens: number; total_tokens: number }): Buffer {
  const encoded = vectors.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'));
  const prefixes = encoded.map((_, index) => `${index ? ',' : ''}{"object":"embedding","index":${index},"embedding":"`);
  const head = '{"object":"list","data":[';
  const tail = `],"model":${JSON.stringify(model)},"usage":${JSON.stringify(usage)}}`;
  let size = Buffer.byteLength(head) + Buffer.byteLength(tail);
  for (let i = 0; i < encoded.length; i++) size += prefixes[i].length + encoded[i].length + 2;
  const body = Buffer.allocUnsafe(size);
  let at = body.write(head, 0);
  for (let i = 0; i < encoded.length; i++) {
    // base64 and the prefixes are ASCII: latin1 copies them byte for byte.
    at += body.write(prefixes[i], at, 'latin1');
    at += body.write(encoded[i], at, 'latin1');
    at += body.write('"}', at, 'latin1');
  }
  at += body.write(tail, at);
  return body.subarray(0, at);
}

/** Resolves when `res` can take more, or when the client has gone. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Spaces before the answer's closing brace keep it valid JSON of any length, at no cost to build. */
async function sendPadded(res: ServerResponse, answer: Buffer, bytes: number, entry: ServedRequest): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write(answer.subarray(0, -1));
  const spaces = Buffer.alloc(64 * 1024, 0x20);
  for (let left = bytes - answer.length; left > 0 && !res.destroyed; left -= spaces.length) {
    if (!res.write(spaces.subarray(0, Math.min(left, spaces.length)))) await drainedOrClosed(res);
  }
  entry.cutShort = res.destroyed;
  if (!res.destroyed) res.end('}');
}

/** A held answer does not keep the process alive once the server is closed. */
const hold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

export async function startFakeEmbeddingsServer(options: { port?: number; latencyMs?: number } = {}): Promise<FakeEmbeddingsServer> {
  const queued: Fault[] = [];
  let concurrent = 0;
  const state: Omit<FakeEmbeddingsServer, 'url' | 'close'> = {
    latencyMs: options.latencyMs ?? 0,
    inject: (...faults) => queued.push(...faults),
    log: [],
    embeddedCount: new Map(),
    maxConcurrent: 0,
    reset() {
      queued.length = 0;
      state.log.length = 0;
      state.embeddedCount.clear();
      state.maxConcurrent = 0;
      state.faultPlan = undefined;
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    if (req.method !== 'POST' || !/\/embeddings$/.test(req.url ?? '')) return sendJson(res, 404, apiError(`no route ${req.method} ${req.url}`, 'invalid_request_error'));
    const entry: ServedRequest = { at: Date.now(), status: 0, inputs: 0, tokens: 0 };
    state.log.push(entry);
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) {
      entry.status = 401;
      return sendJson(res, 401, apiError('You didn\'t provide an API key.', 'invalid_request_error'));
    }
    const fault = queued.shift() ?? state.faultPlan?.(state.log.length);
    if (state.latencyMs > 0) await hold(state.latencyMs);
    if (fault?.kind === '429') {
      entry.status = 429;
      return sendJson(res, 429, apiError('Rate limit reached for requests', 'requests'), {
        'retry-after': String(Math.ceil(fault.retryAfterMs / 1000)),
        'retry-after-ms': String(fault.retryAfterMs),
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': `${fault.retryAfterMs}ms`,
      });
    }
    if (fault?.kind === '500') {
      entry.status = 500;
      return sendJson(res, 500, apiError('The server had an error while processing your request.', 'server_error'));
    }
    const request = JSON.parse(body) as { model: string; input: string | string[]; dimensions?: number; encoding_format?: 'float' | 'base64' };
    if (request.dimensions !== undefined && MODELS_WITHOUT_DIMENSIONS.includes(request.model)) {
      entry.status = 400;
      return sendJson(res, 400, apiError('This model does not support specifying dimensions.', 'invalid_request_error'));
    }
    const inputs = Array.isArray(request.input) ? request.input : [request.input];
    const dimensions = request.dimensions ?? 1536;
    const tooLong = inputs.findIndex((text) => fakeTokenCount(text) > MAX_INPUT_TOKENS);
    if (inputs.length === 0 || inputs.length > 2048 || tooLong >= 0 || inputs.some((text) => text === '')) {
      entry.status = 400;
      const message =
        tooLong >= 0
          ? `This model's maximum context length is ${MAX_INPUT_TOKENS} tokens, however you requested ${fakeTokenCount(inputs[tooLong])} tokens (input ${tooLong}).`
          : `'$.input' is invalid: ${inputs.length} inputs, or an empty string.`;
      return sendJson(res, 400, apiError(message, 'invalid_request_error'));
    }
    const tokens = inputs.reduce((sum, text) => sum + fakeTokenCount(text), 0);
    const vectors = inputs.map((text) => fakeEmbedding(text, dimensions));
    // The client may have given up on a held request; it was still answered, like a real server would.
    if (fault?.kind === 'timeout') await hold(fault.holdMs);
    entry.status = 200;
    entry.inputs = inputs.length;
    entry.tokens = tokens;
    for (const text of inputs) state.embeddedCount.set(text, (state.embeddedCount.get(text) ?? 0) + 1);
    if (res.destroyed) return;
    const usage = { prompt_tokens: tokens, total_tokens: tokens };
    const answer =
      request.encoding_format === 'base64'
        ? base64EmbeddingsBody(vectors, request.model, usage)
        : Buffer.from(JSON.stringify({ object: 'list', data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: Array.from(v) })), model: request.model, usage }));
    if (fault?.kind === 'oversize') return sendPadded(res, answer, fault.bytes, entry);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': answer.length,
      'x-ratelimit-limit-requests': '10000',
      'x-ratelimit-remaining-requests': '9999',
      'x-ratelimit-reset-requests': '6ms',
    });
    if (fault?.kind === 'stall') {
      res.write(answer.subarray(0, answer.length >> 1));
      await hold(fault.holdMs);
      if (res.destroyed) return;
      return void res.end(answer.subarray(answer.length >> 1));
    }
    res.end(answer);
  };

  const server = createServer((req, res) => {
    concurrent += 1;
    state.maxConcurrent = Math.max(state.maxConcurrent, concurrent);
    res.on('close', () => (concurrent -= 1));
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 500, apiError(err.message, 'server_error'));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

if (require.main === module) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8089' }, 'latency-ms': { type: 'string', default: '0' } } });
  startFakeEmbeddingsServer({ port: Number(values.port), latencyMs: Number(values['latency-ms']) }).then((server) => {
    console.log(`fake embeddings API at ${server.url} (PGOPS_OPENAI_BASE_URL=${server.url}, any PGOPS_OPENAI_API_KEY)`);
  });
}
