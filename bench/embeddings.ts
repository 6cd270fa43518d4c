// Embedding backfill benchmark, in one run on one database of seeded questions:
//   1. a naive loop, one API request and one UPDATE per row (on a sample: it is slow)
//   2. embeddingBackfill against an API with 200 ms latency and a 3,000 requests/min budget:
//      the share of the budget it achieves
//   3. embeddingBackfill, 1536-d vectors from a zero-latency local API, with its defaults
//      (--repeat times) and tuned, each from a freshly loaded table
//   4. the HNSW index build over the complete column (unless --skip-index: ~12 minutes at 100k)
// with the CPU each run needed, and print a Markdown section for docs/benchmarks.md.
//
//   npx tsx bench/embeddings.ts [--rows 100000] [--repeat 1] [--skip-index]   (the local stack must be up: scripts/stack up)
// The worker under test is a separate process (the compiled worker, as deployed); the API runs in this process.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import execa from 'execa';
import OpenAI from 'openai';
import type { Client } from 'pg';
import { connectTarget } from '../src/shared/postgres/connection';
import { connectClient, startEmbeddingBackfill } from '../src/client';
import { loadWorkerConfig, type TargetConfig } from '../src/shared/config';
import { startFakeEmbeddingsServer, type FakeEmbeddingsServer } from '../src/dev/fakeEmbeddingsServer';
import type { EmbeddingBackfillInput, EmbeddingBackfillResult } from '../src/embeddings/contract';
import { targetUrl } from '../test/support/backupFixture';
import { cpuCell, describeCpu, startCpuMeter, stackServers, type CpuUsage } from './cpu';
import { ensureBenchDatabase, seconds } from './support';
import { insertQuestions } from '../test/support/embeddingFixture';
import { stackEnv } from '../test/support/stack';
import { startWorkerProcess } from '../test/support/workerProcess';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    'naive-rows': { type: 'string', default: '2000' },
    // The machine's speed drifts between minutes: several runs of the defaults show how far.
    repeat: { type: 'string', default: '1' },
    'skip-index': { type: 'boolean', default: false },
  },
});
const ROWS = Number(values.rows);
const NAIVE_ROWS = Number(values['naive-rows']);
const DATABASE = `pgops_bench_embeddings_${ROWS}`;
const TARGET = 'bench';
const STACK = loadWorkerConfig(stackEnv());
const SERVERS = stackServers(STACK.targets);

async function seed(db: Client): Promise<void> {
  for (let first = 1; first <= ROWS; first += 10_000) await insertQuestions(db, first, Math.min(10_000, ROWS - first + 1));
}

async function benchTarget(): Promise<TargetConfig> {
  const { target, db } = await ensureBenchDatabase(DATABASE);
  const count = Number((await db.query('SELECT count(*) AS n FROM questions')).rows[0].n);
  if (count !== ROWS) {
    console.error(`seeding ${ROWS} questions into ${DATABASE}...`);
    await db.query('TRUNCATE questions CASCADE');
    await seed(db);
  }
  await db.end();
  return target;
}

/** `column` (this script's own constant) and its tracking columns dropped, so every row needs work again. */
async function dropColumn(db: Client, column: string): Promise<void> {
  await db.query(`ALTER TABLE questions DROP COLUMN IF EXISTS ${column}, DROP COLUMN IF EXISTS ${column}_sha256, DROP COLUMN IF EXISTS ${column}_model`);
}

async function freshColumn(target: TargetConfig, column: string): Promise<void> {
  const db = await connectTarget(target);
  await dropColumn(db, column);
  await db.query('VACUUM questions');
  await db.end();
}

/**
 * Every timed backfill starts from the same state: a fresh column, the questions reloaded (a
 * dropped column's vectors stay in the table until it is rewritten), vacuumed, and checkpointed,
 * so no run pays for an earlier run's dead rows, dirty pages or a checkpoint that falls due inside it.
 */
