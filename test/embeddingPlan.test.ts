// How the backfill sizes its API requests and reads the API's pacing headers, and how the local
// API writes its responses: pure functions, so these run without the stack.
import { cutIntoBatches } from '../src/embeddings/activities/planEmbeddingBatches';
import { parseEmbeddingsBody, parseResetDuration, rateLimitHint, retryAfterMs } from '../src/embeddings/activities/embeddingsApi';
import { estimateTokens, resolveEmbeddingBackfill, EmbeddingInputInvalid } from '../src/embeddings/defaults';
import { base64EmbeddingsBody, fakeEmbedding } from '../src/dev/fakeEmbeddingsServer';

const rows = (bytes: number[]) => bytes.map((b, i) => ({ key: String(i + 1), bytes: b }));

describe('cutting rows into API requests', () => {
  test('no request carries more than batchSize inputs or maxTokensPerRequest estimated tokens', () => {
    const spec = resolveEmbeddingBackfill({ batchSize: 3, requestsPerBatch: 1, maxTokensPerRequest: 1_000, maxTokensPerInput: 900 });
    const sizes = [100, 1_200, 600, 1_790, 40, 40, 40, 40, 1_000, 1_000];
    const batches = cutIntoBatches(rows(sizes), spec, '0');
    for (const batch of batches) {
      expect(batch.rows).toBeLessThanOrEqual(3);
      expect(batch.estimatedTokens).toBeLessThanOrEqual(1_000);
      expect(batch.requests).toBe(1);
    }
    // Consecutive key ranges that cover every row once: (0,1] (1,2] ...
    expect(batches[0].afterKey).toBe('0');
    batches.slice(1).forEach((b, i) => expect(b.afterKey).toBe(batches[i].lastKey));
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(sizes.length);
    expect(batches[batches.length - 1].lastKey).toBe(String(sizes.length));
  });

  test('a row over the model limit costs nothing: it never reaches the API, so it cannot overflow a request', () => {
    const spec = resolveEmbeddingBackfill({ batchSize: 10, maxTokensPerRequest: 1_000, maxTokensPerInput: 900 });
    const [batch] = cutIntoBatches(rows([100, 50_000, 100]), spec);
    expect(batch).toMatchObject({ rows: 3, estimatedTokens: 2 * estimateTokens(100), requests: 1 });
  });

  test('requestsPerBatch groups requests into one batch and counts them for the request budget', () => {
    const spec = resolveEmbeddingBackfill({ batchSize: 2, requestsPerBatch: 3 });
    const batches = cutIntoBatches(rows(Array(13).fill(10)), spec);
    expect(batches.map((b) => [b.rows, b.requests])).toEqual([
      [6, 3],
      [6, 3],
      [1, 1],
    ]);
  });

  test('the token estimate is half the UTF-8 length, rounded up', () => {
    expect(estimateTokens(Buffer.byteLength('교착 상태'))).toBe(7);
    expect(estimateTokens(Buffer.byteLength('deadlock'))).toBe(4);
  });
});

describe('input that cannot be a backfill', () => {
  test.each([
    [{ batchSize: 4_096 }, /batchSize=4096 must be a whole number from 1 to 2048/],
    [{ dimensions: 0 }, /dimensions=0/],
    [{ table: 'questions"; DROP TABLE users; --' }, /is not a table or column name/],
    [{ filter: [{ column: 'difficulty', op: 'like' as never, value: 1 }] }, /filter\.op="like" must be one of/],
    [{ filter: [{ column: 'difficulty', op: 'is null' as const, value: 1 }] }, /"is null" takes no value/],
    [{ index: { maintenanceWorkMem: '1; DROP' } }, /maintenanceWorkMem/],
    [{ tokensPerMinute: 100 }, /tokensPerMinute=100 must be a whole number from 8192/],
  ])('%j', (input, message) => {
    expect(() => resolveEmbeddingBackfill(input)).toThrow(EmbeddingInputInvalid);
    expect(() => resolveEmbeddingBackfill(input)).toThrow(message);
  });
});

