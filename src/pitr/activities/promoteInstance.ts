// After approval: the paused instance ends recovery and opens a new timeline of its own (same
// system identifier, so never archived into the live cluster's timelines). The WAL fetch
// program's settings hold the bucket's credentials: they go as soon as recovery is over.
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { withTarget } from '../../shared/postgres/connection';
import type { RestoreInstance } from '../contract';
import { instancePaths, instanceTarget } from './instance';

export function promoteActivities(config: WorkerConfig) {
  async function promoteInstance(input: { cluster: string; instance: RestoreInstance }): Promise<{ timeline: number; lsn: string }> {
    const target = instanceTarget(config, input.cluster, input.instance);
    const promoted = await withTarget(target, async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
      // A retry after the promotion happened only reads where it is.
      if (rows[0].in_recovery) {
        const { rows: done } = await client.query<{ promoted: boolean }>('SELECT pg_promote(wait => true, wait_seconds => 60) AS promoted');
        if (!done[0].promoted) throw ApplicationFailure.retryable('pg_promote on the restored instance did not finish within 60 s', 'PromoteTimeout');
      }
      for (let i = 0; i < 50; i++) {
        const { rows: now } = await client.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
        if (!now[0].in_recovery) break;
        await sleep(200);
      }
      const { rows: after } = await client.query<{ walfile: string; lsn: string }>(
        'SELECT pg_walfile_name(pg_current_wal_lsn()) AS walfile, pg_current_wal_lsn()::text AS lsn',
      );
      return { timeline: parseInt(after[0].walfile.slice(0, 8), 16), lsn: after[0].lsn };
    });
    const paths = instancePaths(input.instance);
    await rm(paths.fetchEnv, { force: true });
    await rm(paths.cache, { recursive: true, force: true });
    return promoted;
  }

  return { promoteInstance };
}