async function freshTable(target: TargetConfig, column: string): Promise<void> {
  const db = await connectTarget(target);
  await dropColumn(db, column);
  await db.query('TRUNCATE questions RESTART IDENTITY CASCADE');
  await seed(db);
  await db.query('VACUUM ANALYZE questions');
  await db.query('CHECKPOINT');
  await db.end();
}

async function naiveLoop(target: TargetConfig, server: FakeEmbeddingsServer): Promise<number> {
  await freshColumn(target, 'embedding_naive');
  const db = await connectTarget(target);
  await db.query('ALTER TABLE questions ADD COLUMN embedding_naive vector(1536)');
  const openai = new OpenAI({ apiKey: 'sk-bench', baseURL: server.url });
  const { rows } = await db.query<{ id: string; content: string }>('SELECT id::text AS id, content FROM questions ORDER BY id LIMIT $1', [NAIVE_ROWS]);
  const started = Date.now();
  for (const row of rows) {
    const response = await openai.embeddings.create({ model: 'text-embedding-3-small', input: row.content, dimensions: 1536 });
    await db.query('UPDATE questions SET embedding_naive = $1 WHERE id = $2', [`[${response.data[0].embedding.join(',')}]`, row.id]);
  }
  const rowsPerSecond = rows.length / seconds(started);
  await db.end();
  await freshColumn(target, 'embedding_naive');
  return rowsPerSecond;
}

interface Run {
  name: string;
  rows: number;
  seconds: number;
  result: EmbeddingBackfillResult;
  cpu: CpuUsage;
  requestsPerMinute?: number;
}

