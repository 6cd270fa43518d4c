// What tests need of the local stack: its configuration, and a worker on a private task queue.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundle } from '@temporalio/worker';
import { environment, loadWorkerConfig, type WorkerConfig } from '../../src/shared/config';
import { connectClient } from '../../src/shared/temporal/connection';
import { createWorker } from '../../src/worker';
import type { Activities } from '../../src/activities';

export const REPO_DIR = path.resolve(__dirname, '../..');
export const STACK_ENV_FILE = process.env.PGOPS_ENV_FILE ?? path.join(REPO_DIR, '.stack/stack.env');

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  runtimeInstalled = true;
}

/** The stack's environment as a plain object, for child processes and for loading config. */
export function stackEnv(): Record<string, string | undefined> {
  return environment({ ...process.env, PGOPS_ENV_FILE: STACK_ENV_FILE });
}

export function stackConfig(): WorkerConfig {
  return loadWorkerConfig(stackEnv());
}

let bundle: Promise<WorkflowBundle> | undefined;
export function workflowBundle(): Promise<WorkflowBundle> {
  quietRuntime();
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    logger: new DefaultLogger('ERROR'),
  });
  return bundle;
}

export interface WorkerContext {
  client: Client;
  taskQueue: string;
  config: WorkerConfig;
}

/** Runs `work` while an in-process worker built from `config` polls a task queue of its own. */
export async function withWorker<T>(
  config: WorkerConfig,
  work: (ctx: WorkerContext) => Promise<T>,
  activities?: Partial<Activities>,
): Promise<T> {
  const taskQueue = `test-${randomUUID()}`;
  const { worker, connection } = await createWorker(config, { taskQueue, workflowBundle: await workflowBundle(), activities });
  const client = await connectClient(config.temporal);
  try {
    return await worker.runUntil(work({ client, taskQueue, config }));
  } finally {
    await client.connection.close();
    await connection.close();
  }
}
