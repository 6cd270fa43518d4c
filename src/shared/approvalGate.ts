// The workflow side of the approval rule, for every gated operation. A decision arrives two ways:
// as an update, whose validator runs the rule first so a refused one is answered at once and
// never reaches history; or as a signal (the Temporal CLI and UI can only send signals), which is
// judged by the same rule when it arrives and kept among the refusals when refused.
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import { setHandler } from '@temporalio/workflow';
import { describePayload, judgeDecision, type ApprovalPolicy, type Decision, type DecisionKind, type DecisionRequest, type IgnoredDecision } from './approval';

export type GateVerdict<Accepted> = { ok: true; accepted: Accepted } | { ok: false; why: string };

export interface DecisionChannel<Payload, Reply> {
  kind: DecisionKind;
  signal: SignalDefinition<[Payload]>;
  update: UpdateDefinition<Reply, [Payload]>;
}

export interface GateRules<Accepted, Reply> {
  /** The rule, run on every arriving decision: the shared judgeDecision plus what the operation adds. */
  judge(kind: DecisionKind, payload: unknown): GateVerdict<Accepted>;
  accept(kind: DecisionKind, accepted: Accepted, via: 'signal' | 'update'): void;
  /** A refused signal: kept (bounded) so the status shows who tried what. */
  refuse(kind: DecisionKind, payload: unknown, why: string): void;
  /** What an accepted update answers with: the operation's status after the decision. */
  reply(): Reply;
}

export function installDecisionHandlers<Payload, Accepted, Reply>(channels: DecisionChannel<Payload, Reply>[], rules: GateRules<Accepted, Reply>): void {
  const apply = (kind: DecisionKind, payload: unknown, via: 'signal' | 'update') => {
    const verdict = rules.judge(kind, payload);
    if (verdict.ok) rules.accept(kind, verdict.accepted, via);
    else rules.refuse(kind, payload, verdict.why);
  };
  for (const { kind, signal, update } of channels) {
    setHandler(signal, (payload) => apply(kind, payload, 'signal'));
    setHandler(
      update,
      (payload) => {
        apply(kind, payload, 'update');
        return rules.reply();
      },
      {
        validator: (payload) => {
          const verdict = rules.judge(kind, payload);
          if (!verdict.ok) throw new Error(verdict.why); // refused: never reaches history
        },
      },
    );
  }
}

/** What a restore shows of its approval: its stage, who asked, the decision, the refused attempts. */
export interface ApprovalState {
  stage: string;
  requestedBy: string;
  decision?: Decision;
  ignored: IgnoredDecision[];
}

/** How many refused decisions a status keeps. */
const MAX_IGNORED = 20;

/**
 * Approve and reject through the gate, judged by the one rule against the worker's approval
 * policy (loaded by the workflow; none yet means not yet): guardedRestore and pointInTimeRestore.
 */
export function installApproveReject<S extends ApprovalState>(
  status: S,
  policy: () => ApprovalPolicy | undefined,
  channels: Record<DecisionKind, Omit<DecisionChannel<DecisionRequest, S>, 'kind'>>,
  subject?: string,
): void {
  installDecisionHandlers<DecisionRequest, DecisionRequest, S>(
    [
      { kind: 'approve', ...channels.approve },
      { kind: 'reject', ...channels.reject },
    ],
    {
      judge: (kind, payload) => {
        const current = policy();
        if (!current) return { ok: false, why: `${kind}: the restore has not loaded its approval policy yet` };
        const verdict = judgeDecision(kind, payload, {
          policy: current,
          requestedBy: status.requestedBy,
          decided: status.decision !== undefined,
          awaiting: status.stage === 'awaiting-approval',
          ...(subject ? { subject } : {}),
        });
        return verdict.ok ? { ok: true, accepted: verdict.request } : verdict;
      },
      accept: (kind, request, via) => {
        status.decision = { decision: kind, ...request, at: new Date().toISOString(), via };
      },
      refuse: (kind, payload, why) => {
        status.ignored = [...status.ignored, { decision: kind, payload: describePayload(payload), why, at: new Date().toISOString() }].slice(-MAX_IGNORED);
      },
      reply: () => status,
    },
  );
}
