// Activities behind stackCheck: can the worker reach a target, and does the standby replay the primary?
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { ReplicationProbe, TargetProbe } from '../contract';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { majorVersion, pgToolVersion } from '../../shared/postgres/pgTools';

const REPLAY_WAIT_MS = 30_000;

export function stackProbeActivities(config: WorkerConfig) {
  async function probeTarget(targetName: string): Promise<TargetProbe> {
    const target = resolveTarget(config, targetName);
    const probe = await withTarget(target, async (client) => {
      const { rows } = await client.query<{ version: string; in_recovery: boolean; database: string }>(
        `SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS in_recovery, current_database() AS database`,
      );
      const extensions = await client.query<{ extname: string; extversion: string }>(
        'SELECT extname, extversion FROM pg_extension ORDER BY extname',
      );
      const vector = await client.query<{ default_version: string }>(
        `SELECT default_version FROM pg_available_extensions WHERE name = 'vector'`,
      );
      return {
        serverVersion: rows[0].version.split(' ')[0],
        inRecovery: rows[0].in_recovery,
        database: rows[0].database,
        extensions: Object.fromEntries(extensions.rows.map((r) => [r.extname, r.extversion])),
        pgvectorAvailable: vector.rows[0]?.default_version,
      };
    });
    const pgDumpVersion = await pgToolVersion(config, 'pg_dump');
    if (majorVersion(pgDumpVersion) < majorVersion(probe.serverVersion)) {
      throw ApplicationFailure.nonRetryable(
        `pg_dump ${pgDumpVersion} in ${config.pgBinDir} is older than target ${targetName}'s server ${probe.serverVersion}; ` +
          `point PGOPS_PG_BIN_DIR at PostgreSQL ${majorVersion(probe.serverVersion)} client tools`,
        'PgDumpTooOld',
      );
    }
    return { target: targetName, pgDumpVersion, ...probe };
  }

  /** Writes a marker row on the primary and waits until the standby shows it. Safe to repeat. */
  async function confirmStandbyReplays(input: { primary: string; standby: string; marker: string }): Promise<ReplicationProbe> {
    const primary = resolveTarget(config, input.primary);
    const standby = resolveTarget(config, input.standby);
    await withTarget(primary, async (client) => {
      await client.query('CREATE SCHEMA IF NOT EXISTS pgops');
      await client.query(
        'CREATE TABLE IF NOT EXISTS pgops.stack_check (marker text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())',
      );
      await client.query(
        'INSERT INTO pgops.stack_check (marker) VALUES ($1) ON CONFLICT (marker) DO UPDATE SET written_at = now()',
        [input.marker],
      );
    });
    const written = Date.now();
    const replayedAfterMs = await withTarget(standby, async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
      if (!rows[0].in_recovery) {
        throw ApplicationFailure.nonRetryable(`target ${input.standby} is not a standby: pg_is_in_recovery() is false`, 'NotAStandby');
      }
      while (Date.now() - written < REPLAY_WAIT_MS) {
        Context.current().heartbeat();
        const seen = await client
          .query('SELECT 1 FROM pgops.stack_check WHERE marker = $1', [input.marker])
          .then((r) => r.rowCount === 1)
          .catch((err: { code?: string }) => {
            if (err.code === '42P01') return false; // table not replayed yet
            throw err;
          });
        if (seen) return Date.now() - written;
        await sleep(100);
      }
      throw ApplicationFailure.retryable(
        `standby ${input.standby} did not replay a row written on ${input.primary} within ${REPLAY_WAIT_MS / 1000}s`,
        'StandbyNotReplaying',
      );
    });
    return withTarget(primary, async (client) => {
      const { rows } = await client.query<{ state: string; lag: string }>(
        `SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag
           FROM pg_stat_replication ORDER BY (state = 'streaming') DESC LIMIT 1`,
      );
      await client.query('DELETE FROM pgops.stack_check WHERE marker = $1', [input.marker]);
      return {
        primary: input.primary,
        standby: input.standby,
        replayedAfterMs,
        replicationState: rows[0]?.state ?? 'none',
        replayLagBytes: Number(rows[0]?.lag ?? 0),
      };
    });
  }

  return { probeTarget, confirmStandbyReplays };
}
