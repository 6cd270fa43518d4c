// Which base backup a point-in-time restore starts from, whether the target lies in the
// recoverable window at all, and the recovery settings that stop replay exactly there. Pure, so
// the workflow's refusals are the same on every worker and testable without a server.
import { formatLsn, parseLsn, type BaseBackupRecord } from '../archive/layout';
import type { RecoverableWindow } from '../archive/recoveryWindow';
import type { ChosenBackup, RecoveryTarget } from './contract';

/**
 * A timestamp with its zone, as PostgreSQL reads recovery_target_time: "2026-11-30 14:31:07+09",
 * "2026-11-30T05:31:07.123456Z". A time without a zone would mean the server's zone: refused.
 */
const TIME_WITH_ZONE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?\s*(Z|[+-]\d{2}(?::?\d{2})?)$/i;
const RESTORE_POINT_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._:@+-]{0,62}$/;

/** Milliseconds since the epoch of a target time (microseconds cut: comparisons only, never the setting). */
export function targetTimeMs(time: string): number | undefined {
  const m = TIME_WITH_ZONE.exec(time.trim());
  if (!m) return undefined;
  const zone = m[8].toUpperCase();
  const offsetMin = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.replace(':', '').slice(3, 5) || 0));
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), Math.floor(Number(m[7] ?? 0) * 1000));
  return Number.isNaN(ms) ? undefined : ms - offsetMin * 60_000;
}

/**
 * The time as recovery_target_time takes it: PostgreSQL refuses ISO 8601's "T…Z" form there, so
 * the same instant in "2026-11-30 05:31:07.123456+00" form, every digit kept.
 */
export function postgresTimestamp(time: string): string {
  const m = TIME_WITH_ZONE.exec(time.trim());
  if (!m) throw new Error(`"${time}" is not a timestamp with a zone`);
  const zone = m[8].toUpperCase() === 'Z' ? '+00' : m[8];
  return `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}${m[7] ?? ''}${zone}`;
}

/** Why `target` is not a recovery target, or undefined when it is one. */
export function recoveryTargetProblem(target: RecoveryTarget | undefined): string | undefined {
  switch (target?.kind) {
    case 'time':
      return typeof target.time === 'string' && targetTimeMs(target.time) !== undefined
        ? undefined
        : `target time ${JSON.stringify(target.time)} is not a timestamp with a zone, like "2026-11-30 14:31:07+09"`;
    case 'lsn':
      try {
        parseLsn(target.lsn);
        return undefined;
      } catch {
        return `target LSN ${JSON.stringify(target.lsn)} is not a WAL position like 16/B374D848`;
      }
    case 'restorePoint':
      return typeof target.name === 'string' && RESTORE_POINT_NAME.test(target.name)
        ? undefined
        : `restore point name ${JSON.stringify(target.name)} must be 1-63 letters, digits, spaces or . _ : @ + -`;
    case 'latest':
      return undefined;
    default:
      return `target must be {kind: "time"|"lsn"|"restorePoint"|"latest"}, got ${JSON.stringify(target)?.slice(0, 80)}`;
  }
}

export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time':
      return `time ${target.time}`;
    case 'lsn':
      return `LSN ${target.lsn}`;
    case 'restorePoint':
      return `restore point "${target.name}"`;
    case 'latest':
      return 'the newest archived WAL';
  }
}

export function describeWindow(window: RecoverableWindow): string {
  if (!window.from || !window.to) {
    const why = window.backups.filter((b) => b.reason).map((b) => `${b.backupId}: ${b.reason}`);
    return `there is no recoverable window (${window.problem ?? 'unknown reason'}${why.length ? `; ${why.slice(-3).join('; ')}` : ''})`;
  }
  return (
    `the recoverable window is from ${window.from.at ?? '?'} (LSN ${window.from.lsn}, base backup ${window.from.backupId}) ` +
    `to ${window.to.at ?? '?'} (LSN ${window.to.lsn}, the newest archived WAL)`
  );
}

export type BackupChoice = { ok: true; backup: ChosenBackup; notes: string[] } | { ok: false; why: string };

/**
 * The newest base backup whose WAL chain reaches the archive's head and which ended before the
 * target (recovery cannot stop before the backup is consistent), with its incremental chain. A
 * target outside the window is refused, saying what the window is.
 */
