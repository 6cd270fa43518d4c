// Steps 4 and 5: make sure the old primary cannot take writes, then promote the candidate.
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import execa from 'execa';
import type { ClusterConfig, TargetConfig, WorkerConfig } from '../../shared/config';
import type { FenceResult, NodeAddress, PromotionResult } from '../contract';
import { childEnv } from '../../shared/childEnv';
import { heartbeatDuring } from '../../shared/heartbeat';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { clusterNode, hookArguments, resolveCluster } from './cluster';
import { controlData, FENCE_STOP, runServerTool, stopServer } from './serverControl';
import { boundedQuery } from './walPositions';

const HOOK_TIMEOUT_MS = 60_000;

/** The values a hook's arguments may name. */
export function hookValues(config: WorkerConfig, cluster: ClusterConfig, oldPrimary: string, newPrimary: string, newPrimaryAddress?: NodeAddress): Record<string, string> {
  const oldTarget = resolveTarget(config, oldPrimary);
  const newTarget = newPrimaryAddress ?? resolveTarget(config, newPrimary);
  return {
    cluster: cluster.name,
    old_primary: oldPrimary,
    new_primary: newPrimaryAddress?.name ?? newPrimary,
    old_host: oldTarget.host,
    old_port: String(oldTarget.port),
    new_host: newTarget.host,
    new_port: String(newTarget.port),
  };
}

/** Runs a configured hook (an argument array, no shell); returns a line for the audit. */
export async function runHook(kind: string, command: string[], values: Record<string, string>): Promise<{ ok: boolean; line: string }> {
  const [file, ...args] = hookArguments(command, values);
  // A hook is the operator's script: it gets the values above as arguments, never the worker's secrets.
  const result = await execa(file, args, { reject: false, timeout: HOOK_TIMEOUT_MS, all: true, cleanup: false, extendEnv: false, env: childEnv() });
  const output = (result.all ?? '').trim().split('\n').slice(-3).join(' | ');
  return {
    ok: result.exitCode === 0,
    line: `${kind} hook ${file} exited ${result.exitCode ?? result.signal}${output ? `: ${output}` : ''}`,
  };
}

/** Is the node up as a primary (accepting writes)? Short timeout: a dead node must answer fast. */
async function acceptsWrites(config: WorkerConfig, node: string): Promise<boolean> {
  try {
    return await boundedQuery(resolveTarget(config, node), 2_000, async (client) => {
      const { rows } = await client.query<{ writable: boolean }>(
        `SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off' AS writable`,
      );
      return rows[0].writable;
    });
  } catch {
    return false;
  }
}

export function fenceAndPromoteActivities(config: WorkerConfig) {
  /**
   * Stops the old primary if pgops controls its server, otherwise makes a reachable one
   * read-only and ends its sessions; always runs the fencing hook. Confirmed only when the
   * server is verified stopped or the hook succeeded, and it does not accept writes.
   */
  async function fenceOldPrimary(input: { cluster: string; node: string; newPrimary: string; newPrimaryAddress?: NodeAddress }): Promise<FenceResult> {
    const cluster = resolveCluster(config, input.cluster);
    const target = clusterNode(config, cluster, input.node);
    const actions: string[] = [];
    let stopped = false;
    if (target.server) {
      actions.push(await heartbeatDuring(() => `stopping ${input.node}`, () => stopServer(config, target, FENCE_STOP)));
      stopped = true;
    } else if (await acceptsWrites(config, input.node)) {
      await withTarget(target, async (client) => {
        await client.query(`ALTER SYSTEM SET default_transaction_read_only = on`);
        await client.query('SELECT pg_reload_conf()');
        const { rowCount } = await client.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
        );
        actions.push(`made ${input.node} read-only (default_transaction_read_only) and ended ${rowCount} session(s)`);
      });
    } else {
      actions.push(`${input.node} is unreachable and pgops has no control of its server`);
    }
    let hookOk = false;
    if (cluster.fenceCommand) {
      const hook = await runHook('fencing', cluster.fenceCommand, hookValues(config, cluster, input.node, input.newPrimary, input.newPrimaryAddress));
      actions.push(hook.line);
      hookOk = hook.ok;
    }
    const writable = await acceptsWrites(config, input.node);
    const confirmed = !writable && (stopped || hookOk);
    Context.current().heartbeat();
    return {
      node: input.node,
      actions,
      confirmed,
      detail: writable
        ? `${input.node} still accepts writes`
        : confirmed
          ? `${input.node} cannot accept writes (${stopped ? 'server stopped' : 'fencing hook succeeded'})`
          : `${input.node} does not answer, but nothing confirms it is fenced (no server control, ${cluster.fenceCommand ? 'fencing hook failed' : 'no fencing hook'})`,
    };
  }

  /**
   * pg_promote(wait => true) on the candidate, then checks it left recovery on a new timeline and
   * commits a test write. A retry after a promotion that already happened only re-verifies.
   */
  async function promoteCandidate(input: { cluster: string; node: string; timelineBefore: number; workflowId: string }): Promise<PromotionResult> {
    const cluster = resolveCluster(config, input.cluster);
    const target = clusterNode(config, cluster, input.node);
    return withTarget(target, async (client) => {
      const { rows: before } = await client.query<{ in_recovery: boolean; paused: boolean | null; received: string | null }>(
        `SELECT pg_is_in_recovery() AS in_recovery,
                CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused,
                coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS received`,
      );
      const promotedFromLsn = before[0].received ?? 'unknown';
      if (before[0].in_recovery) {
        // Promotion ends a paused replay anyway (PostgreSQL 14+); resume explicitly so it replays all it received.
        if (before[0].paused) await client.query('SELECT pg_wal_replay_resume()');
        const { rows } = await client.query<{ promoted: boolean }>('SELECT pg_promote(wait => true, wait_seconds => 60) AS promoted');
        if (!rows[0].promoted) throw ApplicationFailure.retryable(`pg_promote on ${input.node} did not finish within 60 s`, 'PromoteTimeout');
      }
      for (let i = 0; i < 50; i++) {
        const { rows } = await client.query<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
        if (!rows[0].in_recovery) break;
        await sleep(200);
      }
      const { rows: after } = await client.query<{ in_recovery: boolean; walfile: string; lsn: string }>(
        `SELECT pg_is_in_recovery() AS in_recovery, pg_walfile_name(pg_current_wal_lsn()) AS walfile, pg_current_wal_lsn()::text AS lsn`,
      );
      if (after[0].in_recovery) throw ApplicationFailure.retryable(`${input.node} is still in recovery after pg_promote`, 'PromoteIncomplete');
      const timelineAfter = parseInt(after[0].walfile.slice(0, 8), 16);
      if (timelineAfter <= input.timelineBefore) {
        throw ApplicationFailure.nonRetryable(
          `${input.node} is writable but on timeline ${timelineAfter}, not past ${input.timelineBefore}: it was not promoted by this failover`,
          'TimelineDidNotAdvance',
        );
      }
      const testWrite = await writeFailoverMarker(client, input.workflowId, `promoted ${input.node}`);
      return { node: input.node, timelineBefore: input.timelineBefore, timelineAfter, lsn: after[0].lsn, promotedFromLsn, testWrite };
    });
  }

  async function countLostTransactions(input: { cluster: string; node: string; fromLsn: string }) {
    return countLostCommits(config, clusterNode(config, resolveCluster(config, input.cluster), input.node), input.fromLsn);
  }

  return { fenceOldPrimary, promoteCandidate, countLostTransactions };
}

