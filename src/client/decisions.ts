// Decisions on gated operations (restores, failovers) sent as updates: the approval rule's
// validator answers at once, and a refusal comes back as DecisionRefused with the rule's reason.
import { WorkflowUpdateFailedError } from '@temporalio/client';

/** Why a decision was refused, as the workflow's decision rule put it. */
export class DecisionRefused extends Error {
  override name = 'DecisionRefused';
}

/** An update's refusal by the approval rule's validator, as DecisionRefused with the rule's reason. */
export async function refusedAsDecisionRefused<T>(update: Promise<T>): Promise<T> {
  try {
    return await update;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new DecisionRefused(err.cause?.message ?? err.message);
    throw err;
  }
}
