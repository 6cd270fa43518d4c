// rejoinAsStandby's steps: rewind the old primary onto the new primary's timeline (or clone it
// afresh when rewinding cannot work), configure it to stream, start it, confirm it streams.
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, renameSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, TargetConfig, WorkerConfig } from '../../shared/config';
import type { RejoinResult } from '../contract';
import { heartbeatDuring } from '../../shared/heartbeat';
import { withTarget } from '../../shared/postgres/connection';
import { clusterNode, resolveCluster } from './cluster';
import { appendToOwnedFile, recreateOwnedFile, type FileOwner } from './ownedFiles';
import { runServerTool, serverControl, serverRunning, startServer, stopServer } from './serverControl';
import { boundedQuery, readPosition } from './walPositions';

const STREAMING_WITHIN_MS = 60_000;

export function slotName(node: string): string {
  return `pgops_${node.replace(/[^a-z0-9_]/g, '_')}`;
}

/** A libpq keyword value, quoted as conninfo wants it. */
function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function replicationRole(cluster: ClusterConfig): { user: string; password?: string } {
  if (!cluster.replication) {
    throw ApplicationFailure.nonRetryable(
      `cluster ${cluster.name} has no replication role: set PGOPS_CLUSTER_${cluster.name.toUpperCase()}_REPLICATION_USER (and _PASSWORD)`,
      'ReplicationRoleMissing',
    );
  }
  return cluster.replication;
}

function dataDirOwner(dataDir: string): FileOwner {
  const stats = lstatSync(dataDir);
  if (!stats.isDirectory()) throw ApplicationFailure.nonRetryable(`${dataDir} is not a directory (a symbolic link?): expected the node's data directory`, 'UnsafeFile');
  return { uid: stats.uid, gid: stats.gid };
}

/**
 * Where a data directory pg_rewind could not use is kept: a name no earlier rejoin took (the
 * workflow id repeats for a node), so no set-aside directory is ever replaced or deleted.
 */
function setAsideName(dataDir: string, workflowId: string): string {
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  return `${dataDir}.before-rejoin-${workflowId.replace(/[^A-Za-z0-9_-]/g, '_')}-${stamp}-${randomBytes(3).toString('hex')}`;
}

