// The replay step: start the instance and wait until recovery pauses at the target. Idempotent:
// a retry (the worker died) finds the instance running, or starts it again, and recovery goes on
// from its last restartpoint. Why replay stopped short is read from the two places that know it:
// the wal-fetch program's log (a corrupt object, an unreachable bucket) and the server's own log
// (the WAL ended before the target, the restore point was never met).
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TargetConfig, WorkerConfig } from '../../shared/config';
import { connectTarget } from '../../shared/postgres/connection';
import { FENCE_STOP, runServerTool, serverRunning, stopServer } from '../../failover/activities/serverControl';
import { parseLsn, segmentName, segmentNumber } from '../../archive/layout';
import type { RecoveryTarget, RestoreInstance } from '../contract';
import type { WalFetchEvent } from '../walFetch/main';
import { describeTarget } from '../recoveryTarget';
import { instancePaths, instanceTarget } from './instance';

export interface ReplayResult {
  reachedLsn: string;
  lastCommitAt?: string;
  timeline: number;
  replayMs: number;
  segmentsFetched: number;
  /** The archive ended before the target: replay paused at its head, the state at the target. */
  pausedAtArchiveHead: boolean;
}

/** Nothing replayed and nothing fetched for this long: replay is stuck, not slow. */
const STALL_MS = 10 * 60_000;
const POLL_MS = 500;

export function readFetchLog(file: string): WalFetchEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as WalFetchEvent);
}

/** Why the server stopped: its log's last FATAL or PANIC, with the lines that explain it (a bad setting names itself just before). */
function whyStopped(logFile: string): string {
  if (!existsSync(logFile)) return `it wrote no log at ${logFile} (could the server's OS user not create it?)`;
  const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  let at = lines.length - 1;
  // Refusals of the replay step's own connection attempts while it starts up are not why it stopped.
  const noise = /not yet accepting connections|system is starting up|system is shutting down/;
  while (at >= 0 && !(/\b(FATAL|PANIC):/.test(lines[at]) && !noise.test(lines[at]))) at--;
  if (at < 0) return 'no FATAL line in its log';
  const strip = (line: string) => line.replace(/^.*?\b(LOG|FATAL|PANIC|ERROR|DETAIL|HINT):\s*/, '');
  const context = lines.slice(Math.max(0, at - 2), at).filter((line) => /\b(LOG|ERROR|DETAIL):/.test(line) && !/starting PostgreSQL|listening on|database system was/.test(line));
  return [...context.map(strip), strip(lines[at])].join('; ');
}

async function startInstance(config: WorkerConfig, target: TargetConfig, logFile: string): Promise<void> {
  // -W: recovery may take far longer than pg_ctl's wait; the loop below watches it instead.
  const result = await runServerTool(config, target, 'pg_ctl', ['-D', target.server!.dataDir, '-l', logFile, '-o', `-p ${target.port}`, '-W', 'start']);
  if (result.exitCode !== 0) throw ApplicationFailure.retryable(`could not start the restored instance (see ${logFile}): ${result.all}`, 'ServerControlFailed');
}

/** Stops the instance, appends empty recovery_target_* settings (the last line wins) and leaves it to be started again. */
async function dropRecoveryTarget(config: WorkerConfig, target: TargetConfig, dataDir: string, restoreId: string): Promise<void> {
  await stopServer(config, target);
  const unset = ['recovery_target_time', 'recovery_target_lsn', 'recovery_target_name'].map((key) => `${key} = ''`);
  await appendFile(`${dataDir}/postgresql.auto.conf`, `# pgops point-in-time restore ${restoreId}: the archive ends before the target, paused at its head\n${unset.join('\n')}\n`);
}

interface ReplayState {
  inRecovery: boolean;
  pauseState: string;
  replayLsn: string | null;
  lastCommitAt: string | null;
  timeline: number;
}

