// What the archive needs of a server, read and arranged with SQL: its settings, identity and
// timeline, and the slots that hold its WAL until the archive has it. Slots are created with
// reserve (pg_create_physical_replication_slot(name, true)), so they hold WAL from the moment
// they exist, not from pg_receivewal's first connection.
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import type { TargetConfig } from '../../shared/config';

export interface ServerFacts {
  inRecovery: boolean;
  systemIdentifier: string;
  timeline: number;
  currentLsn: string;
  segmentBytes: number;
  walLevel: string;
  maxWalSenders: number;
  maxReplicationSlots: number;
  maxSlotWalKeepSize: string;
  summarizeWal: string;
  canReplicate: boolean;
  synchronousStandbyNames: string;
  version: string;
}

const FACTS_SQL = `
  SELECT pg_is_in_recovery() AS in_recovery,
         (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
         CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text AS current_lsn,
         CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS timeline_hex,
         (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
         (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')::bigint AS segment_bytes,
         current_setting('wal_level') AS wal_level,
         current_setting('max_wal_senders')::int AS max_wal_senders,
         current_setting('max_replication_slots')::int AS max_replication_slots,
         current_setting('max_slot_wal_keep_size') AS max_slot_wal_keep_size,
         current_setting('summarize_wal') AS summarize_wal,
         current_setting('synchronous_standby_names') AS synchronous_standby_names,
         current_setting('server_version') AS version,
         (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`;

export async function readServerFacts(client: Client): Promise<ServerFacts> {
  const r = (await client.query(FACTS_SQL)).rows[0];
  return {
    inRecovery: r.in_recovery,
    systemIdentifier: r.system_identifier,
    // The insert timeline (from the current segment's name): pg_control's lags a promotion until its checkpoint.
    timeline: r.timeline_hex ? parseInt(r.timeline_hex, 16) : Number(r.checkpoint_timeline),
    currentLsn: r.current_lsn,
    segmentBytes: Number(r.segment_bytes),
    walLevel: r.wal_level,
    maxWalSenders: r.max_wal_senders,
    maxReplicationSlots: r.max_replication_slots,
    maxSlotWalKeepSize: r.max_slot_wal_keep_size,
    summarizeWal: r.summarize_wal,
    canReplicate: r.can_replicate,
    synchronousStandbyNames: r.synchronous_standby_names,
    version: r.version,
  };
}

/**
 * Refuses a server the archive cannot work with, naming the setting and the fix; returns the
 * warnings for settings that only weaken it.
 */
export function checkServerForArchive(target: TargetConfig, facts: ServerFacts, options: { synchronous: boolean; applicationName: string }): string[] {
  const where = `server ${target.name} (${target.host}:${target.port})`;
  const refuse = (what: string) => {
    throw ApplicationFailure.nonRetryable(`ServerNotConfigured: ${where} ${what}`, 'ServerNotConfigured');
  };
  if (facts.walLevel !== 'replica' && facts.walLevel !== 'logical') {
    refuse(`runs with wal_level=${facts.walLevel}; the WAL archive needs wal_level=replica (or logical) and max_wal_senders > 0: set them in postgresql.conf and restart the server`);
  }
  if (facts.maxWalSenders < 1) refuse('has max_wal_senders=0; set max_wal_senders to at least 2 more than your standbys and restart the server');
  if (facts.maxReplicationSlots < 2) refuse(`has max_replication_slots=${facts.maxReplicationSlots}; the archive needs 2 slots: raise it and restart the server`);
  if (!facts.canReplicate) refuse(`is reached as role "${target.user}", which lacks the REPLICATION attribute: ALTER ROLE ${target.user} REPLICATION (and allow it in pg_hba.conf's replication lines)`);
  if (facts.maxSlotWalKeepSize === '-1') {
    refuse('has max_slot_wal_keep_size=-1: a stopped archiver\'s slot could then fill the disk; set it (e.g. 2GB, above a day\'s WAL at peak) and reload');
  }
  const warnings: string[] = [];
  if (facts.summarizeWal !== 'on') warnings.push(`${where} has summarize_wal=off: incremental base backups need it on (on every node)`);
  if (options.synchronous && !facts.synchronousStandbyNames.includes(options.applicationName)) {
    warnings.push(
      `cluster is configured for synchronous archiving but ${where}'s synchronous_standby_names (${JSON.stringify(facts.synchronousStandbyNames)}) ` +
        `does not name ${options.applicationName}: commits do not wait for the archive`,
    );
  }
  return warnings;
}

export interface SlotState {
  slotName: string;
  walStatus: string | null;
  restartLsn: string | null;
  safeWalSizeBytes: number | null;
  activePid: number | null;
  invalidationReason: string | null;
}

export async function readSlot(client: Client, slot: string): Promise<SlotState | undefined> {
  const { rows } = await client.query(
    `SELECT slot_name, wal_status, restart_lsn::text AS restart_lsn, safe_wal_size, active_pid, invalidation_reason
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    slotName: r.slot_name,
    walStatus: r.wal_status,
    restartLsn: r.restart_lsn,
    safeWalSizeBytes: r.safe_wal_size === null ? null : Number(r.safe_wal_size),
    activePid: r.active_pid,
    invalidationReason: r.invalidation_reason,
  };
}

export function slotLost(slot: SlotState): boolean {
  return slot.walStatus === 'lost' || slot.invalidationReason !== null || slot.restartLsn === null;
}

/** The slot as it should be: created reserving WAL if absent; a lost one is dropped and created anew (the caller reports the gap). */
export async function ensureSlot(client: Client, slot: string): Promise<{ slot: SlotState; recreatedLost?: SlotState }> {
  const existing = await readSlot(client, slot);
  if (existing && !slotLost(existing)) return { slot: existing };
  if (existing) {
    if (existing.activePid !== null) await client.query('SELECT pg_terminate_backend($1)', [existing.activePid]);
    await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
  }
  try {
    await client.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
  } catch (err) {
    // Created by a concurrent attempt between the read and here.
    if ((err as { code?: string }).code !== '42710') throw err;
  }
  return { slot: (await readSlot(client, slot))!, recreatedLost: existing };
}

/** Moves a hold slot forward to `lsn`, never past what the server has (its flush, or a standby's replay), never back. */
export async function advanceHoldSlot(client: Client, slot: string, lsn: string): Promise<void> {
  await client.query(
    `SELECT pg_replication_slot_advance(slot_name, least($2::pg_lsn,
              CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END))
       FROM pg_replication_slots
      WHERE slot_name = $1 AND active_pid IS NULL AND restart_lsn IS NOT NULL
        AND restart_lsn < least($2::pg_lsn, CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)`,
    [slot, lsn],
  );
}
