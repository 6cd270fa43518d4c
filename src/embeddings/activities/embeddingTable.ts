// The one place a backfill's names become SQL: every table and column name from the input is
// looked up in the catalog first and then quoted as an identifier; values travel as parameters.
import { ApplicationFailure } from '@temporalio/common';
import type { ClientBase } from 'pg';
import { HNSW_MAX_VECTOR_DIMENSIONS } from '../defaults';
import type { EmbeddingBackfillSpec } from '../contract';

export const ERRORS_TABLE = 'pgops_embedding_errors';
/** Tracking columns carry the embedding column's name plus a suffix, within PostgreSQL's 63 bytes. */
const MAX_EMBEDDING_COLUMN_LENGTH = 56;

interface CatalogColumn {
  name: string;
  attnum: number;
  /** format_type(): e.g. "bigint", "vector(1536)". */
  type: string;
  typeName: string;
  typeOid: number;
  typmod: number;
}

export interface EmbeddingTable {
  /** "schema"."table" */
  qualified: string;
  label: string;
  key: string;
  /** Cast target that turns a text key back into the key column's type, from the catalog. */
  keyType: string;
  /** The text sent for a row: its text columns joined by blank lines. */
  text: string;
  embedding: string;
  hash: string;
  model: string;
  errors: string;
  /** `vector` or `halfvec`, as the column exists; undefined until prepare adds it. */
  vectorType?: 'vector' | 'halfvec';
  vectorTypeOid?: number;
  /** The tracking columns exist (prepare has run). */
  tracked: boolean;
  /** Quoted names of the filter's columns, by their name in the spec. */
  filterColumns: Record<string, string>;
}

function badInput(message: string, type = 'EmbeddingTableInvalid'): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

export function wantedVectorType(dimensions: number): 'vector' | 'halfvec' {
  return dimensions > HNSW_MAX_VECTOR_DIMENSIONS ? 'halfvec' : 'vector';
}

/** Looks every name of the spec up in the catalog and returns the quoted SQL fragments. */
export async function resolveEmbeddingTable(db: ClientBase, spec: EmbeddingBackfillSpec): Promise<EmbeddingTable> {
  const label = `${spec.schema}.${spec.table}`;
  const relation = await db.query<{ oid: number }>(
    `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [spec.schema, spec.table],
  );
  if (relation.rowCount === 0) {
    throw badInput(`table ${label} does not exist in the database of target ${spec.target}`, 'EmbeddingTableMissing');
  }
  const oid = relation.rows[0].oid;
  const { rows } = await db.query<CatalogColumn>(
    `SELECT a.attname AS name, a.attnum, format_type(a.atttypid, a.atttypmod) AS type, t.typname AS "typeName",
            a.atttypid::int AS "typeOid", a.atttypmod AS typmod
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
    [oid],
  );
  const columns = new Map(rows.map((c) => [c.name, c]));
  const column = (role: string, name: string): CatalogColumn => {
    const found = columns.get(name);
    if (!found) {
      throw badInput(`${role} "${name}" is not a column of ${label} (its columns: ${rows.map((c) => c.name).join(', ')})`, 'EmbeddingColumnMissing');
    }
    return found;
  };

  const key = column('keyColumn', spec.keyColumn);
  const unique = await db.query(
    `SELECT 1 FROM pg_index WHERE indrelid = $1 AND indisunique AND indisvalid AND indpred IS NULL
        AND indnkeyatts = 1 AND indkey[0] = $2`,
    [oid, key.attnum],
  );
  if (unique.rowCount === 0) {
    throw badInput(`keyColumn "${spec.keyColumn}" of ${label} has no primary key or unique index of its own; batches page by it and need it unique`);
  }
  const textColumns = spec.textColumns.map((name) => column('text column', name));
  for (const condition of spec.filter) column('filter column', condition.column);

  if (spec.embeddingColumn.length > MAX_EMBEDDING_COLUMN_LENGTH) {
    throw badInput(`embeddingColumn "${spec.embeddingColumn}" is longer than ${MAX_EMBEDDING_COLUMN_LENGTH} characters; its tracking columns would not fit a name`);
  }
  const embedding = columns.get(spec.embeddingColumn);
  let vectorType: EmbeddingTable['vectorType'];
  if (embedding) {
    if (embedding.typeName !== 'vector' && embedding.typeName !== 'halfvec') {
      throw badInput(`${label}.${spec.embeddingColumn} is ${embedding.type}, not a pgvector vector or halfvec column`, 'EmbeddingDimensionMismatch');
    }
    if (embedding.typmod !== spec.dimensions) {
      const has = embedding.typmod > 0 ? `${embedding.typmod} dimensions` : 'no fixed dimensions';
      throw badInput(
        `${label}.${spec.embeddingColumn} is ${embedding.type} (${has}) but the backfill asks for ${spec.dimensions}; ` +
          `pass dimensions: ${embedding.typmod > 0 ? embedding.typmod : spec.dimensions} or embed into another column`,
        'EmbeddingDimensionMismatch',
      );
    }
    vectorType = embedding.typeName;
  }

  const q = (name: string) => db.escapeIdentifier(name);
  const hash = `${spec.embeddingColumn}_sha256`;
  const model = `${spec.embeddingColumn}_model`;
  return {
    qualified: `${q(spec.schema)}.${q(spec.table)}`,
    label,
    key: q(key.name),
    keyType: key.type,
    text: `concat_ws(E'\\n\\n', ${textColumns.map((c) => `${q(c.name)}::text`).join(', ')})`,
    embedding: q(spec.embeddingColumn),
    hash: q(hash),
    model: q(model),
    errors: `${q(spec.schema)}.${q(ERRORS_TABLE)}`,
    vectorType,
    vectorTypeOid: embedding?.typeOid,
    tracked: columns.has(hash) && columns.has(model),
    filterColumns: Object.fromEntries(spec.filter.map((c) => [c.column, q(c.column)])),
  };
}

