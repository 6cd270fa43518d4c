// pgops failover start|status|approve and pgops rejoin.
import { parseArgs } from 'node:util';
import type { FailoverMode, FailoverResult, FailoverStatus, WatchState } from '../../failover/contract';
import { isDuration } from '../../shared/duration';
import { msToNumber } from '@temporalio/common/lib/time';
import { decideFailover, failoverHandle, failoverStatus, pauseWatcher, resumeWatcher, startFailover, startRejoin, startWatcher, watcherHandle, watchStatus } from '../../client/failovers';
import { DecisionRefused } from '../../client/decisions';
import { formatTable } from '../format';
import { operator, printOutcome, UsageError, warnWhenNoWorker, withTemporal } from './common';

const stepsTable = (steps: FailoverStatus['steps']) => formatTable(['step', 'ms', 'outcome'], steps.map((t) => [t.step, String(t.ms), t.outcome]));

function statusLines(s: FailoverStatus): string {
  const head =
    `failover of ${s.cluster} (${s.mode}): ${s.stage}` +
    `${s.candidate ? `, candidate ${s.candidate}` : ''}${s.waitingFor ? `, waiting for ${s.waitingFor}` : ''}` +
    `${s.refusal ? `\n  ${s.refusal}` : ''}` +
    // Older runs' status has no list.
    (s.refusedApprovals ?? []).map((r) => `\n  refused at ${r.at}: ${r.why}`).join('');
  return `${head}\n${stepsTable(s.steps)}`;
}

function resultLines(r: FailoverResult): string {
  if (r.outcome === 'cancelled') return `no promotion: ${r.reason}\naudit: ${r.auditKey}`;
  return (
    `promoted ${r.newPrimary} (was standby of ${r.oldPrimary}) on timeline ${r.promotion?.timelineAfter}; ` +
    `lag at promotion ${r.lagBytesAtPromotion} bytes${r.forced ? ' (forced)' : ''}\n` +
    `fence: ${r.fence?.detail}\nrepoint: ${r.repoint?.detail}\n` +
    `${stepsTable(r.steps)}\n` +
    `total ${r.totalMs} ms; audit: ${r.auditKey}`
  );
}

async function startCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cluster: { type: 'string', default: 'main' },
      mode: { type: 'string', default: 'failover' },
      reason: { type: 'string' },
      as: { type: 'string' },
      detach: { type: 'boolean', default: false },
    },
  });
  if (values.mode !== 'failover' && values.mode !== 'switchover') throw new UsageError(`--mode must be failover or switchover, got ${values.mode}`);
  return withTemporal(async (client, config) => {
    const handle = await startFailover(
      client,
      { taskQueue: config.taskQueue },
      { cluster: values.cluster!, mode: values.mode as FailoverMode, reason: values.reason, requestedBy: operator(values.as) },
    );
    console.error(`started workflow ${handle.workflowId}; follow with: pgops failover status --cluster ${values.cluster}`);
    await warnWhenNoWorker(client, config.taskQueue);
    return values.detach ? 0 : printOutcome(handle.result(), resultLines);
  });
}

function watchLines(w: WatchState): string {
  const pauses = Object.entries(w.pauses).map(([by, p]) => `paused by ${by} until ${new Date(p.untilMs).toISOString()}: ${p.reason}`);
  const last = w.lastFailover ? `last failover ${w.lastFailover.workflowId} at ${w.lastFailover.startedAt}: ${w.lastFailover.outcome}, ${w.lastFailover.detail}` : 'no failover started';
  return [`watching ${w.cluster} since ${w.watchingSince}, primary ${w.primary ?? 'not read yet'}; ${w.failoversStarted} failover(s) started`, ...pauses, last].join('\n');
}

