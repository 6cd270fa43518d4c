// What tests need of the local stack: its configuration, and a worker on a private task queue.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
/**
 * The workflow bundle, built once per version of the sources for the whole run: jest gives each
 * test file fresh modules, and bundling again in each of ~30 files cost a minute. The file is
 * named by a hash of every source file, so an edited workflow is bundled again, never served stale.
 */
export function workflowBundle(): Promise<WorkflowBundle> {
  quietRuntime();
  bundle ??= cachedBundle();
  return bundle;
}

async function cachedBundle(): Promise<WorkflowBundle> {
  // In the checkout's own cache (not a shared /tmp another user could plant a bundle in).
  const dir = path.join(REPO_DIR, 'node_modules', '.cache', 'pgops-test-workflows');
  const file = path.join(dir, `${sourcesHash()}.js`);
  if (existsSync(file)) return { code: readFileSync(file, 'utf8') };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const built = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('ERROR') });
  const temporary = `${file}.${process.pid}`;
  writeFileSync(temporary, built.code, { mode: 0o600 });
  renameSync(temporary, file);
  // Bundles of sources long gone (a day old) go; a run in progress only reads its own.
  for (const name of readdirSync(dir)) {
    const old = path.join(dir, name);
    if (old !== file && Date.now() - statSync(old).mtimeMs > 86_400_000) rmSync(old, { force: true });
  }
  return built;
}

function sourcesHash(): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) hash.update(full).update(readFileSync(full));
    }
  };
  walk(path.join(REPO_DIR, 'src'));
  hash.update(readFileSync(path.join(REPO_DIR, 'package-lock.json')));
  return hash.digest('hex').slice(0, 16);
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