async function readReplayState(target: TargetConfig): Promise<ReplayState | undefined> {
  let client;
  try {
    client = await connectTarget(target, { timeoutMs: 3_000 });
  } catch {
    return undefined; // starting up, or not consistent yet: it does not accept connections until then
  }
  try {
    const { rows } = await client.query(
      `SELECT pg_is_in_recovery() AS in_recovery,
              CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not in recovery' END AS pause_state,
              coalesce(pg_last_wal_replay_lsn(), CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn() END)::text AS replay_lsn,
              pg_last_xact_replay_timestamp() AS last_commit_at,
              (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline`,
    );
    const r = rows[0];
    return { inRecovery: r.in_recovery, pauseState: r.pause_state, replayLsn: r.replay_lsn, lastCommitAt: r.last_commit_at ? new Date(r.last_commit_at).toISOString() : null, timeline: Number(r.timeline) };
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function replayActivities(config: WorkerConfig) {
  async function replayToTarget(input: { cluster: string; restoreId: string; instance: RestoreInstance; target: RecoveryTarget; headLsn: string; headTimeline: number; segmentBytes: number }): Promise<ReplayResult> {
    const paths = instancePaths(input.instance);
    const target = instanceTarget(config, input.cluster, input.instance);
    const startedFile = `${paths.workDir}/replay-started`;
    if (!existsSync(startedFile)) await writeFile(startedFile, String(Date.now()));
    const startedAt = Number(readFileSync(startedFile, 'utf8'));
    const seen = readFetchLog(paths.fetchLog).length;
    const fail = async (message: string, type: string): Promise<never> => {
      await stopServer(config, target, FENCE_STOP).catch(() => undefined);
      throw ApplicationFailure.nonRetryable(message, type);
    };

    let startedInstanceAt = 0;
    const start = async () => {
      await startInstance(config, target, paths.serverLog);
      startedInstanceAt = Date.now();
    };
    if (!(await serverRunning(config, target))) await start();
    let lastProgress = { at: Date.now(), lsn: '', events: -1 };
    let pauseRequested = false;
    let lastLsn: { lsn: string | null; at: number; events: number } = { lsn: null, at: Date.now(), events: seen };
    const targetDroppedFile = `${paths.workDir}/target-dropped`;
    const head = parseLsn(input.headLsn);
    const headSegment = segmentName(input.headTimeline, segmentNumber(head > 0n ? head - 1n : 0n, input.segmentBytes), input.segmentBytes);
    for (;;) {
      const events = readFetchLog(paths.fetchLog);
      const recent = events.slice(seen);
      const corrupt = recent.find((e) => e.event === 'corrupt' && !e.ahead);
      if (corrupt) return fail(`replay stopped at WAL file ${corrupt.name}: ${corrupt.error}. The live cluster was not touched.`, 'WalCorrupt');

      const state = await readReplayState(target);
      // Just started, a postmaster may not have written its pid file yet.
      if (!state && Date.now() - startedInstanceAt > 10_000 && !(await serverRunning(config, target))) {
        const fatal = whyStopped(paths.serverLog);
        const fetchError = recent.filter((e) => e.event === 'error' && !e.ahead).at(-1);
        // The bucket was unreachable when a segment was asked for: recovery gave up, a retry starts it again.
        if (fetchError) throw ApplicationFailure.retryable(`fetching ${fetchError.name} failed (${fetchError.error}); the instance stopped: ${fatal}`, 'WalFetchFailed');
        const lastFetched = events.filter((e) => e.event === 'fetched' || e.event === 'read-ahead').at(-1)?.name;
        const missing = recent.filter((e) => e.event === 'missing' && /^[0-9A-F]{24}$/.test(e.name)).at(-1)?.name;
        return fail(
          `the restored instance stopped before reaching ${describeTarget(input.target)}: ${fatal}` +
            `${lastFetched ? ` (last WAL fetched: ${lastFetched}${missing ? `; ${missing} is not in the archive` : ''})` : ''}. See ${paths.serverLog}. The live cluster was not touched.`,
          /recovery target was reached|before configured recovery target/.test(fatal) ? 'TargetNotReached' : 'ReplayFailed',
        );
      }
      if (state) {
        if (!state.inRecovery) return fail(`the restored instance left recovery at ${state.replayLsn} without pausing at ${describeTarget(input.target)}`, 'ReplayOvershot');
        if (state.replayLsn !== lastLsn.lsn) lastLsn = { lsn: state.replayLsn, at: Date.now(), events: events.length };
        // At the head: replay passed it, or stands still while PostgreSQL asks again for the head's
        // segment or beyond (the fetch cuts the WAL off at the head, which may lie inside a record).
        const askedPastEnd = events.slice(lastLsn.events).some((e) => /^[0-9A-F]{24}$/.test(e.name) && e.name.slice(8) >= headSegment.slice(8) && e.name.slice(0, 8) >= headSegment.slice(0, 8));
        const atHead = state.replayLsn !== null && (parseLsn(state.replayLsn) >= parseLsn(input.headLsn) || (askedPastEnd && Date.now() - lastLsn.at > 3_000));
        if (atHead && state.pauseState === 'not paused' && !pauseRequested) {
          // The archive ends before the target: nothing after its last record changed anything, so
          // the state there is the state at the target; a restore point, though, must be met.
          if (input.target.kind === 'restorePoint') {
            return fail(
              `restore point "${input.target.name}" is not in the archived WAL: replay reached the archive's head ${input.headLsn} without meeting it. The live cluster was not touched.`,
              'TargetNotReached',
            );
          }
          if (input.target.kind !== 'latest' && !existsSync(targetDroppedFile)) {
            // PostgreSQL refuses to promote short of a configured target: the instance goes on without one, cut off at the head as before.
            await dropRecoveryTarget(config, target, paths.dataDir, input.restoreId);
            await writeFile(targetDroppedFile, state.replayLsn ?? '');
            await start();
            lastLsn = { lsn: null, at: Date.now(), events: readFetchLog(paths.fetchLog).length };
            continue;
          }
          await connectTarget(target, { timeoutMs: 3_000 }).then(async (c) => {
            await c.query('SELECT pg_wal_replay_pause()');
            await c.end();
          });
          pauseRequested = true;
        }
        if (state.pauseState === 'paused') {
          return {
            reachedLsn: state.replayLsn!,
            lastCommitAt: state.lastCommitAt ?? undefined,
            timeline: state.timeline,
            replayMs: Date.now() - startedAt,
            segmentsFetched: events.filter((e) => e.event === 'fetched' || e.event === 'read-ahead').length,
            pausedAtArchiveHead: pauseRequested || existsSync(targetDroppedFile),
          };
        }
        // A standby at the archive's end asks for the next segment every few seconds: not progress.
        const fetches = events.filter((e) => e.event !== 'missing').length;
        if (state.replayLsn !== lastProgress.lsn || fetches !== lastProgress.events) lastProgress = { at: Date.now(), lsn: state.replayLsn ?? '', events: fetches };
      }
      if (Date.now() - lastProgress.at > STALL_MS) {
        return fail(`replay made no progress for ${STALL_MS / 60_000} minutes at ${lastProgress.lsn || 'its start'}; last fetch events: ${JSON.stringify(events.slice(-3))}`, 'ReplayStalled');
      }
      Context.current().heartbeat({ stage: 'replay', replayLsn: state?.replayLsn, segmentsFetched: events.length });
      await Context.current().sleep(POLL_MS); // throws when the restore is cancelled
    }
  }

  return { replayToTarget };
}
