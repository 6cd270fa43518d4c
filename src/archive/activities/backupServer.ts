// What a server must offer before pg_basebackup may read it, checked up front so the refusal
// names the setting and the fix instead of quoting a replication-protocol error.
import { ApplicationFailure } from '@temporalio/common';
import type { TargetConfig } from '../../shared/config';
import { withTarget } from '../../shared/postgres/connection';

export interface BackupServer {
  systemIdentifier: string;
  serverVersion: string;
  summarizeWal: boolean;
}

const SETTINGS_SQL = `
  SELECT current_setting('wal_level') AS wal_level,
         current_setting('max_wal_senders')::int AS max_wal_senders,
         current_setting('summarize_wal') AS summarize_wal,
         current_setting('server_version') AS server_version,
         (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
         (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`;

export async function readBackupServer(node: TargetConfig): Promise<BackupServer> {
  const row = await withTarget(node, async (client) => (await client.query(SETTINGS_SQL)).rows[0]);
  const where = `${node.name} (${node.host}:${node.port})`;
  const refuse = (message: string) => ApplicationFailure.nonRetryable(`${where} ${message}`, 'ServerNotConfigured');
  if (row.wal_level === 'minimal') {
    throw refuse('runs with wal_level=minimal: base backups need wal_level=replica (or logical) and max_wal_senders > 0; set both in postgresql.conf and restart the server');
  }
  if (row.max_wal_senders < 1) throw refuse('runs with max_wal_senders=0: base backups need at least 2 (one for the files, one for WAL); set it in postgresql.conf and restart the server');
  if (!row.can_replicate) {
    throw refuse(`connects as role ${node.user}, which lacks REPLICATION: ALTER ROLE ${node.user} REPLICATION (and pg_hba.conf needs a "replication" line for it)`);
  }
  return { systemIdentifier: row.system_identifier, serverVersion: String(row.server_version).split(' ')[0], summarizeWal: row.summarize_wal === 'on' };
}

/** pg_basebackup's refusals that retrying cannot cure, as one line with the fix. */
export function pgBasebackupRefusal(node: TargetConfig, stderr: string): ApplicationFailure | undefined {
  const where = `${node.name} (${node.host}:${node.port})`;
  if (/no pg_hba\.conf entry for replication connection/.test(stderr)) {
    return ApplicationFailure.nonRetryable(
      `${where} refuses replication connections from the worker: add a "host replication ${node.user} <worker address> scram-sha-256" line to pg_hba.conf and reload`,
      'ServerNotConfigured',
    );
  }
  if (/must be superuser or replication role|permission denied to start WAL sender/.test(stderr)) {
    return ApplicationFailure.nonRetryable(`${where}: role ${node.user} may not stream (ALTER ROLE ${node.user} REPLICATION)`, 'ServerNotConfigured');
  }
  if (/number of requested standby connections exceeds|wal_level/.test(stderr)) {
    return ApplicationFailure.nonRetryable(`${where} cannot stream a base backup (${firstError(stderr)}): raise max_wal_senders, set wal_level=replica, restart`, 'ServerNotConfigured');
  }
  return undefined;
}

/**
 * The refusals after which an incremental cannot be taken but a full backup can: summarization
 * off, summaries that do not cover the range since the parent, a parent from another timeline
 * branch, or a parent from another cluster.
 */
const INCREMENTAL_REFUSALS = [
  /incremental backups cannot be taken unless WAL summarization is enabled/,
  /WAL summaries are required on timeline \d+ from \S+ to \S+, but the summaries for that timeline and LSN range are incomplete/,
  /timeline \d+ found in manifest, but not in this server's history/,
  /system identifier in backup manifest is \d+, but database system identifier is \d+/,
  /manifest requires WAL from (initial|final) timeline \d+ starting at \S+, but that timeline begins at \S+/,
];

export function incrementalRefusal(stderr: string): string | undefined {
  for (const pattern of INCREMENTAL_REFUSALS) {
    const match = pattern.exec(stderr);
    if (match) return match[0];
  }
  return undefined;
}

export function firstError(stderr: string): string {
  return (
    stderr
      .split('\n')
      .map((line) => line.trim())
      .find((line) => /error|fatal/i.test(line))
      ?.replace(/^pg_\w+: (error: )?/, '') ?? stderr.trim().split('\n').at(-1) ?? ''
  );
}
