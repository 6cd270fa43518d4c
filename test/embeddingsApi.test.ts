// The official openai client over real HTTP against the local OpenAI-compatible server, without
// Temporal: what one request returns, how long and how large a misbehaving answer can be, and
// which API addresses the worker's configuration accepts.
import { ConfigError, loadOpenAi, type WorkerConfig } from '../src/shared/config';
import { createEmbeddingsClient, requestEmbeddings } from '../src/embeddings/activities/embeddingsApi';
import { fakeEmbedding, startFakeEmbeddingsServer, type FakeEmbeddingsServer } from '../src/dev/fakeEmbeddingsServer';

let server: FakeEmbeddingsServer;
let config: WorkerConfig;

beforeAll(async () => {
  server = await startFakeEmbeddingsServer();
  config = { openai: { apiKey: 'sk-test', baseUrl: server.url } } as WorkerConfig;
});

afterAll(() => server.close());

const texts = ['deadlock', '교착 상태', 'the TCP handshake'];

test('vectors come back in input order, as the server derived them', async () => {
  const response = await requestEmbeddings(createEmbeddingsClient(config, 5_000), config, { model: 'text-embedding-3-small', dimensions: 16, texts });
  expect(response.vectors.map((v) => Array.from(v))).toEqual(texts.map((t) => Array.from(fakeEmbedding(t, 16))));
  expect(response.tokens).toBeGreaterThan(0);
});

test('an answer stalled halfway through its body fails within the request timeout, as a retryable failure', async () => {
  server.inject({ kind: 'stall', holdMs: 5_000 });
  const started = Date.now();
  const failure = await requestEmbeddings(createEmbeddingsClient(config, 500), config, { model: 'text-embedding-3-small', dimensions: 1536, texts }).catch((err: unknown) => err);
  expect(Date.now() - started).toBeLessThan(3_000);
  expect(failure).toMatchObject({ type: 'EmbeddingApiUnavailable', nonRetryable: false });
  expect((failure as Error).message).toMatch(/did not finish its answer within the request timeout/);
});

test('an answer far longer than any list of the requested vectors fails as retryable, and is not read to its end', async () => {
  server.inject({ kind: 'oversize', bytes: 64 * 1024 * 1024 });
  const failure = await requestEmbeddings(createEmbeddingsClient(config, 5_000), config, { model: 'text-embedding-3-small', dimensions: 16, texts }).catch((err: unknown) => err);
  expect(failure).toMatchObject({ type: 'EmbeddingApiUnavailable', nonRetryable: false });
  expect((failure as Error).message).toMatch(/sent more than \d+ bytes for 3 vectors of 16 dimensions; stopped reading it/);
  const answered = server.log[server.log.length - 1];
  for (const until = Date.now() + 2_000; answered.cutShort === undefined && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(answered.cutShort).toBe(true);
});

describe('PGOPS_OPENAI_BASE_URL', () => {
  const baseUrl = (url: string) => loadOpenAi({ PGOPS_OPENAI_BASE_URL: url }).baseUrl;

  test.each(['https://api.openai.com/v1', 'https://llm.internal:8443/v1', 'http://127.0.0.1:8089/v1', 'http://127.8.9.10/v1', 'http://[::1]:11434/v1', 'http://localhost:11434/v1'])(
    '%s is accepted',
    (url) => expect(baseUrl(url)).toBe(url),
  );

  test.each(['http://api.openai.com/v1', 'http://10.0.0.7:8000/v1', 'http://localhost.example.com/v1', 'http://[::ffff:a00:7]/v1', 'ftp://127.0.0.1/v1'])(
    '%s is refused: the key and the text would cross the network in the clear',
    (url) => expect(() => baseUrl(url)).toThrow(new ConfigError(`PGOPS_OPENAI_BASE_URL=${url}: the API key and the rows' text must not cross the network unencrypted; use https://, or http:// only to this machine (127.0.0.0/8, ::1, localhost)`)),
  );

  test('a value that is not a URL is refused with the same advice', () => {
    expect(() => baseUrl('api.openai.com/v1')).toThrow(/PGOPS_OPENAI_BASE_URL=api.openai.com\/v1 is not a URL: use https:\/\//);
  });
});
