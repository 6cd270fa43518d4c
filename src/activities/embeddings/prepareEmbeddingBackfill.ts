// prepare: the vector extension, the embedding column with the right dimensions, the columns that
// track what each row was embedded from, and the errors table. Safe to repeat.
import type { WorkerConfig } from '../../config';
import type { EmbeddingBackfillSpec, PreparedEmbeddingTable } from '../../embeddingTypes';
import { resolveTarget, withTarget } from '../postgres/connection';
import { createEmbeddingsClient } from './embeddingsApi';
import { needsWork, requirePrepared, resolveEmbeddingTable, wantedVectorType } from './embeddingTable';

export function prepareEmbeddingActivities(config: WorkerConfig) {
  async function prepareEmbeddingBackfill(spec: EmbeddingBackfillSpec): Promise<PreparedEmbeddingTable> {
    // A missing key fails now, before anything is changed, not at the first batch.
    createEmbeddingsClient(config, spec.requestTimeoutMs);
    return withTarget(resolveTarget(config, spec.target), async (db) => {
      await db.query('CREATE EXTENSION IF NOT EXISTS vector');
      // Names are checked against the catalog before anything is altered.
      let table = await resolveEmbeddingTable(db, spec);
      const addedColumn = table.vectorType === undefined;
      const vectorType = table.vectorType ?? wantedVectorType(spec.dimensions);
      await db.query(
        `ALTER TABLE ${table.qualified}
           ADD COLUMN IF NOT EXISTS ${table.embedding} ${vectorType}(${spec.dimensions}),
           ADD COLUMN IF NOT EXISTS ${table.hash} bytea,
           ADD COLUMN IF NOT EXISTS ${table.model} text`,
      );
      await db.query(
        `CREATE TABLE IF NOT EXISTS ${table.errors} (
           table_name       text NOT NULL,
           embedding_column text NOT NULL,
           row_key          text NOT NULL,
           model            text NOT NULL,
           reason           text NOT NULL,
           content_sha256   bytea,
           recorded_at      timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (table_name, embedding_column, row_key))`,
      );
      table = await resolveEmbeddingTable(db, spec);
      requirePrepared(table, spec);
      const work = needsWork(table, spec, 1);
      const { rows } = await db.query<{ total: string; needing: string }>(
        `SELECT count(*) AS total, count(*) FILTER (WHERE ${work.sql}) AS needing FROM ${table.qualified} t`,
        work.params,
      );
      return { vectorType, addedColumn, totalRows: Number(rows[0].total), rowsNeedingWork: Number(rows[0].needing) };
    });
  }
  return { prepareEmbeddingBackfill };
}