async function backfill(name: string, env: Record<string, string>, target: TargetConfig, input: EmbeddingBackfillInput, fresh = true): Promise<Run> {
  if (fresh) await freshTable(target, input.embeddingColumn!);
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...env, PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
  const client = await connectClient(STACK.temporal);
  try {
    const meter = startCpuMeter(SERVERS);
    const started = Date.now();
    const handle = await startEmbeddingBackfill(client, { taskQueue, workflowId: `bench-embeddings-${randomUUID()}` }, { target: TARGET, ...input });
    const result = await handle.result();
    const took = seconds(started);
    const cpu = meter.stop();
    console.error(`${name}: ${result.progress.done} rows in ${took.toFixed(1)} s; ${describeCpu(cpu)}`);
    return { name, rows: result.progress.done, seconds: took, result, cpu };
  } finally {
    await client.connection.close();
    await worker.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  // Measure the worker a deployment runs: compiled, with the workflow bundle built ahead.
  await execa('npm', ['run', '--silent', 'build'], { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const target = await benchTarget();
  const server = await startFakeEmbeddingsServer();
  const env = {
    PGOPS_TARGETS: `primary,verify,${TARGET}`,
    PGOPS_TARGET_BENCH_URL: targetUrl(target),
    PGOPS_OPENAI_BASE_URL: server.url,
    PGOPS_OPENAI_API_KEY: 'sk-bench',
    // The stack's failover cluster names the standby, which this target list leaves out.
    PGOPS_CLUSTERS: '',
  };
  const runs: Run[] = [];
  try {
    const naive = await naiveLoop(target, server);
    console.error(`naive loop: ${naive.toFixed(0)} rows/s over ${NAIVE_ROWS} rows`);

    // The budget run: 200 ms per request, 3,000 requests/min; batches of 20 rows of 256-d on the
    // first 20,000 rows (1,000 requests, ≥ 20 s at the budget): the API's pace, not the writes, is measured.
    server.latencyMs = 200;
    server.reset();
    const budgetRows = Math.min(ROWS, 20_000);
    const paced = await backfill('embeddingBackfill, 200 ms latency, 3,000 requests/min budget, 5 requests of 20 rows per batch, 10 batches in flight, 256-d', env, target, {
      embeddingColumn: 'embedding_paced',
      dimensions: 256,
      batchSize: 20,
      requestsPerBatch: 5,
      batchesInFlight: 10,
      requestsPerMinute: 3_000,
      filter: [{ column: 'id', op: '<=', value: budgetRows }],
    });
    const ok = server.log.filter((r) => r.status === 200).map((r) => r.at);
    paced.requestsPerMinute = ((ok.length - 1) / ((ok[ok.length - 1] - ok[0]) / 1000)) * 60;
    runs.push(paced);
    await freshColumn(target, 'embedding_paced');
    server.latencyMs = 0;

    const repeat = Number(values.repeat);
    for (let i = 1; i <= repeat; i++) {
      const name = `embeddingBackfill, defaults (2 requests of 512 per batch, 2 batches in flight), 1536-d${repeat > 1 ? `, run ${i} of ${repeat}` : ''}`;
      runs.push(await backfill(name, env, target, { embeddingColumn: 'embedding' }));
    }
    runs.push(
      await backfill('embeddingBackfill, 2 requests of 1024 per batch, 3 batches in flight, 1536-d', env, target, { embeddingColumn: 'embedding', batchSize: 1024, batchesInFlight: 3 }),
    );

    // Last, because every later write to the table would also insert into the index. `embedding` is
    // complete (the run above filled it), so this run embeds nothing and only builds the HNSW index.
    // --skip-index leaves it out: at 100k rows the build alone takes ~12 minutes on 2 cores.
    const indexed = values['skip-index'] ? undefined : await backfill('HNSW index only', env, target, { embeddingColumn: 'embedding', index: true }, false);
    const indexSeconds = (indexed?.result.indexBuilt?.ms ?? NaN) / 1000;
    if (indexed) console.error(`HNSW build: ${indexSeconds.toFixed(1)} s`);

    const lines = [
      `## Embedding backfill (${new Date().toISOString().slice(0, 10)}, ${ROWS.toLocaleString('en')} questions)`,
      '',
      `Command: \`npx tsx bench/embeddings.ts --rows ${ROWS} --repeat ${values.repeat}${values['skip-index'] ? ' --skip-index' : ''}\` (stack up; 2-core machine shared with the worker, the API and PostgreSQL)`,
      '',
      '| run | rows | wall s | rows/s | vs naive loop | busy CPU-s / floor on 2 cores | notes |',
      '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
      `| naive loop: one request + one UPDATE per row, 1536-d (on the first ${NAIVE_ROWS} rows) | ${NAIVE_ROWS} | ${(NAIVE_ROWS / naive).toFixed(1)} | ${naive.toFixed(0)} | 1.0× | | |`,
      ...runs.map((r) => {
        const rate = r.rows / r.seconds;
        const note = r.requestsPerMinute !== undefined ? `${r.requestsPerMinute.toFixed(0)} requests/min achieved = ${((r.requestsPerMinute / 3_000) * 100).toFixed(1)}% of the budget` : `${r.result.progress.requests} requests`;
        return `| ${r.name} | ${r.rows} | ${r.seconds.toFixed(1)} | ${rate.toFixed(0)} | ${(rate / naive).toFixed(1)}× | ${cpuCell(r.cpu)} | ${note} |`;
      }),
      '',
      'Where the CPU went (by process, sampled every 100 ms; a process that exited is counted through its parent; the local API runs in the benchmark process):',
      '',
      ...runs.map((r) => `- ${r.name}: ${describeCpu(r.cpu)}`),
      '',
      indexed === undefined ? '(HNSW build skipped: --skip-index)' : `HNSW cosine index on ${ROWS.toLocaleString('en')} × 1536-d (\`CREATE INDEX CONCURRENTLY\`, m 16, ef_construction 64, maintenance_work_mem 256MB): ${indexSeconds.toFixed(1)} s`,
    ];
    console.log(lines.join('\n'));
  } finally {
    await server.close();
    // 100k vectors of 1536 dimensions are ~700 MB on the shared primary (and its standby): not kept.
    const admin = await connectTarget(loadWorkerConfig(stackEnv()).targets.primary);
    await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
    await admin.end();
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
