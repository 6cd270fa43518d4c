// How to tell an operator why a step failed: the activity's own message, not Temporal's wrapper.
import { ActivityFailure } from '@temporalio/workflow';

export function causeMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