/** The SQL of a row's current text hash, comparable with the tracking column. */
export function textHash(table: EmbeddingTable): string {
  return `sha256(convert_to(${table.text}, 'UTF8'))`;
}

/**
 * Rows whose text changed since they were embedded, that another model embedded, or that were
 * never embedded; with the spec's filter. A row set aside in the errors table for its current
 * text and this model is not work: it keeps whatever vector it had, and is tried again once its
 * text changes. Parameters are numbered from `first`: the model, the table's label, the
 * embedding column, then the filter's values.
 */
export function needsWork(table: EmbeddingTable, spec: EmbeddingBackfillSpec, first: number): { sql: string; params: unknown[] } {
  const params: unknown[] = [spec.model, table.label, spec.embeddingColumn];
  const conditions = [
    `(t.${table.hash} IS DISTINCT FROM ${textHash(table)} OR t.${table.model} IS DISTINCT FROM $${first}::text)`,
    `NOT EXISTS (SELECT 1 FROM ${table.errors} e
                  WHERE e.table_name = $${first + 1} AND e.embedding_column = $${first + 2} AND e.row_key = t.${table.key}::text
                    AND e.model = $${first}::text AND e.content_sha256 = ${textHash(table)})`,
  ];
  for (const condition of spec.filter) {
    const column = `t.${table.filterColumns[condition.column]}`;
    if (condition.op === 'is null' || condition.op === 'is not null') {
      conditions.push(`${column} ${condition.op.toUpperCase()}`);
    } else {
      params.push(condition.value);
      conditions.push(`${column} ${condition.op} $${first + params.length - 1}`);
    }
  }
  return { sql: conditions.join(' AND '), params };
}

/** For activities after prepare: the table must already carry the embedding and tracking columns. */
export function requirePrepared(table: EmbeddingTable, spec: EmbeddingBackfillSpec): Required<Pick<EmbeddingTable, 'vectorType' | 'vectorTypeOid'>> {
  if (!table.vectorType || !table.vectorTypeOid || !table.tracked) {
    throw badInput(`${table.label}.${spec.embeddingColumn} or its tracking columns are missing; the backfill's prepare step creates them`);
  }
  return { vectorType: table.vectorType, vectorTypeOid: table.vectorTypeOid };
}
