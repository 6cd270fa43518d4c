// failoverPromotion: the "automatic failover script" as a runbook whose every step is checked,
// recorded and safe to retry. confirm the failure → choose the candidate → (approval) → fence the
// old primary → promote → repoint clients → record. `switchover` replaces the confirmation with a
// clean stop of the primary and promotes only a standby that received its shutdown checkpoint.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  clusterVariable,
  watcherWorkflowId,
  type ClusterView,
  type FailoverApproval,
  type FailoverInput,
  type FailoverResult,
  type FailoverStage,
  type FailoverStatus,
  type RefusedApproval,
  type StepTiming,
} from '../contract';
import { judgeDecision } from '../../shared/approval';
import { installDecisionHandlers, type GateVerdict } from '../../shared/approvalGate';
import { withWatchersPaused } from './watchersPaused';
import { NAME_PATTERN } from '../../shared/targets';
import { failoverStatusQuery, approveFailoverSignal, approveFailoverUpdate } from '../contract';


/** Refused approvals kept in status and result: enough to see who tried what, bounded for history's payload limit. */
const MAX_REFUSED_APPROVALS = 20;

type Gate = NonNullable<FailoverStatus['waitingFor']>;

/** What an approval must say for each gate: a plain approval forces nothing and vouches for no fencing. */
const GATE_FLAG: Record<Gate, 'forcePromotion' | 'fencingConfirmed' | undefined> = {
  approval: undefined,
  'forced-promotion': 'forcePromotion',
  'fencing-confirmation': 'fencingConfirmed',
};

/**
 * The restores' rule (valid name, a reason, the cluster's allow-list, only while waiting), plus:
 * an approval answers the gate waiting when it arrives, and only with that gate's flag. It is
 * recorded with that flag alone, so it can never pass a later gate nobody looked at.
 */
function judgeApproval(payload: unknown, view: ClusterView, mode: string, gate: { waitingFor: Gate; accepted?: FailoverApproval } | undefined): GateVerdict<FailoverApproval> {
  const approval = (payload && typeof payload === 'object' ? payload : {}) as Partial<FailoverApproval>;
  const verdict = judgeDecision('approve', { approver: approval.operator, reason: approval.note }, {
    policy: { approvers: view.policy.approvers ?? [], twoPersonRule: false },
    requestedBy: '',
    decided: gate?.accepted !== undefined,
    awaiting: gate !== undefined,
    subject: `${mode} of ${view.cluster}`,
    approversSetting: clusterVariable(view.cluster, 'APPROVERS'),
  });
  if (!verdict.ok) return verdict;
  const flag = GATE_FLAG[gate!.waitingFor];
  if (flag && approval[flag] !== true) {
    return { ok: false, why: `approve by ${verdict.request.approver}: ${mode} of ${view.cluster} waits for ${gate!.waitingFor}, which needs ${flag}: true` };
  }
  return { ok: true, accepted: { operator: verdict.request.approver, note: verdict.request.reason, ...(flag ? { [flag]: true } : {}) } };
}

/** Timeouts follow the cluster's policy: a probe window of minutes must not be cut short. */
function failoverActivities(view: ClusterView) {
  const { confirmPrimaryFailure } = proxyActivities<Activities>({
    startToCloseTimeout: view.policy.confirmWindowMs + 60_000,
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: 3 },
  });
  const { chooseCandidate } = proxyActivities<Activities>({
    startToCloseTimeout: view.policy.replayCatchUpMs + 60_000,
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
  });
  // pg_promote waits up to 60 s, then up to 10 s more of polling for the end of recovery;
  // pg_waldump over the lost WAL may take up to 120 s. Neither heartbeats meanwhile.
  const { promoteCandidate, countLostTransactions } = proxyActivities<Activities>({
    startToCloseTimeout: '3 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
  });
  const serverSteps = proxyActivities<Activities>({
    startToCloseTimeout: '3 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
  });
  const { recordFailoverAudit, recordPrimary } = proxyActivities<Activities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  return {
    confirmPrimaryFailure,
    chooseCandidate,
    fenceOldPrimary: serverSteps.fenceOldPrimary,
    promoteCandidate,
    repointClients: serverSteps.repointClients,
    stopPrimaryForSwitchover: serverSteps.stopPrimaryForSwitchover,
    countLostTransactions,
    resumeOldPrimary: serverSteps.resumeOldPrimary,
    recordFailoverAudit,
    recordPrimary,
  };
}

