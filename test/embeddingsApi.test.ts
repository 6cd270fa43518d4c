// The official openai client over real HTTP against the local OpenAI-compatible server, without
// Temporal: what one request returns, and how long a misbehaving answer can hold it.
import type { WorkerConfig } from '../src/config';
import { createEmbeddingsClient, requestEmbeddings } from '../src/activities/embeddings/embeddingsApi';
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
