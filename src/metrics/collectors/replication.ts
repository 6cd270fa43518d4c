// Replication of each configured cluster, read at scrape time from its primary as the servers say
// it is now (src/failover/activities/topology.ts: after a failover the configured primary may be a
// standby). Per standby: streaming or not, and how far behind in bytes and seconds, from
// pg_stat_replication. Per slot: the WAL it keeps on the primary, from pg_replication_slots; the
// WAL archive's slots (pgops_wal_*) are also its archive lag.
//
// The primary names its walsenders by application_name, which pg_basebackup -R leaves as
// "walreceiver"; a standby is matched to its walsender by the slot its WAL receiver streams from
// (asked of the standby), else by an application_name equal to its target name (rejoinAsStandby
// sets it). A standby that matches no walsender is not streaming.
import type { Registry } from 'prom-client';
import type { WorkerConfig } from '../../shared/config';
import { readTopology } from '../../failover/activities/topology';
import { boundedQuery } from '../../failover/activities/walPositions';
import { resolveTarget } from '../../shared/postgres/connection';
import { sampledGauge } from '../sampled';
import { ScrapeSource, type ScrapeSourceOptions } from '../scrapeSource';

/** Slots of the physical WAL archive (pg_receivewal into the bucket) are named with this prefix. */
export const WAL_ARCHIVE_SLOT_PREFIX = 'pgops_wal_';

const QUERY_TIMEOUT_MS = 3_000;

export interface StandbyReplication {
  standby: string;
  streaming: boolean;
  /** pg_stat_replication.state of its walsender (streaming, catchup, startup, backup, stopping). */
  state?: string;
  lagBytes?: number;
  lagSeconds?: number;
}

export interface SlotRetention {
  slot: string;
  slotType: string;
  active: boolean;
  retainedBytes?: number;
}

export interface ClusterReplication {
  cluster: string;
  primary: string;
  primaryUp: boolean;
  standbys: StandbyReplication[];
  slots: SlotRetention[];
}

interface SenderRow {
  application_name: string;
  state: string;
  slot_name: string | null;
  lag_bytes: number | null;
  replay_lag_seconds: number | null;
}

interface SlotRow {
  slot_name: string;
  slot_type: string;
  active: boolean;
  retained_bytes: number | null;
}

const SENDERS_SQL = `
  SELECT r.application_name, r.state, s.slot_name,
         pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::float8 AS lag_bytes,
         extract(epoch FROM r.replay_lag)::float8 AS replay_lag_seconds
    FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid`;

const SLOTS_SQL = `
  SELECT slot_name, slot_type, active,
         pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained_bytes
    FROM pg_replication_slots`;

/** The slot the standby's WAL receiver streams from, when it runs and uses one. */
async function receiverSlot(config: WorkerConfig, standby: string): Promise<string | undefined> {
  try {
    const { rows } = await boundedQuery(resolveTarget(config, standby), QUERY_TIMEOUT_MS, (c) => c.query<{ slot_name: string | null }>('SELECT slot_name FROM pg_stat_wal_receiver'));
    return rows[0]?.slot_name ?? undefined;
  } catch {
    return undefined; // down: it streams from nothing
  }
}

export async function readClusterReplication(config: WorkerConfig, clusterName: string): Promise<ClusterReplication> {
  const topology = await readTopology(config, clusterName);
  const primaryPosition = topology.nodes.find((n) => n.node === topology.primary);
  const primaryUp = primaryPosition?.reachable === true && primaryPosition.inRecovery === false;
  const base = { cluster: clusterName, primary: topology.primary, primaryUp };
  if (!primaryUp) return { ...base, standbys: topology.standbys.map((standby) => ({ standby, streaming: false })), slots: [] };

  const [primaryRows, slots] = await Promise.all([
    boundedQuery(resolveTarget(config, topology.primary), QUERY_TIMEOUT_MS, async (c) => ({
      senders: (await c.query<SenderRow>(SENDERS_SQL)).rows,
      slots: (await c.query<SlotRow>(SLOTS_SQL)).rows,
    })),
    Promise.all(topology.standbys.map((standby) => receiverSlot(config, standby))),
  ]);
  const standbys = topology.standbys.map((standby, i): StandbyReplication => {
    const sender =
      primaryRows.senders.find((s) => slots[i] !== undefined && s.slot_name === slots[i]) ?? primaryRows.senders.find((s) => s.application_name === standby);
    if (!sender) return { standby, streaming: false };
    const streaming = sender.state === 'streaming';
    return {
      standby,
      streaming,
      state: sender.state,
      lagBytes: sender.lag_bytes ?? undefined,
      // replay_lag turns NULL once a standby has caught up and the primary is idle: no lag.
      lagSeconds: sender.replay_lag_seconds ?? (streaming ? 0 : undefined),
    };
  });
  return {
    ...base,
    standbys,
    slots: primaryRows.slots.map((s) => ({ slot: s.slot_name, slotType: s.slot_type, active: s.active, retainedBytes: s.retained_bytes ?? undefined })),
  };
}