export function chooseBaseBackup(root: string, backups: BaseBackupRecord[], window: RecoverableWindow, target: RecoveryTarget): BackupChoice {
  const windowText = describeWindow(window);
  if (!window.from || !window.to) return { ok: false, why: `cannot restore to ${describeTarget(target)}: ${windowText}` };
  const complete = new Set(window.backups.filter((b) => b.complete).map((b) => b.backupId));
  const usable = backups.filter((b) => complete.has(b.backupId)).sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  const notes: string[] = [];
  let chosen: BaseBackupRecord | undefined;
  const refuse = (what: string): BackupChoice => ({ ok: false, why: `cannot restore to ${describeTarget(target)}: it is ${what}; ${windowText}` });

  switch (target.kind) {
    case 'time': {
      const at = targetTimeMs(target.time)!;
      const from = Date.parse(window.from.at ?? '');
      const to = Date.parse(window.to.at ?? '');
      if (at < from) return refuse('before the end of the oldest usable base backup');
      if (!Number.isNaN(to) && at > to) return refuse('after the newest archived WAL');
      chosen = usable.filter((b) => Date.parse(b.stoppedAt) <= at).at(-1);
      break;
    }
    case 'lsn': {
      const lsn = parseLsn(target.lsn);
      if (lsn < parseLsn(window.from.lsn)) return refuse('before the end of the oldest usable base backup');
      if (lsn > parseLsn(window.to.lsn)) return refuse('after the newest archived WAL');
      chosen = usable.filter((b) => parseLsn(b.stopLsn) <= lsn).at(-1);
      break;
    }
    case 'restorePoint':
      // Where a restore point lies is written only in the WAL: start early enough to meet it.
      chosen = usable[0];
      notes.push(`the position of restore point "${target.name}" is known only once replay meets it: replaying from the oldest usable base backup`);
      break;
    case 'latest':
      chosen = usable.at(-1);
      notes.push(`"latest" is the newest archived position now, ${window.to.lsn}${window.to.at ? ` (archived ${window.to.at})` : ''}: replay pauses once it gets there`);
      break;
  }
  if (!chosen) return refuse('not after any usable base backup');
  const chain = backupChain(chosen, backups);
  if (typeof chain === 'string') return { ok: false, why: chain };
  return {
    ok: true,
    notes,
    backup: {
      root,
      systemIdentifier: chosen.systemIdentifier,
      chain: chain.map((b) => b.backupId),
      backupId: chosen.backupId,
      stopLsn: chosen.stopLsn,
      stoppedAt: chosen.stoppedAt,
      sizeBytes: chain.reduce((sum, b) => sum + b.sizeBytes, 0),
      why:
        target.kind === 'restorePoint'
          ? 'the oldest base backup whose WAL chain reaches the archive head'
          : `the newest base backup that ended before ${describeTarget(target)} and whose WAL chain reaches the archive head`,
    },
  };
}

/** The full backup first and `backup` last, or why the chain is broken. */
function backupChain(backup: BaseBackupRecord, all: BaseBackupRecord[]): BaseBackupRecord[] | string {
  const byId = new Map(all.map((b) => [b.backupId, b]));
  const chain = [backup];
  while (chain[0].kind === 'incremental') {
    const parent = byId.get(chain[0].parentBackupId!);
    if (!parent || chain.length > 1_000) return `base backup ${chain[0].backupId} builds on ${chain[0].parentBackupId}, which is not in the catalog`;
    chain.unshift(parent);
  }
  return chain;
}

/**
 * recovery_target_* for the instance. It recovers as a standby of the archive, so it never ends
 * recovery by itself: PostgreSQL pauses where the target is met, and where the archive ends first
 * (a time or LSN after the last record; `latest`, which has no target) the replay step pauses it
 * at the head. Nothing between the last record and the target changed anything, so that is the
 * state at the target too.
 */
export function recoverySettings(target: RecoveryTarget): Record<string, string> {
  const common = { recovery_target_timeline: 'latest', recovery_target_action: 'pause' };
  switch (target.kind) {
    case 'time':
      return { ...common, recovery_target_time: postgresTimestamp(target.time), recovery_target_inclusive: 'on' };
    case 'lsn':
      // "As it was at X": nothing that starts at X or later is replayed.
      return { ...common, recovery_target_lsn: formatLsn(parseLsn(target.lsn)), recovery_target_inclusive: 'off' };
    case 'restorePoint':
      return { ...common, recovery_target_name: target.name };
    case 'latest':
      return { recovery_target_timeline: 'latest' };
  }
}