/** pgops failover watch [--cluster main] [--status | --pause [--for 2h] [--reason R] | --resume [--all] | --stop] */
async function watchCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cluster: { type: 'string', default: 'main' },
      status: { type: 'boolean', default: false },
      pause: { type: 'boolean', default: false },
      for: { type: 'string', default: '1h' },
      reason: { type: 'string', default: 'maintenance' },
      resume: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      stop: { type: 'boolean', default: false },
      as: { type: 'string' },
    },
  });
  if (!isDuration(values.for!)) throw new UsageError(`--for must be a duration such as 30m or 2h, got ${values.for}`);
  return withTemporal(async (client, config) => {
    const cluster = values.cluster!;
    const handle = watcherHandle(client, cluster);
    if (values.pause) {
      await pauseWatcher(handle, { by: operator(values.as), reason: values.reason!, forMs: msToNumber(values.for as Parameters<typeof msToNumber>[0]) });
    } else if (values.resume) {
      await resumeWatcher(handle, { by: operator(values.as), all: values.all });
    } else if (values.stop) {
      await handle.cancel();
      console.log(`watcher of ${cluster} stopped; nothing starts a failover of ${cluster} until pgops failover watch runs again`);
      return 0;
    } else if (!values.status) {
      const started = await startWatcher(client, { taskQueue: config.taskQueue }, cluster);
      // No query here: it would wait for a worker, and the watcher may be started before any runs.
      console.log(`watcher of ${cluster} runs as workflow ${started.workflowId} on task queue ${config.taskQueue}; see pgops failover watch --status`);
      await warnWhenNoWorker(client, config.taskQueue);
      return 0;
    }
    console.log(watchLines(await watchStatus(handle)));
    return 0;
  });
}

export async function failoverCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'start') return startCommand(rest);
  if (sub === 'watch') return watchCommand(rest);
  const { values } = parseArgs({
    args: rest,
    options: {
      cluster: { type: 'string', default: 'main' },
      as: { type: 'string' },
      force: { type: 'boolean', default: false },
      'fencing-confirmed': { type: 'boolean', default: false },
      note: { type: 'string' },
    },
  });
  return withTemporal(async (client) => {
    const handle = failoverHandle(client, values.cluster!);
    if (sub === 'status') {
      console.log(statusLines(await failoverStatus(handle)));
      return 0;
    }
    if (sub === 'approve') {
      if (!values.note?.trim()) throw new UsageError('failover approve needs --note TEXT: the reason is recorded with the approval, which is refused without one');
      try {
        const status = await decideFailover(handle, { operator: operator(values.as), forcePromotion: values.force, fencingConfirmed: values['fencing-confirmed'], note: values.note });
        console.log(`approval accepted by ${handle.workflowId} (now ${status.stage}); it counts only for the gate that was waiting`);
        return 0;
      } catch (err) {
        if (err instanceof DecisionRefused) {
          console.error(`pgops: approve refused: ${err.message}`);
          return 1;
        }
        throw err;
      }
    }
    throw new UsageError(`failover needs start, status, approve or watch, got ${sub ?? 'nothing'}`);
  });
}

export async function rejoinCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cluster: { type: 'string', default: 'main' },
      node: { type: 'string' },
      'new-primary': { type: 'string' },
      'no-base-backup': { type: 'boolean', default: false },
    },
  });
  if (!values.node || !values['new-primary']) throw new UsageError('rejoin needs --node OLD_PRIMARY and --new-primary NODE');
  return withTemporal(async (client, config) => {
    const handle = await startRejoin(
      client,
      { taskQueue: config.taskQueue },
      { cluster: values.cluster!, node: values.node!, newPrimary: values['new-primary']!, allowBaseBackup: !values['no-base-backup'] },
    );
    await warnWhenNoWorker(client, config.taskQueue);
    return printOutcome(
      handle.result(),
      (r) =>
        `${r.node} streams from ${r.newPrimary} (${r.method}${r.rewindError ? `; rewind failed: ${r.rewindError}` : ''}` +
        `${r.keptOldDataDir ? `; old data kept in ${r.keptOldDataDir}` : ''})`,
    );
  });
}
