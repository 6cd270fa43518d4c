// What every CLI command shares: one-line errors, and a Temporal client that is always closed.
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { Decision, DecisionKind, DecisionRequest } from '../../shared/approval';
import { DecisionRefused } from '../../client/decisions';
import { loadTemporalConfig, type TemporalConfig } from '../../shared/config';
import { connectClient } from '../../shared/temporal/connection';
import { noWorkerWarning } from '../../shared/temporal/pollers';

/** Who is acting: --as, else PGOPS_OPERATOR, else the login name. Self-declared; see docs/restore.md. */
export function operator(as: string | undefined): string {
  return as ?? process.env.PGOPS_OPERATOR ?? userInfo().username;
}

/** An error the CLI prints as one line, without a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export async function withTemporal<T>(work: (client: Client, config: TemporalConfig) => Promise<T>): Promise<T> {
  const config = loadTemporalConfig();
  const client = await connectClient(config);
  try {
    return await work(client, config);
  } finally {
    await client.connection.close();
  }
}

/** Prints a workflow's result; a failed workflow is one line on stderr and exit code 1. */
export async function printOutcome<T>(result: Promise<T>, describe: (value: T) => string): Promise<number> {
  try {
    console.log(describe(await result));
    return 0;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      printFailure(err);
      return 1;
    }
    throw err;
  }
}

/** A failed run as one line: its cause, which says what went wrong, not the "workflow failed" wrapper. */
function printFailure(err: WorkflowFailedError): void {
  console.error(`pgops: ${err.cause?.message ?? err.message}`);
}

export function megabytes(bytes: number | undefined): string {
  return bytes === undefined ? '-' : `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * Waits for a run while drawing its progress line on stderr (redrawn in place on a terminal,
 * every 5 s into a log). Returns the result, or undefined once a failed run's reason is printed.
 */
export async function followRun<R>(handle: { result(): Promise<R> }, progressLine: () => Promise<string | undefined>): Promise<R | undefined> {
  const tty = process.stderr.isTTY;
  const timer = setInterval(async () => {
    const line = await progressLine().catch(() => undefined);
    if (line) process.stderr.write(tty ? `\r${line}   ` : `${line}\n`);
  }, tty ? 500 : 5_000);
  let failure: WorkflowFailedError | undefined;
  try {
    return await handle.result();
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    failure = err;
    return undefined;
  } finally {
    clearInterval(timer);
    if (tty) process.stderr.write('\n');
    if (failure) printFailure(failure);
  }
}

/** Says at once, on stderr, when nobody polls the task queue a run was just started on. */
export async function warnWhenNoWorker(client: Client, taskQueue: string): Promise<void> {
  const warning = await noWorkerWarning(client, taskQueue);
  if (warning) console.error(`pgops: ${warning}`);
}

/** The workflow id a subcommand acts on: the first argument that is not an option. */
export function workflowIdArg(args: string[], command: string, sub: string): string {
  const id = args.find((a) => !a.startsWith('--'));
  if (!id) throw new UsageError(`${command} ${sub} needs the workflow id (printed by ${command} start)`);
  return id;
}

/**
 * `<command> approve|reject <workflow-id> --reason TEXT [--as NAME]` for a gated workflow: sent as
 * an update, so a refusal (the two-person rule, a missing reason) is printed at once, exit 1.
 */
export async function decisionCommand(
  command: string,
  decision: DecisionKind,
  args: string[],
  decide: (client: Client, workflowId: string, decision: DecisionKind, request: DecisionRequest) => Promise<{ decision?: Decision }>,
): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { reason: { type: 'string' }, as: { type: 'string' } } });
  const workflowId = workflowIdArg(positionals, command, decision);
  if (!values.reason) throw new UsageError(`${command} ${decision} needs --reason "..." (it goes into the audit record)`);
  return withTemporal(async (client) => {
    try {
      const status = await decide(client, workflowId, decision, { approver: operator(values.as), reason: values.reason! });
      console.log(`${decision} by ${status.decision?.approver} accepted for ${workflowId}; follow it with: pgops ${command} status ${workflowId}`);
      return 0;
    } catch (err) {
      if (err instanceof DecisionRefused) {
        console.error(`pgops: ${decision} refused: ${err.message}`);
        return 1;
      }
      throw err;
    }
  });
}
