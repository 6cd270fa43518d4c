// Keyset pages of the rows that need work, cut into batches the API accepts: at most batchSize
// inputs and maxTokensPerRequest estimated tokens each. Only keys and lengths are read; the text
// stays in the database until a batch is embedded, so history holds keys, never content.
import type { WorkerConfig } from '../../shared/config';
import { estimateTokens, splitIntoRequests } from '../defaults';
import type { EmbeddingBackfillSpec, EmbeddingBatchPlan, PlannedPage } from '../contract';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { needsWork, requirePrepared, resolveEmbeddingTable } from './embeddingTable';

export interface PlanRequest {
  spec: EmbeddingBackfillSpec;
  afterKey?: string;
  maxBatches: number;
}

/**
 * Requests as the batch activity will send them, grouped requestsPerBatch to a batch. Rows too
 * long for the model cost nothing: they never reach the API, the errors table takes them.
 */
export function cutIntoBatches(rows: { key: string; bytes: number }[], spec: EmbeddingBackfillSpec, afterKey?: string): EmbeddingBatchPlan[] {
  const cost = (row: { bytes: number }) => {
    const tokens = estimateTokens(row.bytes);
    return tokens > spec.maxTokensPerInput ? 0 : tokens;
  };
  const requests = splitIntoRequests(rows, cost, spec);
  const batches: EmbeddingBatchPlan[] = [];
  for (let i = 0; i < requests.length; i += spec.requestsPerBatch) {
    const group = requests.slice(i, i + spec.requestsPerBatch);
    const groupRows = group.flat();
    batches.push({
      afterKey: batches[batches.length - 1]?.lastKey ?? afterKey,
      lastKey: groupRows[groupRows.length - 1].key,
      rows: groupRows.length,
      estimatedTokens: groupRows.reduce((sum, row) => sum + cost(row), 0),
      requests: group.length,
    });
  }
  return batches;
}

export function planEmbeddingActivities(config: WorkerConfig) {
  async function planEmbeddingBatches({ spec, afterKey, maxBatches }: PlanRequest): Promise<PlannedPage> {
    return withTarget(resolveTarget(config, spec.target), async (db) => {
      const table = await resolveEmbeddingTable(db, spec);
      requirePrepared(table, spec);
      const limit = maxBatches * spec.batchSize * spec.requestsPerBatch;
      const work = needsWork(table, spec, 2);
      const params: unknown[] = [limit, ...work.params];
      let after = '';
      if (afterKey !== undefined) {
        params.push(afterKey);
        after = `AND t.${table.key} > $${params.length}`;
      }
      const { rows } = await db.query<{ key: string; bytes: number }>(
        `SELECT t.${table.key}::text AS key, octet_length(${table.text}) AS bytes
           FROM ${table.qualified} t
          WHERE ${work.sql} ${after}
          ORDER BY t.${table.key}
          LIMIT $1`,
        params,
      );
      return { batches: cutIntoBatches(rows, spec, afterKey), exhausted: rows.length < limit };
    });
  }
  return { planEmbeddingBatches };
}
