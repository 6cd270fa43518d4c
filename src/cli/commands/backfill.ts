// pgops backfill start|status|pause|resume: the embedding backfill of a table.
import { parseArgs } from 'node:util';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { EmbeddingBackfillInput, EmbeddingProgress } from '../../embeddings/contract';
import {
  embeddingBackfillHandle,
  embeddingProgress,
  EmbeddingInputInvalid,
  pauseEmbeddingBackfill,
  resumeEmbeddingBackfill,
  startEmbeddingBackfill,
} from '../../client/embeddings';
import { followRun, UsageError, warnWhenNoWorker, withTemporal } from './common';

const BAR_WIDTH = 30;

export function progressBar(p: EmbeddingProgress): string {
  const finished = p.done + p.errors + p.skipped;
  const share = p.total > 0 ? Math.min(1, finished / p.total) : p.stage === 'done' ? 1 : 0;
  const filled = Math.round(share * BAR_WIDTH);
  const eta = p.etaSeconds !== undefined ? `, ETA ${p.etaSeconds} s` : '';
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ` +
    `${p.stage.padEnd(9)} ${finished}/${p.total} rows, ${p.rowsPerSecond} rows/s${eta}, ${p.errors} errors, pass ${p.pass}`
  );
}

function whichTable(args: string[]) {
  return parseArgs({
    args,
    options: {
      target: { type: 'string' },
      schema: { type: 'string' },
      table: { type: 'string' },
      column: { type: 'string' },
      text: { type: 'string' },
      key: { type: 'string' },
      model: { type: 'string' },
      dimensions: { type: 'string' },
      'batch-size': { type: 'string' },
      'in-flight': { type: 'string' },
      rpm: { type: 'string' },
      tpm: { type: 'string' },
      index: { type: 'boolean', default: false },
      detach: { type: 'boolean', default: false },
    },
  }).values;
}

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got ${value}`);
  return Number(value);
}

function toInput(values: ReturnType<typeof whichTable>): EmbeddingBackfillInput {
  const input: EmbeddingBackfillInput = {
    target: values.target,
    schema: values.schema,
    table: values.table,
    embeddingColumn: values.column,
    keyColumn: values.key,
    textColumns: values.text?.split(',').map((c) => c.trim()),
    model: values.model,
    dimensions: number('dimensions', values.dimensions),
    batchSize: number('batch-size', values['batch-size']),
    batchesInFlight: number('in-flight', values['in-flight']),
    requestsPerMinute: number('rpm', values.rpm),
    tokensPerMinute: number('tpm', values.tpm),
    index: values.index || undefined,
  };
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
}

export async function backfillCommand([sub, ...args]: string[]): Promise<number> {
  const values = whichTable(args);
  const input = toInput(values);
  return withTemporal(async (client, config) => {
    try {
      switch (sub) {
        case 'start': {
          const handle = await startEmbeddingBackfill(client, { taskQueue: config.taskQueue }, input);
          await warnWhenNoWorker(client, config.taskQueue);
          console.error(`backfill ${handle.workflowId} on task queue ${config.taskQueue} (a running backfill of this table is attached to, not duplicated)`);
          if (values.detach) return 0;
          return follow(handle);
        }
        case 'status': {
          console.log(progressBar(await embeddingProgress(embeddingBackfillHandle(client, input))));
          return 0;
        }
        case 'pause':
        case 'resume': {
          const handle = embeddingBackfillHandle(client, input);
          await (sub === 'pause' ? pauseEmbeddingBackfill(handle) : resumeEmbeddingBackfill(handle));
          console.log(`${sub === 'pause' ? 'paused' : 'resumed'} ${handle.workflowId}${sub === 'pause' ? ' (batches in flight finish first)' : ''}`);
          return 0;
        }
        default:
          throw new UsageError(`backfill needs start, status, pause or resume, got ${sub ?? 'nothing'}`);
      }
    } catch (err) {
      if (err instanceof EmbeddingInputInvalid) throw new UsageError(err.message);
      if (err instanceof WorkflowNotFoundError) {
        throw new UsageError(`no backfill of that table is running (${err.message}); start one with pgops backfill start`);
      }
      throw err;
    }
  });
}

async function follow(handle: ReturnType<typeof embeddingBackfillHandle>): Promise<number> {
  const result = await followRun(handle, async () => progressBar(await embeddingProgress(handle)));
  if (!result) return 1;
  console.log(progressBar(result.progress));
  if (result.indexBuilt) console.log(`index ${result.indexBuilt.name} built in ${(result.indexBuilt.ms / 1000).toFixed(1)} s`);
  return 0;
}
