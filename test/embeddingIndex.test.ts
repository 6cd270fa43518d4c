// The HNSW index step builds and rebuilds only the index of the table it embeds: an index of the
// same name on another table of the schema is someone else's and survives a rebuild.
import { WorkflowFailedError } from '@temporalio/client';
import { startEmbeddingBackfill } from '../src/client';
import { createEmbeddingFixture, type EmbeddingFixture } from './support/embeddingFixture';
import { withWorker } from './support/stack';

let fixture: EmbeddingFixture;

beforeAll(async () => {
  fixture = await createEmbeddingFixture(50);
}, 60_000);

afterAll(async () => {
  await fixture?.cleanup();
});

test('a rebuild refuses, naming the other table, when the index name belongs to another table, and drops nothing', async () => {
  // questions_embedding_idx_hnsw is the name the backfill of questions.embedding_idx gives its index.
  await fixture.db.query('CREATE TABLE questions_archive (id bigint PRIMARY KEY, score int)');
  await fixture.db.query('CREATE INDEX questions_embedding_idx_hnsw ON questions_archive (score)');
  const failure = await withWorker(fixture.config, async ({ client, taskQueue }) =>
    (
      await startEmbeddingBackfill(client, { taskQueue }, { target: fixture.targetName, embeddingColumn: 'embedding_idx', dimensions: 8, index: { rebuild: true } })
    )
      .result()
      .then(() => undefined, (err: unknown) => err),
  );
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause?.message).toMatch(
    /public\.questions_embedding_idx_hnsw, the name of the HNSW index of public\.questions\.embedding_idx, is taken by an index of questions_archive; rename that one/,
  );
  const { rows } = await fixture.db.query(`SELECT indrelid::regclass::text AS owner FROM pg_index WHERE indexrelid = 'questions_embedding_idx_hnsw'::regclass`);
  expect(rows).toEqual([{ owner: 'questions_archive' }]);
}, 90_000);
