// prepare: the vector extension, the embedding column with the right dimensions, the columns that
// track what each row was embedded from, and the errors table. Safe to repeat.
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import type { WorkerConfig } from '../../shared/config';
import type { EmbeddingBackfillSpec, PreparedEmbeddingTable } from '../contract';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { createEmbeddingsClient } from './embeddingsApi';
import { type EmbeddingTable, needsWork, requirePrepared, resolveEmbeddingTable, wantedVectorType } from './embeddingTable';

/**
 * How long adding the columns may wait for the table. ALTER TABLE needs an ACCESS EXCLUSIVE lock,
 * and while it waits in the queue (behind the nightly dump, say) every query of the game waits
 * behind it; past this it gives up and the activity is retried later.
 */
const ALTER_LOCK_TIMEOUT = '2s';
/** lock_not_available: the lock_timeout above ran out. */
const LOCK_NOT_AVAILABLE = '55P03';

/** Adds the embedding and tracking columns, without queueing for the table's lock. */
async function addMissingColumns(db: ClientBase, table: EmbeddingTable, spec: EmbeddingBackfillSpec, vectorType: 'vector' | 'halfvec'): Promise<void> {
  await db.query('BEGIN');
  try {
    await db.query(`SET LOCAL lock_timeout = '${ALTER_LOCK_TIMEOUT}'`);
    await db.query(
      `ALTER TABLE ${table.qualified}
         ADD COLUMN IF NOT EXISTS ${table.embedding} ${vectorType}(${spec.dimensions}),
         ADD COLUMN IF NOT EXISTS ${table.hash} bytea,
         ADD COLUMN IF NOT EXISTS ${table.model} text`,
    );
    await db.query('COMMIT');
  } catch (err) {
    await db.query('ROLLBACK');
    if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
    throw ApplicationFailure.retryable(
      `${table.label} is locked by another transaction (a dump or a migration?) and could not be altered within ${ALTER_LOCK_TIMEOUT} ` +
        `to add ${spec.embeddingColumn} and its tracking columns; trying again later rather than queueing the game's queries behind it`,
      'EmbeddingTableBusy',
    );
  }
}

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
      // Even a no-op ALTER TABLE takes the table's strongest lock, so it runs only when a column is missing.
      if (addedColumn || !table.tracked) await addMissingColumns(db, table, spec, vectorType);
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
