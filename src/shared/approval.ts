// The one rule that decides whether an approve/reject may act on a gated operation (a guarded
// restore, a failover's gates). Signals and updates both go through it: Temporal authorises per
// namespace, not per handler, so who may approve is enforced here, inside the workflow, against
// the worker's policy.

/** Who may approve, configured on the worker: a restore cannot bring its own rules. */
export interface ApprovalPolicy {
  /** Names allowed to approve or reject; empty means anyone. */
  approvers: string[];
  /** When true the requester cannot approve their own restore. */
  twoPersonRule: boolean;
  approvalTimeout: string;
}

export interface DecisionRequest {
  approver: string;
  reason: string;
}

export interface Decision extends DecisionRequest {
  decision: 'approve' | 'reject';
  at: string;
  via: 'signal' | 'update';
}

export interface IgnoredDecision {
  decision: string;
  /** The refused payload as JSON, cut to a bounded length. */
  payload: string;
  why: string;
  at: string;
}

export type DecisionKind = 'approve' | 'reject';

/** What the rule needs of a policy: a restore's, or a failover's (no approval timeout of its own here). */
export type ApproverRule = Pick<ApprovalPolicy, 'approvers' | 'twoPersonRule'> & Partial<ApprovalPolicy>;

export interface DecisionContext {
  policy: ApproverRule;
  requestedBy: string;
  /** A decision already taken: the first one stands. */
  decided: boolean;
  /** Decisions are only taken while the workflow waits for one. */
  awaiting: boolean;
  /** What is decided, for the refusals ("restore" unless told). */
  subject?: string;
  /** The setting that holds the allow-list, so a refusal says what to change. */
  approversSetting?: string;
}

export type DecisionVerdict = { ok: true; request: DecisionRequest } | { ok: false; why: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

/** A name as typed, with compatibility look-alikes (fullwidth `ａ`) folded into the letters they copy. */
function canonicalName(name: string): string {
  return name.normalize('NFKC').trim();
}

/**
 * A name as people are told apart: without this `Alice`, `alice ` or a fullwidth `ａｌｉｃｅ` would
 * count as someone else than `alice` and let her approve her own restore.
 */
export function operatorKey(name: string): string {
  return canonicalName(name).toLowerCase();
}

/** Who asks for and who decides a restore pass the same rule, so the two compare alike. */
export function isOperatorName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(canonicalName(name));
}

export function judgeDecision(kind: DecisionKind, payload: unknown, ctx: DecisionContext): DecisionVerdict {
  const request = payload as Partial<DecisionRequest> | undefined;
  if (!request || typeof request !== 'object') return { ok: false, why: `${kind} needs {approver, reason}, got ${describePayload(payload)}` };
  const { reason } = request;
  if (!isOperatorName(request.approver)) {
    return { ok: false, why: `${kind}: approver must be a name (letters, digits, . _ @ + -), got ${describePayload(request.approver)}` };
  }
  const approver = canonicalName(request.approver);
  const approverKey = operatorKey(approver);
  const subject = ctx.subject ?? 'restore';
  if (typeof reason !== 'string' || reason.trim() === '') return { ok: false, why: `${kind} by ${approver}: a reason is required` };
  if (ctx.decided) return { ok: false, why: `${kind} by ${approver}: this ${subject} has already been decided` };
  if (!ctx.awaiting) return { ok: false, why: `${kind} by ${approver}: this ${subject} is not waiting for a decision` };
  if (ctx.policy.approvers.length > 0 && !ctx.policy.approvers.some((allowed) => operatorKey(allowed) === approverKey)) {
    return { ok: false, why: `${kind} by ${approver}: not in the approvers allowed by the worker's ${ctx.approversSetting ?? 'PGOPS_RESTORE_APPROVERS'}` };
  }
  if (kind === 'approve' && ctx.policy.twoPersonRule && approverKey === operatorKey(ctx.requestedBy)) {
    return { ok: false, why: `approve by ${approver}: the two-person rule forbids approving your own ${subject}` };
  }
  return { ok: true, request: { approver, reason: reason.trim() } };
}

/**
 * A payload as it may be kept: at most 80 characters. Refused payloads are kept in the restore's
 * status and sent to the audit log; whole ones from a careless or hostile sender would overflow
 * Temporal's payload limit and fail the restore.
 */
export function describePayload(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
