// The embedding backfill against the real stack and a local OpenAI-compatible server: every row
// ends with the vector of its current text, edits are re-embedded and nothing else is sent again,
// concurrent starts share one run, and bad input fails with one clear error having changed nothing.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import execa from 'execa';
import {
  EmbeddingInputInvalid,
  embeddingProgress,
  findDuplicateQuestion,
  findSimilarQuestions,
  pauseEmbeddingBackfill,
  resumeEmbeddingBackfill,
  startEmbeddingBackfill,
} from '../src/client';
import { fakeEmbedding } from '../src/dev/fakeEmbeddingsServer';
import type { EmbeddingBackfillInput } from '../src/embeddings/contract';
import { createEmbeddingFixture, insertQuestions, storedEmbeddings, wrongVectors, type EmbeddingFixture } from './support/embeddingFixture';
import { REPO_DIR, stackEnv, withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

let fixture: EmbeddingFixture;

beforeAll(async () => {
  fixture = await createEmbeddingFixture(1_500);
}, 60_000);

afterAll(async () => {
  await fixture?.cleanup();
});

function cosineDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return 1 - dot / Math.sqrt(na * nb);
}

/** The run's failure as the app sees it: the workflow's own message, or its activity's cause. */
async function failureOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof WorkflowFailedError) return `${err.cause?.message ?? ''} ${(err.cause?.cause as Error | undefined)?.message ?? ''}`;
    throw err;
  }
  throw new Error('expected the backfill to fail');
}

/** Every row but the two the model cannot take (blank, and ~16k tokens). */
const embeddable = (row: { content: string }) => row.content.trim() !== '' && !row.content.startsWith('Explain paging.');

async function errorRows(): Promise<{ row_key: string; reason: string }[]> {
  return (await fixture.db.query('SELECT row_key, reason FROM pgops_embedding_errors ORDER BY row_key::bigint')).rows;
}

