// Types of the embedding backfill, shared by its workflow, activities and clients. Workflows
// import these as types only.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { TargetName } from '../shared/targets';

/** One condition of a backfill's row filter; conditions are ANDed. Values travel as parameters, never as SQL. */
export interface EmbeddingRowFilter {
  column: string;
  op: '=' | '<>' | '<' | '<=' | '>' | '>=' | 'is null' | 'is not null';
  value?: string | number | boolean;
}

export interface EmbeddingIndexOptions {
  /** Drop and build again even when a valid index exists. */
  rebuild?: boolean;
  /** maintenance_work_mem for the build, e.g. "512MB" (default 256MB). */
  maintenanceWorkMem?: string;
  /** HNSW parameters (pgvector defaults: m 16, ef_construction 64). */
  m?: number;
  efConstruction?: number;
}

export interface EmbeddingBackfillInput {
  /** Configured target whose database holds the table (default `primary`). */
  target?: TargetName;
  schema?: string;
  table?: string;
  keyColumn?: string;
  /** Embedded as one text, joined by blank lines, in this order. */
  textColumns?: string[];
  embeddingColumn?: string;
  model?: string;
  dimensions?: number;
  /** Inputs per API request (at most 2,048). */
  batchSize?: number;
  /**
   * API requests one batch sends at once (default 1). Each batch costs a workflow task and a
   * database round trip; at high request rates with small requests, several per batch keep that
   * overhead from capping the rate below the budget.
   */
  requestsPerBatch?: number;
  /** Estimated tokens per API request (the API caps a request at 300,000). */
  maxTokensPerRequest?: number;
  /** The model's limit for one input; longer rows go to the errors table. */
  maxTokensPerInput?: number;
  filter?: EmbeddingRowFilter[];
  /**
   * Rows the backfill may set aside in the errors table (texts the model cannot take) before it
   * stops and says so: many at once point at a cause to fix, not at a few bad texts (default 1,000).
   */
  maxErrors?: number;
  /** API requests running at once. */
  batchesInFlight?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** History stays bounded: the run continues as new after this many batches. */
  batchesPerRun?: number;
  /** Per-request timeout of the embeddings API, in ms. */
  requestTimeoutMs?: number;
  /** Build (or rebuild) an HNSW cosine index once every row is embedded. */
  index?: boolean | EmbeddingIndexOptions;
  /** How long a silent worker is trusted before its batch is retried elsewhere (default 30 seconds). */
  heartbeatTimeout?: string;
}

/** Everything resolved, validated and defaulted: what the workflow and activities work from. */
export interface EmbeddingBackfillSpec {
  target: TargetName;
  schema: string;
  table: string;
  keyColumn: string;
  textColumns: string[];
  embeddingColumn: string;
  model: string;
  dimensions: number;
  batchSize: number;
  requestsPerBatch: number;
  maxTokensPerRequest: number;
  maxTokensPerInput: number;
  filter: EmbeddingRowFilter[];
  maxErrors: number;
  batchesInFlight: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  batchesPerRun: number;
  requestTimeoutMs: number;
  index?: EmbeddingIndexOptions;
  heartbeatTimeout: string;
}

export interface PreparedEmbeddingTable {
  /** `vector` or, above 2,000 dimensions, `halfvec` (HNSW indexes `vector` only up to 2,000). */
  vectorType: 'vector' | 'halfvec';
  /** Whether prepare added the embedding column (and its tracking columns). */
  addedColumn: boolean;
  totalRows: number;
  /** Rows whose text is new, changed, or embedded by another model. */
  rowsNeedingWork: number;
}

/** Keys travel as text: the workflow never needs their type, PostgreSQL casts them back. */
export interface EmbeddingBatchPlan {
  /** Exclusive lower bound of the batch's keys; absent for the first batch of a pass. */
  afterKey?: string;
  /** Inclusive upper bound. */
  lastKey: string;
  rows: number;
  estimatedTokens: number;
  /** API requests the batch will send (rows within batchSize and maxTokensPerRequest each). */
  requests: number;
}

export interface PlannedPage {
  batches: EmbeddingBatchPlan[];
  /** True when the scan reached the end of the table. */
  exhausted: boolean;
}

export interface RateLimitHint {
  /** From x-ratelimit-remaining-* of the last response. */
  remainingRequests?: number;
  remainingTokens?: number;
  /** Until the window resets, from x-ratelimit-reset-*, in ms. */
  resetMs?: number;
}

export interface EmbedBatchResult {
  embedded: number;
  /** Rows recorded in the errors table (empty text, over the token limit). */
  errors: number;
  /** Rows in the range that no longer needed work (written by an earlier attempt, or filtered). */
  skipped: number;
  /** Rows whose text changed between read and write; a later pass embeds them. */
  changedMeanwhile: number;
  requests: number;
  tokens: number;
  /** Time spent waiting on 429s. */
  rateLimitedMs: number;
  rateLimit?: RateLimitHint;
}

export type EmbeddingBackfillStage = 'preparing' | 'embedding' | 'paused' | 'indexing' | 'done' | 'cancelled' | 'failed';

export interface EmbeddingProgress {
  workflowId: string;
  target: TargetName;
  table: string;
  stage: EmbeddingBackfillStage;
  /** Rows embedded by this backfill (all runs of its continue-as-new chain). */
  done: number;
  /** Rows that needed work when the backfill started, plus edits found by later passes. */
  total: number;
  errors: number;
  skipped: number;
  requests: number;
  tokens: number;
  rateLimitedMs: number;
  batchesInFlight: number;
  /** Full passes over the table; a later pass catches rows edited while an earlier one ran. */
  pass: number;
  rowsPerSecond: number;
  etaSeconds?: number;
  startedAt: string;
  error?: string;
}

/** What the workflow carries into its next run when it continues as new. */
export interface EmbeddingBackfillCarry {
  progress: EmbeddingProgress;
  afterKey?: string;
  paused: boolean;
  /** Milliseconds spent embedding (paused time excluded), for rows/s. */
  activeMs: number;
  bucket: { requests: number; tokens: number; at: number };
}

export interface EmbeddingBackfillResult {
  progress: EmbeddingProgress;
  indexBuilt?: { name: string; ms: number };
}

// ---------------------------------------------------------------- messages

export const embeddingProgressQuery = defineQuery<EmbeddingProgress>('progress');
export const pauseEmbeddingSignal = defineSignal('pause');
export const resumeEmbeddingSignal = defineSignal('resume');

// ---------------------------------------------------------------- workflow types
// The names the worker registers (src/workflows.ts exports a function of each name with this
// signature; test/contracts.test.ts holds them together) and the clients start.

export const EMBEDDING_BACKFILL_WORKFLOW = 'embeddingBackfill';
export type EmbeddingBackfillWorkflow = (input: EmbeddingBackfillInput, carry?: EmbeddingBackfillCarry) => Promise<EmbeddingBackfillResult>;
