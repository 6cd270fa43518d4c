// index: an HNSW cosine index on the embedding column, built CONCURRENTLY so the game keeps
// reading and writing the table meanwhile, with maintenance_work_mem raised for the build.
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import type { WorkerConfig } from '../../shared/config';
import { HNSW_MAX_VECTOR_DIMENSIONS, MAX_HALFVEC_DIMENSIONS } from '../defaults';
import type { EmbeddingBackfillSpec } from '../contract';
import { heartbeatWhile } from '../../shared/heartbeat';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { type EmbeddingTable, requirePrepared, resolveEmbeddingTable } from './embeddingTable';

const DEFAULT_MAINTENANCE_WORK_MEM = '256MB';

export function embeddingIndexName(spec: EmbeddingBackfillSpec): string {
  return `${spec.table}_${spec.embeddingColumn}_hnsw`.slice(0, 63);
}

/**
 * The index of that name, if it is this table's. Index names are unique per schema, not per table:
 * a relation of that name on another table is someone else's, and is never dropped for ours.
 */
async function existingIndex(db: ClientBase, spec: EmbeddingBackfillSpec, name: string, table: EmbeddingTable) {
  const found = await db.query<{ valid: boolean; ours: boolean; owner: string | null }>(
    `SELECT i.indisvalid AS valid, i.indrelid = $3::regclass AS ours, i.indrelid::regclass::text AS owner
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
      WHERE n.nspname = $1 AND c.relname = $2`,
    [spec.schema, name, table.qualified],
  );
  if (found.rowCount && !found.rows[0].ours) {
    const what = found.rows[0].owner ? `an index of ${found.rows[0].owner}` : 'a relation that is not an index';
    throw ApplicationFailure.nonRetryable(
      `${spec.schema}.${name}, the name of the HNSW index of ${table.label}.${spec.embeddingColumn}, is taken by ${what}; ` +
        `rename that one (ALTER INDEX ... RENAME TO ...) and start the backfill again`,
      'EmbeddingIndexNameTaken',
    );
  }
  return found;
}

export function buildIndexActivities(config: WorkerConfig) {
  async function buildEmbeddingIndex(spec: EmbeddingBackfillSpec): Promise<{ name: string; ms: number; built: boolean }> {
    const name = embeddingIndexName(spec);
    const options = spec.index ?? {};
    const heartbeats = heartbeatWhile(() => ({ index: name }));
    try {
      return await withTarget(resolveTarget(config, spec.target), async (db) => {
        const table = await resolveEmbeddingTable(db, spec);
        const { vectorType } = requirePrepared(table, spec);
        const limit = vectorType === 'vector' ? HNSW_MAX_VECTOR_DIMENSIONS : MAX_HALFVEC_DIMENSIONS;
        if (spec.dimensions > limit) {
          throw ApplicationFailure.nonRetryable(
            `HNSW indexes ${vectorType} up to ${limit} dimensions; ${table.label}.${spec.embeddingColumn} has ${spec.dimensions} (use a halfvec column)`,
            'EmbeddingIndexUnsupported',
          );
        }
        const existing = await existingIndex(db, spec, name, table);
        const quotedIndex = `${db.escapeIdentifier(spec.schema)}.${db.escapeIdentifier(name)}`;
        if (existing.rowCount && existing.rows[0].valid && !options.rebuild) return { name, ms: 0, built: false };
        // An invalid index is what a build interrupted by a crash leaves behind: drop it and start over.
        if (existing.rowCount) await db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${quotedIndex}`);
        await db.query(`SELECT set_config('maintenance_work_mem', $1, false)`, [options.maintenanceWorkMem ?? DEFAULT_MAINTENANCE_WORK_MEM]);
        const withParams = [
          options.m !== undefined ? `m = ${Number(options.m)}` : undefined,
          options.efConstruction !== undefined ? `ef_construction = ${Number(options.efConstruction)}` : undefined,
        ].filter(Boolean);
        const started = Date.now();
        await db.query(
          `CREATE INDEX CONCURRENTLY ${db.escapeIdentifier(name)} ON ${table.qualified}
             USING hnsw (${table.embedding} ${vectorType}_cosine_ops)${withParams.length ? ` WITH (${withParams.join(', ')})` : ''}`,
        );
        return { name, ms: Date.now() - started, built: true };
      });
    } finally {
      heartbeats.stop();
    }
  }
  return { buildEmbeddingIndex };
}