/**
 * Commits a row to pgops.failover_log and returns what was written. With synchronous_standby_names
 * set and no standby left, a commit would wait for one forever: the marker commits locally.
 */
export async function writeFailoverMarker(client: import('pg').Client, workflowId: string, note: string): Promise<string> {
  await client.query('BEGIN');
  try {
    await client.query('SET LOCAL synchronous_commit = local');
    await client.query('CREATE SCHEMA IF NOT EXISTS pgops');
    await client.query(
      `CREATE TABLE IF NOT EXISTS pgops.failover_log (
         workflow_id text NOT NULL, note text NOT NULL, server_port int NOT NULL DEFAULT inet_server_port(),
         written_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (workflow_id, note))`,
    );
    await client.query('INSERT INTO pgops.failover_log (workflow_id, note) VALUES ($1, $2) ON CONFLICT DO NOTHING', [workflowId, note]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return `pgops.failover_log (${workflowId}, ${note})`;
}

/**
 * The timeline a stopped server was on: the newest timeline history file in its pg_wal (a
 * promotion writes one before anything else), or its control file's, whichever is later. The
 * control file alone lags until the first checkpoint after a promotion.
 */
async function currentTimeline(config: WorkerConfig, target: TargetConfig): Promise<string> {
  const fromControl = Number((await controlData(config, target))["Latest checkpoint's TimeLineID"]);
  const fromHistory = readdirSync(`${target.server!.dataDir}/pg_wal`)
    .map((file) => /^([0-9A-F]{8})\.history$/.exec(file))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => parseInt(m[1], 16));
  return String(Math.max(fromControl, ...fromHistory));
}

/**
 * Commits the old primary wrote on its timeline after `fromLsn` (where the promoted standby's WAL
 * ended): the transactions the failover lost. Read with pg_waldump from the stopped old primary's
 * own pg_wal, so only for a node under server control; never fails the failover.
 */
async function countLostCommits(config: WorkerConfig, target: TargetConfig, fromLsn: string): Promise<{ lostCommits?: number; detail: string }> {
  if (!target.server) return { detail: `${target.name} has no server control: its WAL cannot be read here` };
  const timeline = await currentTimeline(config, target);
  const dump = await runServerTool(config, target, 'pg_waldump', [
    '--path', `${target.server.dataDir}/pg_wal`,
    '--timeline', timeline,
    '--start', fromLsn,
    '--rmgr', 'Transaction',
  ], { timeoutMs: 120_000 });
  // pg_waldump ends with an error at the end of the WAL a crash left: the records before it count.
  // "No valid record after" the start means the standby had it all: nothing was lost.
  const commits = dump.stdout.split('\n').filter((line) => /desc: COMMIT\b/.test(line)).length;
  const endOfWal = /invalid record length|record with incorrect prev-link|invalid magic number|contrecord is requested|could not find a valid record after/;
  if (dump.exitCode !== 0 && !endOfWal.test(dump.stderr)) {
    return { detail: `pg_waldump on ${target.name} failed: ${dump.stderr.trim().split('\n').pop()}` };
  }
  return { lostCommits: commits, detail: `${commits} commit(s) on timeline ${timeline} of ${target.name} after ${fromLsn}` };
}
