// Progress of the running embedding backfills, from each run's progress query (plus its batches'
// heartbeats, as `pgops embeddings status` shows it).
import type { Client } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { embeddingProgress } from '../../client/embeddings';
import { EMBEDDING_BACKFILL_WORKFLOW, type EmbeddingProgress } from '../../embeddings/contract';
import { sampledGauge } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';
import { answerWithin, runningWorkflows } from './openWorkflows';

export async function runningBackfills(temporal: Client, taskQueue: string): Promise<EmbeddingProgress[]> {
  const runs = await runningWorkflows(temporal, taskQueue, EMBEDDING_BACKFILL_WORKFLOW);
  const progress = await Promise.all(runs.map((run) => answerWithin(() => embeddingProgress(temporal.workflow.getHandle(run.workflowId)))));
  return progress.filter((p): p is EmbeddingProgress => p !== undefined);
}

export function registerEmbeddingMetrics(registry: Registry, temporal: Client, taskQueue: string, options: ScrapeSourceOptions): ScrapeSource<unknown>[] {
  const source = new ScrapeSource('temporal:embedding-backfills', () => runningBackfills(temporal, taskQueue), options);
  const gauge = (name: string, help: string, value: (p: EmbeddingProgress) => number) =>
    sampledGauge(registry, source, {
      name,
      help,
      labelNames: ['target', 'table', 'workflow_id'],
      *samples(backfills) {
        for (const p of backfills) yield [{ target: p.target, table: p.table, workflow_id: p.workflowId }, value(p)];
      },
    });
  gauge('pgops_embedding_backfill_rows_done', 'Rows the running backfill has embedded (all runs of its continue-as-new chain).', (p) => p.done);
  gauge('pgops_embedding_backfill_rows_remaining', 'Rows the running backfill has still to embed.', (p) => Math.max(p.total - p.done - p.errors - p.skipped, 0));
  gauge('pgops_embedding_backfill_rate_limited_seconds', 'Time the running backfill has waited on the embeddings API\'s rate limits so far.', (p) => p.rateLimitedMs / 1000);
  gauge('pgops_embedding_backfill_rows_per_second', 'Embedding rate of the running backfill (paused time excluded).', (p) => p.rowsPerSecond);
  gauge('pgops_embedding_backfill_paused', '1 while the running backfill is paused.', (p) => (p.stage === 'paused' ? 1 : 0));
  return [source];
}
