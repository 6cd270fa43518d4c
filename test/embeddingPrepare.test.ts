// Starting a backfill must never stall the game: while a long transaction holds the table (the
// nightly dump's ACCESS SHARE lock), a backfill of an existing column starts without altering
// anything, and one that has to add its column gives up the lock queue after a moment and tries
// again later, so the game's queries are never held behind it for long.
import { randomUUID } from 'node:crypto';
import { connectTarget } from '../src/shared/postgres/connection';
import { startEmbeddingBackfill } from '../src/client';
import type { EmbeddingBackfillInput } from '../src/embeddings/contract';
import { createEmbeddingFixture, insertQuestions, type EmbeddingFixture } from './support/embeddingFixture';
import { withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

let fixture: EmbeddingFixture;

beforeAll(async () => {
  fixture = await createEmbeddingFixture(50);
}, 60_000);

afterAll(async () => {
  await fixture?.cleanup();
});

/** Runs `work` while another session holds questions the way pg_dump does, in an open transaction. */
async function whileDumpHoldsQuestions<T>(work: () => Promise<T>): Promise<T> {
  const dump = await connectTarget(fixture.target);
  try {
    await dump.query('BEGIN');
    await dump.query('LOCK TABLE questions IN ACCESS SHARE MODE');
    return await work();
  } finally {
    await dump.query('ROLLBACK');
    await dump.end();
  }
}

/** The longest a game query took, run again and again until `until` settles. Each gives up after 5 s. */
async function longestGameQueryMs(until: Promise<unknown>): Promise<number> {
  const game = await connectTarget(fixture.target);
  let settled = false;
  void until.finally(() => (settled = true)).catch(() => undefined);
  let longest = 0;
  try {
    await game.query(`SET statement_timeout = '5s'`);
    while (!settled) {
      const started = Date.now();
      await game.query('SELECT count(*) FROM questions');
      longest = Math.max(longest, Date.now() - started);
      await new Promise((r) => setTimeout(r, 100));
    }
    return longest;
  } finally {
    await game.end();
  }
}

const input = (column: string): EmbeddingBackfillInput => ({ target: fixture.targetName, embeddingColumn: column, dimensions: 8, batchSize: 20 });

test('a backfill of a column that exists alters nothing: it runs to the end while a dump holds the table', async () => {
  await withWorker(fixture.config, async ({ client, taskQueue }) => {
    await (await startEmbeddingBackfill(client, { taskQueue }, input('embedding_present'))).result();
    await insertQuestions(fixture.db, 1_001, 10);
    const result = await whileDumpHoldsQuestions(async () => {
      const handle = await startEmbeddingBackfill(client, { taskQueue, workflowId: `prepare-${randomUUID()}` }, input('embedding_present'));
      const late = new Promise((_, reject) => setTimeout(() => reject(new Error('the backfill waited for the dump\'s lock')), 30_000).unref());
      return Promise.race([handle.result(), late]);
    });
    expect(result).toMatchObject({ progress: { stage: 'done', done: 10 } });
  });
}, 90_000);

test('adding the column under a dump\'s lock gives up within the lock timeout, keeps the game\'s queries moving, and finishes once the dump ends', async () => {
  const column = 'embedding_added_late';
  await withWorker(fixture.config, async ({ client, taskQueue }) => {
    const handle = await whileDumpHoldsQuestions(async () => {
      const handle = await startEmbeddingBackfill(client, { taskQueue, workflowId: `prepare-${randomUUID()}` }, input(column));
      const retried = waitUntil(
        'prepare to fail on the lock and be retried',
        async () => {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          return pending.some((a) => (a.attempt ?? 0) >= 2 && /questions is locked by another transaction .* within 2s/.test(a.lastFailure?.message ?? ''));
        },
        30_000,
      );
      retried.catch(() => undefined); // awaited below; a failed game query must not leave it unhandled
      const longest = await longestGameQueryMs(retried);
      await retried;
      // Queued behind the ALTER for at most its lock timeout, never for the dump's whole length.
      expect(longest).toBeLessThan(3_000);
      const { rows } = await fixture.db.query(`SELECT 1 FROM pg_attribute WHERE attrelid = 'questions'::regclass AND attname = $1`, [column]);
      expect(rows).toEqual([]);
      return handle;
    });
    const result = await handle.result();
    expect(result.progress).toMatchObject({ stage: 'done' });
    expect(result.progress.done).toBeGreaterThanOrEqual(50);
  });
}, 120_000);
