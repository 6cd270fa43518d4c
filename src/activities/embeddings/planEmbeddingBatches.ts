// Keyset pages of the rows that need work, cut into batches the API accepts: at most batchSize
// inputs and maxTokensPerRequest estimated tokens each. Only keys and lengths are read; the text
// stays in the database until a batch is embedded, so history holds keys, never content.
import type { WorkerConfig } from '../../config';
import { estimateTokens } from '../../embeddingDefaults';
import type { EmbeddingBackfillSpec, EmbeddingBatchPlan, PlannedPage } from '../../embeddingTypes';
import { resolveTarget, withTarget } from '../postgres/connection';
import { needsWork, requirePrepared, resolveEmbeddingTable } from './embeddingTable';

export interface PlanRequest {
  spec: EmbeddingBackfillSpec;
  afterKey?: string;
  maxBatches: number;
}

/** Rows too long for the model count nothing: they never reach the API, the errors table takes them. */
export function cutIntoBatches(rows: { key: string; bytes: number }[], spec: EmbeddingBackfillSpec, afterKey?: string): EmbeddingBatchPlan[] {
  const batches: EmbeddingBatchPlan[] = [];
  let current: EmbeddingBatchPlan | undefined;
  for (const row of rows) {
    const tokens = estimateTokens(row.bytes);
    const cost = tokens > spec.maxTokensPerInput ? 0 : tokens;
    if (!current || current.rows >= spec.batchSize || current.estimatedTokens + cost > spec.maxTokensPerRequest) {
      current = { afterKey: current?.lastKey ?? afterKey, lastKey: row.key, rows: 0, estimatedTokens: 0 };
      batches.push(current);
    }
    current.lastKey = row.key;
    current.rows += 1;
    current.estimatedTokens += cost;
  }
  return batches;
}

export function planEmbeddingActivities(config: WorkerConfig) {
  async function planEmbeddingBatches({ spec, afterKey, maxBatches }: PlanRequest): Promise<PlannedPage> {
    return withTarget(resolveTarget(config, spec.target), async (db) => {
      const table = await resolveEmbeddingTable(db, spec);
      requirePrepared(table, spec);
      const limit = maxBatches * spec.batchSize;
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
