// Replication: each configured standby streaming and how far its replay is behind the primary,
// and every replication slot on the primary with the WAL it holds back.
import type { Client } from 'pg';
import type { WorkerConfig } from '../../shared/config';
import { readTopology } from '../../failover/activities/topology';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { parseLsn } from '../../archive/layout';
import type { DoctorLine } from '../contract';

const LAG_WARN_BYTES = 16 * 1024 * 1024;
const LAG_FAIL_BYTES = 1024 * 1024 * 1024;
const LAG_WARN_S = 30;
const LAG_FAIL_S = 300;
const SLOT_WARN_BYTES = 1024 * 1024 * 1024;

export function replicationHealthActivities(config: WorkerConfig) {
  async function checkReplication(): Promise<DoctorLine[]> {
    const lines: DoctorLine[] = [];
    for (const cluster of Object.keys(config.clusters)) {
      try {
        const topology = await readTopology(config, cluster);
        const primary = resolveTarget(config, topology.primary);
        const view = await withTarget(primary, (c) => primaryView(c), { timeoutMs: 10_000 });
        for (const standby of topology.standbys) lines.push(await standbyLine(cluster, topology.primary, standby, view));
        lines.push(...slotLines(cluster, topology.primary, view));
      } catch (err) {
        lines.push({ check: 'replication', subject: `cluster ${cluster}`, status: 'fail', saw: `no primary answers: ${(err as Error).message}`, next: 'pgops failover status; the watcher may be failing over' });
      }
    }
    return lines;
  }

  /** Asked of the standby itself: the primary cannot tell which of its senders is which standby. */
  async function standbyLine(cluster: string, primary: string, standby: string, view: PrimaryView): Promise<DoctorLine> {
    const subject = `${cluster}: ${standby} from ${primary}`;
    let state: { in_recovery: boolean; receiver: string | null; replayed: string | null };
    try {
      state = await withTarget(resolveTarget(config, standby), async (c) => (await c.query(
        `SELECT pg_is_in_recovery() AS in_recovery, (SELECT status FROM pg_stat_wal_receiver) AS receiver, pg_last_wal_replay_lsn()::text AS replayed`,
      )).rows[0], { timeoutMs: 10_000 });
    } catch (err) {
      return { check: 'replication', subject, status: 'fail', saw: `the standby does not answer: ${(err as Error).message}`, next: `start ${standby}, or rejoin it: pgops rejoin --node ${standby} --new-primary ${primary}` };
    }
    if (!state.in_recovery) return { check: 'replication', subject, status: 'fail', saw: `${standby} is not in recovery: it is a primary too`, next: `fence one of them now (docs/failover.md), then pgops rejoin --node ${standby} --new-primary ${primary}` };
    if (state.receiver !== 'streaming') {
      return { check: 'replication', subject, status: 'fail', saw: `not streaming (WAL receiver ${state.receiver ?? 'not running'})`, next: `read ${standby}'s log; pgops rejoin --node ${standby} --new-primary ${primary} rebuilds it` };
    }
    // The primary was read first: a standby that replayed since then is not behind at all.
    const bytes = Math.max(0, Number(view.currentLsn - parseLsn(state.replayed ?? '0/0')));
    const seconds = view.replayLagSeconds.get(standby) ?? (view.replayLagSeconds.size === 1 ? [...view.replayLagSeconds.values()][0] : undefined);
    const status = bytes > LAG_FAIL_BYTES || (seconds ?? 0) > LAG_FAIL_S ? 'fail' : bytes > LAG_WARN_BYTES || (seconds ?? 0) > LAG_WARN_S ? 'warn' : 'ok';
    return {
      check: 'replication',
      subject,
      status,
      saw: `streaming, replay ${(bytes / 1024).toFixed(0)} kB behind${seconds === undefined ? '' : `, ${seconds.toFixed(1)} s`}`,
      ...(status === 'ok' ? {} : { next: 'the standby cannot keep up: check its disk and CPU, and long queries holding replay back' }),
    };
  }

  return { checkReplication };
}

interface PrimaryView {
  currentLsn: bigint;
  /** Replay lag by sender application_name (a standby's name when pgops rejoined it, else "walreceiver"). */
  replayLagSeconds: Map<string, number>;
  slots: { slot_name: string; active: boolean; wal_status: string | null; retained: string | null }[];
}

async function primaryView(c: Client): Promise<PrimaryView> {
  const { rows: [lsn] } = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  const { rows: senders } = await c.query<{ name: string; lag_s: number | null }>(
    `SELECT application_name AS name, coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_s FROM pg_stat_replication WHERE application_name NOT LIKE 'pgops_wal%'`,
  );
  const { rows: slots } = await c.query<PrimaryView['slots'][number]>(
    `SELECT slot_name, active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained FROM pg_replication_slots ORDER BY slot_name`,
  );
  return { currentLsn: parseLsn(lsn.lsn), replayLagSeconds: new Map(senders.map((s) => [s.name, s.lag_s ?? 0])), slots };
}

function slotLines(cluster: string, primary: string, view: PrimaryView): DoctorLine[] {
  return view.slots.map((slot) => {
    const retained = Number(slot.retained ?? 0);
    const status = slot.wal_status === 'lost' ? 'fail' : (!slot.active && retained > SLOT_WARN_BYTES) || slot.wal_status === 'unreserved' ? 'warn' : 'ok';
    return {
      check: 'slot',
      subject: `${cluster}: ${slot.slot_name} on ${primary}`,
      status,
      saw: `${slot.active ? 'active' : 'inactive'}, WAL ${slot.wal_status ?? 'not reserved'}, holds ${(retained / 1e6).toFixed(0)} MB`,
      ...(status === 'ok'
        ? {}
        : { next: slot.wal_status === 'lost' ? 'the slot lost WAL its reader needed: rebuild that reader (standby or archive), then drop the slot' : "start the slot's reader, or drop the slot if nothing uses it" }),
    };
  });
}