export function rejoinActivities(config: WorkerConfig) {
  function nodes(input: { cluster: string; node: string; newPrimary: string }) {
    const cluster = resolveCluster(config, input.cluster);
    if (input.node === input.newPrimary) throw ApplicationFailure.nonRetryable(`node and newPrimary are both "${input.node}"`, 'BadInput');
    return { cluster, node: clusterNode(config, cluster, input.node), newPrimary: clusterNode(config, cluster, input.newPrimary) };
  }

  /** Streams from the new primary through a slot of its own, so the new primary keeps the WAL it needs. */
  async function ensureSlot(newPrimary: TargetConfig, node: string): Promise<void> {
    await withTarget(newPrimary, async (client) => {
      const { rows } = await client.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
      if (rows[0].in_recovery) throw ApplicationFailure.nonRetryable(`${newPrimary.name} is in recovery: it is not a primary to rejoin`, 'NotAPrimary');
      await client.query(
        'SELECT pg_create_physical_replication_slot($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)',
        [slotName(node)],
      );
    });
  }

  /** Whether a running server is in recovery, and its timeline (a primary's from its current WAL file: pg_control lags after a promotion). */
  async function liveState(target: TargetConfig): Promise<{ inRecovery: boolean; timeline: number } | undefined> {
    try {
      return await boundedQuery(target, 5_000, async (client) => {
        const { rows } = await client.query<{ in_recovery: boolean; walfile: string | null; checkpoint_timeline: number }>(
          `SELECT pg_is_in_recovery() AS in_recovery,
                  CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
                  (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline`,
        );
        const row = rows[0];
        return { inRecovery: row.in_recovery, timeline: row.walfile ? parseInt(row.walfile.slice(0, 8), 16) : Number(row.checkpoint_timeline) };
      });
    } catch {
      return undefined;
    }
  }

  /**
   * Refuses to stop and rewind `node` unless it is down, in recovery, or behind the new primary's
   * timeline: swapped arguments must never stop the live primary.
   */
  async function refuseUnlessRejoinable(node: TargetConfig, newPrimary: TargetConfig): Promise<void> {
    if (!(await serverRunning(config, node))) return;
    const here = await liveState(node);
    if (here?.inRecovery) return;
    const there = await liveState(newPrimary);
    if (here && there && there.timeline > here.timeline) return;
    throw ApplicationFailure.nonRetryable(
      `refusing to stop and rewind ${node.name}: it is running${here ? ` as a primary on timeline ${here.timeline}` : ' and does not answer'}, and ${newPrimary.name} is ` +
        (there ? `on timeline ${there.timeline}${there.inRecovery ? ' (in recovery)' : ''}` : 'not answering') +
        `, not on a later timeline; are node and newPrimary swapped? Stop ${node.name} first if it really is the old primary`,
      'RejoinRefused',
    );
  }

  function writeStandbyConfig(cluster: ClusterConfig, node: TargetConfig, newPrimary: TargetConfig): void {
    const { dataDir } = serverControl(node);
    const role = replicationRole(cluster);
    const conninfo = [
      `host=${conninfoValue(newPrimary.host)}`,
      `port=${newPrimary.port}`,
      `user=${conninfoValue(role.user)}`,
      ...(role.password ? [`password=${conninfoValue(role.password)}`] : []),
      `application_name=${conninfoValue(node.name)}`,
    ].join(' ');
    const owner = dataDirOwner(dataDir);
    // Later lines win: these override whatever pg_rewind copied from the new primary.
    appendToOwnedFile(
      `${dataDir}/postgresql.auto.conf`,
      `# written by pgops rejoinAsStandby\nprimary_conninfo = '${conninfo.replace(/'/g, "''")}'\nprimary_slot_name = '${slotName(node.name)}'\nport = ${node.port}\n`,
      owner,
    );
    recreateOwnedFile(`${dataDir}/standby.signal`, '', owner);
  }

  /**
   * Stops the node, then pg_rewind from the new primary. When the rewind fails and base backups
   * are allowed, the old data directory is moved aside (never deleted) and cloned afresh.
   */
  async function rewindOrRebuild(input: { cluster: string; node: string; newPrimary: string; allowBaseBackup: boolean; workflowId: string }) {
    let step = 'stopping';
    return heartbeatDuring(() => step, () => rewindOrRebuildSteps(input, (now) => (step = now)));
  }

  async function rewindOrRebuildSteps(
    input: { cluster: string; node: string; newPrimary: string; allowBaseBackup: boolean; workflowId: string },
    stepTo: (step: string) => void,
  ): Promise<{ method: RejoinResult['method']; rewindError?: string; keptOldDataDir?: string }> {
    const { cluster, node, newPrimary } = nodes(input);
    const { dataDir } = serverControl(node);
    const role = replicationRole(cluster);
    await refuseUnlessRejoinable(node, newPrimary);
    await ensureSlot(newPrimary, node.name);
    await stopServer(config, node);
    stepTo('pg_rewind');
    const rewind = await runServerTool(
      config,
      node,
      'pg_rewind',
      ['-D', dataDir, `--source-server=dbname=${conninfoValue(newPrimary.database)}`],
      { timeoutMs: 30 * 60_000, withLibpqEnv: newPrimary },
    );
    if (rewind.exitCode === 0) {
      writeStandbyConfig(cluster, node, newPrimary);
      return { method: 'pg_rewind' };
    }
    const rewindError = (rewind.all ?? '').trim().split('\n').slice(-2).join(' | ');
    if (!input.allowBaseBackup) {
      throw ApplicationFailure.nonRetryable(`pg_rewind of ${node.name} failed and base backups are not allowed: ${rewindError}`, 'RewindFailed');
    }
    // Kept, never deleted: it may hold commits the new primary never got (or an earlier
    // attempt's partial clone). Missing when an earlier attempt set it aside and died before cloning.
    const keptOldDataDir = existsSync(dataDir) ? setAsideName(dataDir, input.workflowId) : undefined;
    if (keptOldDataDir) renameSync(dataDir, keptOldDataDir);
    stepTo('pg_basebackup');
    const clone = await runServerTool(
      config,
      node,
      'pg_basebackup',
      ['-D', dataDir, '-X', 'stream', '-S', slotName(node.name), '--checkpoint=fast', '-R'],
      { timeoutMs: 6 * 60 * 60_000, withLibpqEnv: { ...newPrimary, user: role.user, password: role.password, database: 'postgres' } },
    );
    // A failed pg_basebackup removes what it created itself; a directory it did not create stays.
    if (clone.exitCode !== 0) {
      throw ApplicationFailure.retryable(`pg_basebackup of ${node.name} from ${newPrimary.name} failed: ${clone.all}`, 'BaseBackupFailed');
    }
    writeStandbyConfig(cluster, node, newPrimary);
    return { method: 'pg_basebackup', rewindError, keptOldDataDir };
  }

  async function startAsStandby(input: { cluster: string; node: string; newPrimary: string }): Promise<string> {
    const { node } = nodes(input);
    await heartbeatDuring(() => `starting ${node.name}`, () => startServer(config, node));
    return `started ${node.name}`;
  }

  /** Waits until the node is in recovery and its WAL receiver streams. */
  async function confirmStreaming(input: { cluster: string; node: string; newPrimary: string }): Promise<Pick<RejoinResult, 'receiverStatus'>> {
    const { node } = nodes(input);
    const started = Date.now();
    let last = 'no answer';
    while (Date.now() - started < STREAMING_WITHIN_MS) {
      Context.current().heartbeat(last);
      const position = await readPosition(node, 3_000);
      if (position.reachable && position.inRecovery && position.receiverStatus === 'streaming') return { receiverStatus: 'streaming' };
      last = position.error ?? `in recovery ${position.inRecovery}, receiver ${position.receiverStatus ?? 'not running'}`;
      await sleep(250);
    }
    throw ApplicationFailure.retryable(`${node.name} does not stream from the new primary after ${STREAMING_WITHIN_MS / 1000} s: ${last}`, 'NotStreaming');
  }

  return { rewindOrRebuild, startAsStandby, confirmStreaming };
}