describe('the API pacing headers', () => {
  const headers = (h: Record<string, string>) => new Headers(h);

  test('retry-after-ms first, then retry-after in seconds or as a date, then the reset headers', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '250', 'retry-after': '9' }))).toBe(250);
    expect(retryAfterMs(headers({ 'retry-after': '2' }))).toBe(2_000);
    expect(retryAfterMs(headers({ 'retry-after': new Date(10_000).toUTCString() }), 7_000)).toBe(3_000);
    expect(retryAfterMs(headers({ 'x-ratelimit-reset-requests': '0m30.5s', 'x-ratelimit-reset-tokens': '20ms' }))).toBe(30_500);
    expect(retryAfterMs(headers({}))).toBe(1_000);
  });

  test('x-ratelimit-* tell how much is left and when it resets', () => {
    expect(parseResetDuration('6m0s')).toBe(360_000);
    expect(parseResetDuration('nonsense')).toBeUndefined();
    expect(rateLimitHint(headers({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-remaining-tokens': '149000', 'x-ratelimit-reset-requests': '1s' }))).toEqual({
      remainingRequests: 0,
      remainingTokens: 149_000,
      resetMs: 1_000,
    });
  });

  test('no header can make us wait more than a minute, or less than nothing', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '86400000' }))).toBe(60_000);
    expect(retryAfterMs(headers({ 'retry-after': '3600' }))).toBe(60_000);
    expect(retryAfterMs(headers({ 'retry-after': new Date(7_000 + 3_600_000).toUTCString() }), 7_000)).toBe(60_000);
    expect(retryAfterMs(headers({ 'x-ratelimit-reset-requests': '6h' }))).toBe(60_000);
    expect(retryAfterMs(headers({ 'retry-after-ms': '-5000' }))).toBe(0);
    expect(rateLimitHint(headers({ 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '2h30m' })).resetMs).toBe(60_000);
  });
});

/** Vectors of mixed-language texts (one empty) and a model name that JSON must escape. */
const sample = {
  vectors: ['deadlock', '교착 상태', ''].map((text) => fakeEmbedding(text, 8)),
  model: 'model "ü"',
  usage: { prompt_tokens: 7, total_tokens: 7 },
};
const floats = (bytes: Buffer) => Array.from(new Float32Array(new Uint8Array(bytes).buffer));

describe('the local API\'s base64 response body', () => {
  test('is the JSON that JSON.stringify would give, vectors intact', () => {
    const { vectors, model, usage } = sample;
    const body = base64EmbeddingsBody(vectors, model, usage);
    const expected = {
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: Buffer.from(v.buffer).toString('base64') })),
      model,
      usage,
    };
    expect(body.toString('utf8')).toBe(JSON.stringify(expected));
    const decoded = (JSON.parse(body.toString('utf8')) as typeof expected).data.map((d) => floats(Buffer.from(d.embedding, 'base64')));
    expect(decoded).toEqual(vectors.map((v) => Array.from(v)));
  });
});

describe('reading the API\'s response', () => {
  test('base64 vectors are cut out of the body and the rest parses as the JSON it was', () => {
    const { vectors, model, usage } = sample;
    const { body, vectors: cut } = parseEmbeddingsBody(base64EmbeddingsBody(vectors, model, usage));
    expect(body).toEqual({ object: 'list', data: vectors.map((_, index) => ({ object: 'embedding', index, embedding: index })), model, usage });
    expect(cut.map(floats)).toEqual(vectors.map((v) => Array.from(v)));
  });

  test('fields written another way are left to JSON.parse: escaped slashes, spaces, float arrays', () => {
    const text = '{"data":[{"index":0,"embedding":"\\/\\/\\/\\/AAAA"},{"embedding": "AACAPw==","index":1},{"index":2,"embedding":[0.5,1]}]}';
    const { body, vectors: cut } = parseEmbeddingsBody(Buffer.from(text));
    expect(cut).toEqual([]);
    expect(body.data.map((d) => d.embedding)).toEqual(['////AAAA', 'AACAPw==', [0.5, 1]]);
  });

  test('a body that is not JSON throws', () => {
    expect(() => parseEmbeddingsBody(Buffer.from('<html>502 Bad Gateway</html>'))).toThrow();
  });
});
