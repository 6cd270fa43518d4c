// An embedding test's own world: a scratch database with the CS Arena schema and N questions, as
// a target of its own (so the backfill's workflow id is the test's alone), and a local
// OpenAI-compatible embeddings server. Nothing it does touches csarena.
import { randomUUID } from 'node:crypto';
import type { Client as TemporalClient } from '@temporalio/client';
import type { Client } from 'pg';
import { connectTarget } from '../../src/shared/postgres/connection';
import { loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../../src/shared/config';
import { pauseEmbeddingBackfill, resumeEmbeddingBackfill, startEmbeddingBackfill } from '../../src/client/embeddings';
import { migrate } from '../../src/db/migrate';
import { fakeEmbedding, startFakeEmbeddingsServer, type FakeEmbeddingsServer } from '../../src/dev/fakeEmbeddingsServer';
import { targetUrl } from './backupFixture';
import { stackEnv, withWorker } from './stack';

export interface EmbeddingFixture {
  /** The target name of the scratch database, e.g. "emb_1a2b3c4d". */
  targetName: string;
  /** Environment overrides that make a worker (in-process or child) see this fixture. */
  env: Record<string, string>;
  config: WorkerConfig;
  target: TargetConfig;
  db: Client;
  server: FakeEmbeddingsServer;
  cleanup(): Promise<void>;
}

/** Question text of row i: varied in length and language, like the seed's. */
function questionText(i: number): string {
  const topic = ['deadlock', '교착 상태', 'virtual memory', 'B+ tree indexes', '해시 테이블', 'the TCP handshake'][i % 6];
  return `Question ${i}: explain ${topic} and where it fails in practice.${i % 17 === 0 ? ' 조건: 시간 제한 1초.'.repeat(20) : ''}`;
}

export async function createEmbeddingFixture(rows: number, options: { latencyMs?: number } = {}): Promise<EmbeddingFixture> {
  const id = randomUUID().replace(/-/g, '').slice(0, 8);
  const targetName = `emb_${id}`;
  const database = `pgops_embedding_test_${id}`;
  const base = loadWorkerConfig(stackEnv());
  const primary = base.targets.primary;
  const admin = await connectTarget(primary);
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const db = await connectTarget({ ...primary, database });
  await migrate(db);
  await insertQuestions(db, 1, rows);

  const server = await startFakeEmbeddingsServer({ latencyMs: options.latencyMs });
  const env = {
    PGOPS_TARGETS: `primary,standby,verify,${targetName}`,
    [`PGOPS_TARGET_${targetName.toUpperCase()}_URL`]: targetUrl({ ...primary, database }),
    PGOPS_OPENAI_BASE_URL: server.url,
    PGOPS_OPENAI_API_KEY: 'sk-test-embeddings',
  };
  const config = loadWorkerConfig({ ...stackEnv(), ...env });
  return {
    targetName,
    env,
    config,
    target: config.targets[targetName],
    db,
    server,
    async cleanup() {
      await db.end().catch(() => undefined);
      await server.close();
      const c = await connectTarget(primary);
      await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function insertQuestions(db: Client, first: number, count: number): Promise<void> {
  const texts = Array.from({ length: count }, (_, i) => questionText(first + i));
  await db.query(
    `INSERT INTO questions (content, type, answer, difficulty) SELECT t, 'essay', 'see the lecture notes', 3 FROM unnest($1::text[]) t`,
    [texts],
  );
}

export interface StoredEmbedding {
  id: string;
  content: string;
  embedding: number[] | null;
  model: string | null;
}

/** `column` is a test's own constant, never input. */
export async function storedEmbeddings(db: Client, column = 'embedding'): Promise<StoredEmbedding[]> {
  const { rows } = await db.query<StoredEmbedding>(
    `SELECT id::text AS id, content, ${column}::real[] AS embedding, ${column}_model AS model FROM questions ORDER BY id`,
  );
  return rows;
}

/** Rows whose stored vector is not the one the fake API gives for their current text. */
export function wrongVectors(rows: StoredEmbedding[], dimensions: number, tolerance = 1e-6): string[] {
  const wrong: string[] = [];
  for (const row of rows) {
    if (!row.embedding || row.embedding.length !== dimensions) {
      wrong.push(row.id);
      continue;
    }
    const expected = fakeEmbedding(row.content, dimensions);
    if (row.embedding.some((x, i) => Math.abs(x - expected[i]) > tolerance)) wrong.push(row.id);
  }
  return wrong;
}

/**
 * For the replay test's history: a backfill of 300 rows in a scratch database, paced by a
 * requests-per-minute budget (timers), paused and resumed once, with a worker of its own that sees
 * the scratch target and a local embeddings API. With `batchesPerRun` it continues as new along
 * the way; the first run's id is returned, whose history ends in the continuation.
 */
export async function recordEmbeddingBackfill(client: TemporalClient, workflowId: string, options: { batchesPerRun?: number } = {}): Promise<string> {
  const fixture = await createEmbeddingFixture(300, { latencyMs: 30 });
  try {
    return await withWorker(fixture.config, async ({ taskQueue }) => {
      const handle = await startEmbeddingBackfill(client, { taskQueue, workflowId }, {
        target: fixture.targetName,
        embeddingColumn: 'embedding_small',
        dimensions: 16,
        batchSize: 25,
        requestsPerMinute: 240,
        batchesPerRun: options.batchesPerRun,
      });
      await pauseEmbeddingBackfill(handle);
      await new Promise((r) => setTimeout(r, 500));
      await resumeEmbeddingBackfill(handle);
      await handle.result();
      return handle.firstExecutionRunId;
    });
  } finally {
    await fixture.cleanup();
  }
}