describe('embeddingBackfill', () => {
  test('every row ends with the vector of its text in 1536 dimensions; bad rows go to the errors table', async () => {
    const { rows: bad } = await fixture.db.query<{ id: string }>(
      `INSERT INTO questions (content, type, answer, difficulty) VALUES ('   ', 'essay', 'a', 1), (repeat('Explain paging. ', 2000), 'essay', 'a', 1)
       RETURNING id::text AS id`,
    );
    const result = await withWorker(fixture.config, async ({ client, taskQueue }) => {
      const handle = await startEmbeddingBackfill(client, { taskQueue }, { target: fixture.targetName, batchSize: 200 });
      return handle.result();
    });
    expect(result.progress).toMatchObject({ stage: 'done', done: 1_500, errors: 2, total: 1_502 });

    const rows = await storedEmbeddings(fixture.db);
    const good = rows.filter((r) => !bad.some((b) => b.id === r.id));
    expect(good).toHaveLength(1_500);
    expect(wrongVectors(good, 1536)).toEqual([]);
    expect(new Set(good.map((r) => r.model))).toEqual(new Set(['text-embedding-3-small']));
    expect(rows.filter((r) => bad.some((b) => b.id === r.id)).map((r) => r.embedding)).toEqual([null, null]);
    const errors = await errorRows();
    expect(errors.map((e) => e.row_key)).toEqual(bad.map((b) => b.id));
    expect(errors[0].reason).toBe('empty text');
    expect(errors[1].reason).toMatch(/over the model's limit of 8192 tokens/);
    // No request ever carried a row the model would refuse.
    expect(fixture.server.log.every((r) => r.status === 200)).toBe(true);
  }, 120_000);

  test('findSimilarQuestions orders by cosine distance; findDuplicateQuestion finds the same question and nothing for a new one', async () => {
    const rows = (await storedEmbeddings(fixture.db)).filter((r) => r.embedding);
    expect(rows).toHaveLength(1_500);
    const source = rows[41];
    const similar = await findSimilarQuestions(fixture.db, source.id, { limit: 5 });
    const expected = rows
      .filter((r) => r.id !== source.id)
      .map((r) => ({ id: r.id, distance: cosineDistance(source.embedding!, r.embedding!) }))
      .sort((a, b) => a.distance - b.distance)
      .slice(0, 5);
    expect(similar.map((s) => s.id)).toEqual(expected.map((e) => e.id));
    similar.forEach((s, i) => expect(s.distance).toBeCloseTo(expected[i].distance, 4));

    const duplicate = await findDuplicateQuestion(fixture.db, fakeEmbedding(source.content, 1536));
    expect(duplicate).toMatchObject({ id: source.id, content: source.content });
    expect(duplicate!.distance).toBeLessThan(1e-6);
    expect(await findDuplicateQuestion(fixture.db, fakeEmbedding('What is a monad, in one sentence?', 1536))).toBeUndefined();
  }, 60_000);

  test('the HNSW cosine index is built concurrently after the backfill, and the duplicate check uses it', async () => {
    const result = await withWorker(fixture.config, async ({ client, taskQueue }) =>
      (await startEmbeddingBackfill(client, { taskQueue }, { target: fixture.targetName, index: { maintenanceWorkMem: '128MB' } })).result(),
    );
    expect(result.indexBuilt?.name).toBe('questions_embedding_hnsw');
    const { rows: index } = await fixture.db.query<{ valid: boolean; definition: string }>(
      `SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i WHERE i.indexrelid = 'questions_embedding_hnsw'::regclass`,
    );
    expect(index).toEqual([{ valid: true, definition: expect.stringMatching(/USING hnsw \(embedding vector_cosine_ops\)/) }]);
    // With the index in place the planner serves the nearest-neighbour query from it.
    const source = (await storedEmbeddings(fixture.db)).find((r) => r.embedding)!;
    await fixture.db.query('BEGIN');
    try {
      await fixture.db.query('SET LOCAL enable_seqscan = off');
      const plan = await fixture.db.query(`EXPLAIN SELECT id FROM questions ORDER BY embedding <=> (SELECT embedding FROM questions WHERE id = $1) LIMIT 5`, [source.id]);
      expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toContain('Index Scan using questions_embedding_hnsw');
      expect(await findDuplicateQuestion(fixture.db, fakeEmbedding(source.content, 1536))).toMatchObject({ id: source.id });
    } finally {
      await fixture.db.query('ROLLBACK');
    }
  }, 120_000);

  test('text edited mid-run is re-embedded; pause holds new batches; a second run sends nothing', async () => {
    await insertQuestions(fixture.db, 10_001, 600);
    fixture.server.reset();
    fixture.server.latencyMs = 40;
    const input: EmbeddingBackfillInput = { target: fixture.targetName, batchSize: 25, batchesInFlight: 2, batchesPerRun: 6 };
    const { first, edited } = await withWorker(fixture.config, async ({ client, taskQueue }) => {
      const handle = await startEmbeddingBackfill(client, { taskQueue }, input);
      const firstNew = await fixture.db.query<{ id: string }>(`SELECT min(id)::text AS id FROM questions WHERE content LIKE 'Question 10001:%'`);
      await waitUntil('the first new rows to be embedded', async () => {
        const { rows } = await fixture.db.query('SELECT embedding_sha256 IS NOT NULL AS done FROM questions WHERE id = $1', [firstNew.rows[0].id]);
        return rows[0].done;
      });
      // Behind the scan (already embedded) and ahead of it.
      const edited = await fixture.db.query<{ id: string }>(
        `UPDATE questions SET content = content || ' (edited)' WHERE id IN (SELECT $1::bigint + g FROM generate_series(0, 2) g UNION SELECT max(id) FROM questions)
         RETURNING id::text AS id`,
        [firstNew.rows[0].id],
      );

      await pauseEmbeddingBackfill(handle);
      await waitUntil('the batches in flight to finish', async () => (await embeddingProgress(handle)).batchesInFlight === 0, 30_000);
      const requestsWhenPaused = fixture.server.log.length;
      await new Promise((r) => setTimeout(r, 1_500));
      expect(fixture.server.log.length).toBe(requestsWhenPaused);
      expect((await embeddingProgress(handle)).stage).toBe('paused');
      await resumeEmbeddingBackfill(handle);

      const first = await handle.result();
      // The run continued as new (every 6 batches) and still carried its progress.
      expect((await handle.describe()).runId).not.toBe(handle.firstExecutionRunId);
      return { first, edited: edited.rows.map((r) => r.id) };
    });
    expect(first.progress.done).toBeGreaterThanOrEqual(600 + 3);
    expect(first.progress.pass).toBeGreaterThanOrEqual(2);
    const rows = await storedEmbeddings(fixture.db);
    expect(rows.filter((r) => edited.includes(r.id)).every((r) => r.content.endsWith(' (edited)'))).toBe(true);
    expect(wrongVectors(rows.filter(embeddable), 1536)).toEqual([]);
    for (const text of rows.filter((r) => edited.includes(r.id)).map((r) => r.content)) {
      expect(fixture.server.embeddedCount.get(text)).toBe(1);
    }

    fixture.server.reset();
    fixture.server.latencyMs = 0;
    const second = await withWorker(fixture.config, async ({ client, taskQueue }) => (await startEmbeddingBackfill(client, { taskQueue }, input)).result());
    expect(second.progress).toMatchObject({ done: 0, requests: 0 });
    expect(fixture.server.log).toHaveLength(0);
  }, 180_000);

  test('two concurrent startEmbeddingBackfill calls produce one run', async () => {
    await fixture.db.query(`UPDATE questions SET content = content || ' v2' WHERE id % 10 = 0`);
    fixture.server.reset();
    fixture.server.latencyMs = 20;
    await withWorker(fixture.config, async ({ client, taskQueue }) => {
      const input = { target: fixture.targetName, batchSize: 20 };
      const startedAfter = new Date().toISOString();
      const [a, b] = await Promise.all([startEmbeddingBackfill(client, { taskQueue }, input), startEmbeddingBackfill(client, { taskQueue }, input)]);
      expect(a.workflowId).toBe(b.workflowId);
      expect(a.firstExecutionRunId).toBe(b.firstExecutionRunId);
      const [ra, rb] = await Promise.all([a.result(), b.result()]);
      expect(ra).toEqual(rb);
      expect(await runsOf(client, a.workflowId, startedAfter)).toBe(1);
    });
    const changed = (await storedEmbeddings(fixture.db)).filter((r) => Number(r.id) % 10 === 0 && embeddable(r)).length;
    const sent = [...fixture.server.embeddedCount.values()];
    expect(sent.reduce((a, b) => a + b, 0)).toBe(changed);
  }, 120_000);

  test('a row the API refuses is split out of its request and recorded; the rest of the batch is written', async () => {
    // The model's limit raised above what the API accepts, so our estimate lets the row through.
    const { rows } = await fixture.db.query<{ id: string }>(
      `INSERT INTO questions (content, type, answer, difficulty) VALUES (repeat('Explain the TLB. ', 2500), 'essay', 'a', 1) RETURNING id::text AS id`,
    );
    fixture.server.reset();
    const result = await withWorker(fixture.config, async ({ client, taskQueue }) =>
      (
        await startEmbeddingBackfill(client, { taskQueue }, { target: fixture.targetName, embeddingColumn: 'embedding_split', dimensions: 8, batchSize: 64, maxTokensPerInput: 30_000 })
      ).result(),
    );
    const total = Number((await fixture.db.query('SELECT count(*) AS n FROM questions')).rows[0].n);
    const blank = Number((await fixture.db.query(`SELECT count(*) AS n FROM questions WHERE btrim(content) = ''`)).rows[0].n);
    expect(result.progress.errors).toBe(1 + blank);
    expect(result.progress.done).toBe(total - 1 - blank);
    const { rows: errors } = await fixture.db.query(`SELECT reason FROM pgops_embedding_errors WHERE embedding_column = 'embedding_split' AND row_key = $1`, [rows[0].id]);
    expect(errors[0].reason).toMatch(/rejected by the embeddings API: .*maximum context length is 8192 tokens/);
    expect(fixture.server.log.filter((r) => r.status === 400).length).toBeGreaterThan(1);
    await fixture.db.query('DELETE FROM questions WHERE id = $1', [rows[0].id]);
  }, 60_000);

  test('pgops backfill start follows the run with a progress bar; pause on a finished backfill is one clear line', async () => {
    await fixture.db.query(`UPDATE questions SET content = content || ' (cli)' WHERE id % 7 = 0`);
    await withWorker(fixture.config, async ({ taskQueue }) => {
      const env = { ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', ...fixture.env, PGOPS_TASK_QUEUE: taskQueue } as Record<string, string>;
      const cli = (...args: string[]) => execa(path.join(REPO_DIR, 'bin/pgops'), args, { env, reject: false });
      const started = await cli('backfill', 'start', '--target', fixture.targetName, '--batch-size', '50');
      expect(started.exitCode).toBe(0);
      expect(started.stdout).toMatch(/^\[#{30}\] 100% done +\d+\/\d+ rows, [\d.]+ rows\/s, \d+ errors, pass 2$/m);
      const status = await cli('backfill', 'status', '--target', fixture.targetName);
      expect(status.stdout).toMatch(/100% done/);
      const pause = await cli('backfill', 'pause', '--target', fixture.targetName);
      expect(pause.exitCode).toBe(1);
      expect(pause.stderr.trim()).toMatch(/^pgops: no backfill of that table is running \(.*\); start one with pgops backfill start$/);
    });
    expect(wrongVectors((await storedEmbeddings(fixture.db)).filter(embeddable), 1536)).toEqual([]);
  }, 120_000);

  describe('bad input: one clear error, nothing changed', () => {
    const columnsOfQuestions = async () =>
      (await fixture.db.query(`SELECT attname FROM pg_attribute WHERE attrelid = 'questions'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)).rows
        .map((r) => r.attname)
        .join(',');

    test('unknown table or column, wrong dimensions, names that are not names', async () => {
      const before = await columnsOfQuestions();
      await withWorker(fixture.config, async ({ client, taskQueue }) => {
        const run = async (input: EmbeddingBackfillInput) =>
          failureOf((await startEmbeddingBackfill(client, { taskQueue, workflowId: `bad-${randomUUID()}` }, { target: fixture.targetName, ...input })).result());
        expect(await run({ table: 'questionz' })).toMatch(/table public\.questionz does not exist/);
        expect(await run({ textColumns: ['content', 'body'] })).toMatch(/text column "body" is not a column of public\.questions/);
        expect(await run({ keyColumn: 'difficulty' })).toMatch(/keyColumn "difficulty" of public\.questions has no primary key or unique index/);
        expect(await run({ dimensions: 768 })).toMatch(/public\.questions\.embedding is vector\(1536\) .* asks for 768/);
        expect(await run({ embeddingColumn: 'content' })).toMatch(/public\.questions\.content is text, not a pgvector/);
        expect(await run({ target: 'nowhere' })).toMatch(/unknown target "nowhere"/);

        // The client refuses what is not a name before anything starts...
        await expect(startEmbeddingBackfill(client, { taskQueue }, { table: 'questions; DROP TABLE users' })).rejects.toThrow(EmbeddingInputInvalid);
        // ...and so does the workflow, whoever starts it.
        const direct = await client.workflow.start('embeddingBackfill', {
          taskQueue,
          workflowId: `bad-${randomUUID()}`,
          args: [{ target: fixture.targetName, textColumns: ['content"); DROP TABLE users; --'] }],
        });
        expect(await failureOf(direct.result())).toMatch(/textColumns\[0\]=.* is not a table or column name/);
      });
      expect(await columnsOfQuestions()).toBe(before);
      expect((await fixture.db.query(`SELECT to_regclass('users') IS NOT NULL AS present`)).rows[0].present).toBe(true);
    }, 120_000);

    test('missing API key: the run fails at prepare, before the table is altered', async () => {
      const before = await columnsOfQuestions();
      const config = { ...fixture.config, openai: { ...fixture.config.openai, apiKey: undefined } };
      const message = await withWorker(config, async ({ client, taskQueue }) =>
        failureOf(
          (
            await startEmbeddingBackfill(
              client,
              { taskQueue, workflowId: `bad-${randomUUID()}` },
              { target: fixture.targetName, embeddingColumn: 'embedding_unused', dimensions: 8 },
            )
          ).result(),
        ),
      );
      expect(message).toMatch(/PGOPS_OPENAI_API_KEY is not set in the worker's environment/);
      expect(await columnsOfQuestions()).toBe(before);
    }, 60_000);
  });
});

/** Runs of the workflow id started since `since` (earlier tests ran backfills of the same table). */
async function runsOf(client: Client, workflowId: string, since: string): Promise<number> {
  const runs: string[] = [];
  for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}' AND StartTime >= '${since}'` })) runs.push(execution.runId);
  return runs.length;
}
