// Where each node's WAL stands, read in one bounded round, and LSN arithmetic.
import type { TargetConfig } from '../../shared/config';
import type { PrimaryProbe, StandbyPosition } from '../contract';
import { connectTarget } from '../../shared/postgres/connection';

/** "16/B374D848" -> byte position. */
export function lsnToBigInt(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn);
  if (!match) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${match[1]}`) << 32n) + BigInt(`0x${match[2]}`);
}

/** Bytes from `from` to `to`; negative when `to` is behind. */
export function lsnDiff(to: string, from: string): number {
  return Number(lsnToBigInt(to) - lsnToBigInt(from));
}

export function maxLsn(a: string, b: string): string {
  return lsnToBigInt(a) >= lsnToBigInt(b) ? a : b;
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    work,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** Runs `query` on a fresh connection that must answer within `timeoutMs`; never waits on a frozen server. */
export async function boundedQuery<T>(target: TargetConfig, timeoutMs: number, query: (client: import('pg').Client) => Promise<T>): Promise<T> {
  return withDeadline(
    (async () => {
      const client = await connectTarget(target, { timeoutMs });
      try {
        return await query(client);
      } finally {
        // A frozen server would hold end() forever: close without waiting.
        void client.end().catch(() => undefined);
      }
    })(),
    timeoutMs + 500,
    `${target.name} at ${target.host}:${target.port}`,
  );
}

/** Connect + SELECT 1 within the timeout. */
export async function probePrimary(target: TargetConfig, timeoutMs: number): Promise<PrimaryProbe> {
  const started = Date.now();
  const at = new Date(started).toISOString();
  try {
    await boundedQuery(target, timeoutMs, (client) => client.query('SELECT 1'));
    return { at, ok: true, ms: Date.now() - started };
  } catch (err) {
    return { at, ok: false, ms: Date.now() - started, error: (err as Error).message.split('\n')[0] };
  }
}

const POSITION_SQL = `
  SELECT pg_is_in_recovery() AS in_recovery,
         pg_last_wal_receive_lsn()::text AS receive_lsn,
         pg_last_wal_replay_lsn()::text AS replay_lsn,
         CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS replay_paused,
         greatest((SELECT timeline_id FROM pg_control_checkpoint()),
                  (SELECT min_recovery_end_timeline FROM pg_control_recovery())) AS checkpoint_timeline,
         r.status AS receiver_status,
         r.received_tli,
         (extract(epoch FROM clock_timestamp() - r.last_msg_receipt_time) * 1000)::bigint AS receiver_silent_ms
    FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true`;

interface PositionRow {
  in_recovery: boolean;
  receive_lsn: string | null;
  replay_lsn: string | null;
  replay_paused: boolean | null;
  checkpoint_timeline: number;
  receiver_status: string | null;
  received_tli: number | null;
  receiver_silent_ms: string | null;
}

export async function readPosition(target: TargetConfig, timeoutMs: number): Promise<StandbyPosition> {
  try {
    const row = await boundedQuery(target, timeoutMs, async (client) => (await client.query<PositionRow>(POSITION_SQL)).rows[0]);
    return {
      node: target.name,
      reachable: true,
      inRecovery: row.in_recovery,
      receiveLsn: row.receive_lsn ?? undefined,
      replayLsn: row.replay_lsn ?? undefined,
      replayPaused: row.replay_paused ?? undefined,
      receiverStatus: row.receiver_status ?? undefined,
      receiverSilentMs: row.receiver_silent_ms === null ? undefined : Number(row.receiver_silent_ms),
      // The receiver knows the live timeline; without one, pg_control's latest is the best record.
      timeline: Math.max(row.received_tli ?? 0, row.checkpoint_timeline),
    };
  } catch (err) {
    return { node: target.name, reachable: false, error: (err as Error).message.split('\n')[0] };
  }
}

/** All standbys at once, each bounded by the timeout, so the comparison is of one moment. */
export function readPositions(targets: TargetConfig[], timeoutMs: number): Promise<StandbyPosition[]> {
  return Promise.all(targets.map((target) => readPosition(target, timeoutMs)));
}

/** The furthest WAL a standby holds: what it received, or replayed if more (a restored segment). */
export function furthest(position: StandbyPosition): string | undefined {
  if (position.receiveLsn && position.replayLsn) return maxLsn(position.receiveLsn, position.replayLsn);
  return position.receiveLsn ?? position.replayLsn;
}
