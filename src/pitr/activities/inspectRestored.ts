// What the operator judges the restore by, read while the instance is paused at the target:
// per-table row counts there and in the live database now, and the restored database's size.
import type { WorkerConfig } from '../../shared/config';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { countRows } from '../../shared/postgres/rowCounts';
import type { RestoreInstance } from '../contract';
import { instanceTarget } from './instance';

export interface InstanceContents {
  database: string;
  sizeBytes: number;
  rowCounts: Record<string, number>;
  liveRowCounts: Record<string, number>;
  differences: string[];
}

/** "schema.table: live N, restored M" for every table whose count differs or exists on one side only. */
export function rowCountDifferences(live: Record<string, number>, restored: Record<string, number>): string[] {
  const tables = [...new Set([...Object.keys(live), ...Object.keys(restored)])].sort();
  return tables
    .filter((t) => live[t] !== restored[t])
    .map((t) => `${t}: live ${live[t] ?? 'absent'}, restored ${restored[t] ?? 'absent'}`);
}

export function inspectActivities(config: WorkerConfig) {
  async function inspectRestored(input: { cluster: string; instance: RestoreInstance; liveNode: string }): Promise<InstanceContents> {
    const target = instanceTarget(config, input.cluster, input.instance);
    const { sizeBytes, rowCounts } = await withTarget(target, async (client) => ({
      sizeBytes: Number((await client.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size')).rows[0].size),
      rowCounts: await countRows(client),
    }));
    const liveRowCounts = await withTarget(resolveTarget(config, input.liveNode), countRows);
    return { database: target.database, sizeBytes, rowCounts, liveRowCounts, differences: rowCountDifferences(liveRowCounts, rowCounts) };
  }

  return { inspectRestored };
}