const { describeCluster } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 5 },
});

function causeMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

function validate(input: FailoverInput): void {
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) {
    throw ApplicationFailure.nonRetryable(`input.cluster must name a configured cluster (e.g. "main"), got ${JSON.stringify(input?.cluster)}`, 'BadInput');
  }
  if (input.mode !== undefined && input.mode !== 'failover' && input.mode !== 'switchover') {
    throw ApplicationFailure.nonRetryable(`input.mode must be "failover" or "switchover", got ${JSON.stringify(input.mode)}`, 'BadInput');
  }
}

export async function failoverPromotion(input: FailoverInput): Promise<FailoverResult> {
  validate(input);
  const mode = input.mode ?? 'failover';
  const view = await describeCluster(input.cluster);
  const acts = failoverActivities(view);
  const startedAt = new Date().toISOString();
  const refusedApprovals: RefusedApproval[] = [];
  const status: FailoverStatus = { cluster: view.cluster, mode, stage: 'confirming', oldPrimary: view.primary, refusedApprovals, steps: [] };
  const result: FailoverResult = {
    outcome: 'cancelled',
    cluster: view.cluster,
    mode,
    workflowId: workflowInfo().workflowId,
    runId: workflowInfo().runId,
    oldPrimary: view.primary,
    reason: input.reason,
    requestedBy: input.requestedBy,
    forced: false,
    approvals: [],
    refusedApprovals,
    steps: status.steps,
    startedAt,
    finishedAt: startedAt,
    totalMs: 0,
  };
  setHandler(failoverStatusQuery, () => status);

  // Whether a switchover began stopping the primary, and whether a promotion was ever asked for
  // (after which the old primary must not come back: the candidate may be writable).
  let primaryStopStarted = false;
  let promotionStarted = false;

  // The gate an arriving approval answers; none between gates, so early approvals count for nothing.
  let gate: { waitingFor: Gate; accepted?: FailoverApproval } | undefined;
  installDecisionHandlers([{ kind: 'approve', signal: approveFailoverSignal, update: approveFailoverUpdate }], {
    judge: (_kind, payload) => judgeApproval(payload, view, mode, gate),
    accept: (_kind, approval) => {
      gate!.accepted = approval;
    },
    refuse: (_kind, _payload, why) => {
      refusedApprovals.push({ why, at: new Date().toISOString() });
      if (refusedApprovals.length > MAX_REFUSED_APPROVALS) refusedApprovals.shift();
    },
    reply: () => status,
  });

  /** Waits for an approval sent while this gate waits; false when the policy's timeout passes first. */
  async function operator(waitingFor: Gate): Promise<boolean> {
    status.waitingFor = waitingFor;
    const waiting: { waitingFor: Gate; accepted?: FailoverApproval } = { waitingFor };
    gate = waiting;
    const started = Date.now();
    status.waitingSince = new Date(started).toISOString();
    const found = await condition(() => waiting.accepted !== undefined, view.policy.approvalTimeoutMs);
    gate = undefined;
    status.waitingFor = undefined;
    status.waitingSince = undefined;
    if (found) result.approvals.push(waiting.accepted!);
    status.steps.push({ step: `operator: ${waitingFor}`, startedAt: new Date(started).toISOString(), ms: Date.now() - started, outcome: found ? `by ${waiting.accepted!.operator}` : 'timed out' });
    return found;
  }

  async function step<T>(stage: FailoverStage, name: string, run: () => Promise<T>, outcome: (r: T) => string = () => 'ok'): Promise<T> {
    status.stage = stage;
    const started = Date.now();
    const timing: StepTiming = { step: name, startedAt: new Date(started).toISOString(), ms: 0, outcome: 'running' };
    status.steps.push(timing);
    try {
      const value = await run();
      timing.outcome = outcome(value);
      return value;
    } catch (err) {
      timing.outcome = isCancellation(err) ? 'cancelled' : `failed: ${causeMessage(err)}`;
      throw err;
    } finally {
      timing.ms = Date.now() - started;
    }
  }

  function stampFinished(): void {
    result.finishedAt = new Date().toISOString();
    result.totalMs = Date.now() - Date.parse(startedAt);
  }

  async function finish(stage: 'done' | 'cancelled'): Promise<FailoverResult> {
    status.stage = 'recording';
    stampFinished();
    result.auditKey = await acts.recordFailoverAudit(result);
    status.stage = stage;
    return result;
  }

  /** Records a run that failed or was cancelled; the run's own ending is what the caller sees, so a failed record is not. */
  async function recordEnding(outcome: FailoverResult['outcome']): Promise<void> {
    stampFinished();
    try {
      result.auditKey = await acts.recordFailoverAudit({ ...result, outcome });
    } catch {
      // left out of the audit trail; the run's failure or cancellation still reaches the caller
    }
  }

  const restartOldPrimary = (stage: FailoverStage) =>
    step(stage, 'restart old primary', () => acts.resumeOldPrimary({ cluster: view.cluster, primary: view.primary }), (line) => line);

  /** Ends the run with nothing promoted; the old primary comes back if a switchover stopped it. */
  async function refuse(type: string, message: string): Promise<never> {
    if (result.switchover) await restartOldPrimary('failed');
    status.stage = 'failed';
    status.refusal = message;
    throw ApplicationFailure.nonRetryable(message, type);
  }

  async function approvalGate(before: string): Promise<void> {
    if (view.policy.approval !== 'manual') return;
    status.stage = 'awaiting-approval';
    if (!(await operator('approval'))) {
      await refuse('NotApproved', `${mode} of ${view.cluster} was not approved in time (needed before ${before})`);
    }
  }

  /** The runbook proper; a failure of any step is recorded before the run fails. */
  async function runbook(): Promise<FailoverResult> {
    // 1. confirm the failure, or stop the primary cleanly for a planned switchover
    if (mode === 'failover') {
      const confirmation = await step('confirming', 'confirm failure', () =>
        acts.confirmPrimaryFailure({ cluster: view.cluster, primary: view.primary, standbys: view.standbys, failingSinceMs: input.failingSinceMs }),
        (c) => c.reason,
      );
      result.confirmation = confirmation;
      if (!confirmation.failed) {
        result.reason = confirmation.reason;
        return finish('cancelled');
      }
    } else {
      // A planned move is approved before the primary stops: clients must not wait on a person.
      await approvalGate('the primary stops');
      primaryStopStarted = true;
      try {
        result.switchover = await step('stopping-primary', 'stop primary cleanly', () =>
          acts.stopPrimaryForSwitchover({ cluster: view.cluster, primary: view.primary }),
          (s) => `shutdown checkpoint at ${s.checkpointLsn}${s.pausedEndpoint ? ', endpoint paused' : ''}`,
        );
      } catch (err) {
        // Undo a half-done stop: the primary up again, the endpoint no longer paused (on cancellation, done below).
        if (!isCancellation(err)) await restartOldPrimary('failed').catch(() => undefined);
        throw err;
      }
    }

    // 2. choose the candidate
    let choice;
    try {
      choice = await step('choosing', 'choose candidate', () =>
        acts.chooseCandidate({ cluster: view.cluster, standbys: view.standbys, mustHaveReceived: result.switchover?.checkpointLsn }),
        (c) => `${c.candidate} at ${c.receiveLsn}, ${c.lagBytes} bytes behind`,
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      return refuse('NoCandidate', `failover of ${view.cluster}: no standby to promote: ${causeMessage(err)}`);
    }
    result.choice = choice;
    status.candidate = choice.candidate;
    if (result.switchover && !choice.receivedShutdownCheckpoint) {
      return refuse(
        'SwitchoverAborted',
        `switchover of ${view.cluster} aborted: ${choice.candidate} received WAL to ${choice.receiveLsn}, not past the shutdown checkpoint ${result.switchover.checkpointLsn}`,
      );
    }
    if (!result.switchover && choice.lagBytes > view.policy.maxLagBytes) {
      status.refusal = `${choice.candidate} is ${choice.lagBytes} bytes behind, more than the ${view.policy.maxLagBytes} allowed: promote only if an operator forces it`;
      status.stage = 'awaiting-approval';
      if (!(await operator('forced-promotion'))) {
        return refuse('LagTooHigh', `failover of ${view.cluster} refused: ${status.refusal}; no forced promotion was approved`);
      }
      result.forced = true;
      status.refusal = undefined;
    }

    // 3. approval gate (a forcing approval counts; a switchover was approved before it began)
    if (mode === 'failover' && !result.forced) await approvalGate(`${choice.candidate} is promoted`);

    // 4. fence the old primary
    const fence = await step('fencing', 'fence old primary', () =>
      acts.fenceOldPrimary({ cluster: view.cluster, node: view.primary, newPrimary: choice.candidate }),
      (f) => f.detail,
    );
    result.fence = fence;
    if (!fence.confirmed && view.policy.fencingRequired) {
      status.refusal = `fencing of ${view.primary} is not confirmed: ${fence.detail}`;
      status.stage = 'awaiting-approval';
      if (!(await operator('fencing-confirmation'))) {
        return refuse('FencingUnconfirmed', `failover of ${view.cluster} stopped: ${status.refusal}; no operator confirmed it`);
      }
      status.refusal = undefined;
    }

    // 5. promote
    const timelineBefore = choice.standbys.find((s) => s.node === choice.candidate)?.timeline ?? 0;
    result.lagBytesAtPromotion = choice.lagBytes;
    promotionStarted = true;
    result.promotion = await step('promoting', 'promote', () =>
      acts.promoteCandidate({ cluster: view.cluster, node: choice.candidate, timelineBefore, workflowId: result.workflowId }),
      (p) => `${p.node} on timeline ${p.timelineAfter} (was ${p.timelineBefore})`,
    );
    result.newPrimary = choice.candidate;
    result.outcome = 'promoted';

    // 6. repoint clients
    result.repoint = await step('repointing', 'repoint clients', () =>
      acts.repointClients({ cluster: view.cluster, oldPrimary: view.primary, newPrimary: choice.candidate, workflowId: result.workflowId }),
      (r) => `${r.method}: ${r.detail}${r.verifiedWrite ? '; write through the endpoint landed on the new primary' : ''}`,
    );

    // 7. record the new primary (the nodes say so too; the record answers while none does),
    //    and the commits the old primary made that the new one never got (async replication)
    if (mode === 'failover' && view.controlledNodes.includes(view.primary)) {
      const promotion = result.promotion;
      const lost = await step('recording', 'count lost commits', () =>
        acts.countLostTransactions({ cluster: view.cluster, node: view.primary, fromLsn: promotion.promotedFromLsn }),
        (r) => r.detail,
      ).catch((err: unknown) => ({ lostCommits: undefined, detail: causeMessage(err) }));
      result.lostCommits = lost.lostCommits;
      result.lostCommitsDetail = lost.detail;
    }
    const promotion = result.promotion;
    await step('recording', 'record new primary', () =>
      acts.recordPrimary({ cluster: view.cluster, primary: choice.candidate, timeline: promotion.timelineAfter, workflowId: result.workflowId, at: new Date().toISOString() }),
    ).catch(() => undefined); // the step's outcome says why; the nodes still tell who is primary
    return finish('done');
  }

  // The cluster's watcher must not start a failover of its own meanwhile: a switchover stops the
  // primary on purpose, and an operator's failover is already the one. A run the watcher started
  // needs no pause (the watcher waits for it).
  const startedByWatcher = workflowInfo().parent?.workflowId === watcherWorkflowId(view.cluster);
  return withWatchersPaused(startedByWatcher ? [] : [view.cluster], `${mode} ${result.workflowId}`, 2 * 60 * 60_000, runAndRecord);

  async function runAndRecord(): Promise<FailoverResult> {
    try {
      return await runbook();
    } catch (err) {
      if (isCancellation(err)) {
        // Cancelled: undo a switchover's stop that promoted nothing and record the run, then end cancelled.
        await CancellationScope.nonCancellable(async () => {
          if (mode === 'switchover' && primaryStopStarted && !promotionStarted) {
            await restartOldPrimary('cancelled').catch(() => undefined);
          }
          status.stage = 'cancelled';
          result.error = result.outcome === 'promoted' ? 'cancelled after the promotion' : 'cancelled';
          await recordEnding(result.outcome);
        });
        throw err;
      }
      if (!(err instanceof ApplicationFailure || err instanceof ActivityFailure)) throw err; // a bug: let the workflow task retry
      status.stage = 'failed';
      result.error = causeMessage(err);
      await recordEnding('failed');
      if (err instanceof ApplicationFailure) throw err;
      throw ApplicationFailure.nonRetryable(`${mode} of ${view.cluster} failed: ${result.error}`, 'FailoverFailed');
    }
  }
}