export function registerReplicationMetrics(registry: Registry, config: WorkerConfig, options: ScrapeSourceOptions): ScrapeSource<unknown>[] {
  const sources = Object.keys(config.clusters).map((cluster) => new ScrapeSource(`replication:${cluster}`, () => readClusterReplication(config, cluster), options));
  const all = new ScrapeSource(
    'replication',
    async () => (await Promise.all(sources.map((s) => s.get()))).filter((r): r is ClusterReplication => r !== undefined),
    { ttlMs: 0, deadlineMs: options.deadlineMs + 1_000 },
  );
  sampledGauge(registry, all, {
    name: 'pgops_cluster_primary',
    help: '1 for the node that is the cluster\'s primary now (read from the servers), with whether it answers as one in pgops_cluster_primary_up.',
    labelNames: ['cluster', 'node'],
    *samples(clusters) {
      for (const c of clusters) yield [{ cluster: c.cluster, node: c.primary }, 1];
    },
  });
  sampledGauge(registry, all, {
    name: 'pgops_cluster_primary_up',
    help: '1 when the cluster\'s primary answers and is writable.',
    labelNames: ['cluster'],
    *samples(clusters) {
      for (const c of clusters) yield [{ cluster: c.cluster }, c.primaryUp ? 1 : 0];
    },
  });
  const standbyGauge = (name: string, help: string, value: (s: StandbyReplication) => number | undefined) =>
    sampledGauge(registry, all, {
      name,
      help,
      labelNames: ['cluster', 'standby'],
      *samples(clusters) {
        for (const c of clusters) {
          for (const s of c.standbys) {
            const v = value(s);
            if (v !== undefined) yield [{ cluster: c.cluster, standby: s.standby }, v];
          }
        }
      },
    });
  standbyGauge('pgops_replication_streaming', '1 when the standby streams WAL from the cluster\'s primary (pg_stat_replication.state = streaming).', (s) => (s.streaming ? 1 : 0));
  standbyGauge('pgops_replication_lag_bytes', 'WAL the primary has written that the standby has not replayed yet.', (s) => s.lagBytes);
  standbyGauge('pgops_replication_lag_seconds', 'Replay lag of the standby as the primary measures it (pg_stat_replication.replay_lag).', (s) => s.lagSeconds);
  const slotGauge = (name: string, help: string, pick: (s: SlotRetention) => boolean, value: (s: SlotRetention) => number | undefined) =>
    sampledGauge(registry, all, {
      name,
      help,
      labelNames: ['cluster', 'slot', 'slot_type'],
      *samples(clusters) {
        for (const c of clusters) {
          for (const s of c.slots.filter(pick)) {
            const v = value(s);
            if (v !== undefined) yield [{ cluster: c.cluster, slot: s.slot, slot_type: s.slotType }, v];
          }
        }
      },
    });
  slotGauge('pgops_replication_slot_retained_bytes', 'WAL the primary keeps for the slot (from its restart_lsn to the current WAL position).', () => true, (s) => s.retainedBytes);
  slotGauge('pgops_replication_slot_active', '1 while a client streams from the slot.', () => true, (s) => (s.active ? 1 : 0));
  slotGauge('pgops_wal_archive_lag_bytes', 'WAL not yet taken by the WAL archive (retained bytes of its pgops_wal_* slot).', (s) => s.slot.startsWith(WAL_ARCHIVE_SLOT_PREFIX), (s) => s.retainedBytes);
  return sources;
}
