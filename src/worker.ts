// The pgops worker: every workflow and activity on one task queue.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker, type NativeConnection, type WorkflowBundle } from '@temporalio/worker';
import { createActivities, type Activities } from './activities';
import { closePooledTargets } from './shared/postgres/connection';
import { ConfigError, loadWorkerConfig, type WorkerConfig } from './shared/config';
import { connectWorkerConnection, TemporalUnreachable } from './shared/temporal/connection';
import { noticeWorkerShutdown } from './shared/temporal/workerShutdown';
import { formatAddress, installTemporalRuntime, startWorkerMetrics } from './metrics';

export interface WorkerOptions {
  taskQueue?: string;
  identity?: string;
  /** A prebuilt workflow bundle; tests share one instead of bundling per worker. */
  workflowBundle?: WorkflowBundle;
  /** Replaces some activities, e.g. to inject a fault around the real one. */
  activities?: Partial<Activities>;
  /** A connection already open (the worker process opens it before its metrics endpoint). */
  connection?: NativeConnection;
}

/** A bundle built by `npm run build` when there is one beside this file, else bundle at start. */
function workflowSource(bundle?: WorkflowBundle) {
  if (bundle) return { workflowBundle: bundle };
  const prebuilt = path.join(__dirname, 'workflow-bundle.js');
  if (__filename.endsWith('.js') && existsSync(prebuilt)) return { workflowBundle: { codePath: prebuilt } };
  return { workflowsPath: require.resolve('./workflows') };
}

export async function createWorker(config: WorkerConfig, options: WorkerOptions = {}) {
  const connection = options.connection ?? (await connectWorkerConnection(config.temporal));
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: options.taskQueue ?? config.temporal.taskQueue,
    ...(options.identity ? { identity: options.identity } : {}),
    ...workflowSource(options.workflowBundle),
    activities: { ...createActivities(config), ...options.activities },
    // The SDK's default is to cancel activities at once on SIGTERM; a deploy must not kill a dump mid-way.
    shutdownGraceTime: config.shutdownGraceTime,
  });
  return { worker, connection };
}

export async function main(): Promise<void> {
  const config = loadWorkerConfig();
  installTemporalRuntime(config.metrics); // before the first connection: the SDK's runtime is made once
  // Temporal first (an unreachable one fails at once), then metrics, then the worker: until the
  // worker exists, a metrics address that cannot be bound has only the connection to close.
  const connection = await connectWorkerConnection(config.temporal);
  const metrics = await startWorkerMetrics(config).catch(async (err) => {
    await connection.close();
    throw err;
  });
  const { worker } = await createWorker(config, { connection }).catch(async (err) => {
    await metrics?.close();
    await connection.close();
    throw err;
  });
  const { temporalListen } = config.metrics;
  console.log(
    `pgops worker: metrics ${metrics ? `http://${metrics.address}/metrics` : 'off'}, ` +
      `Temporal SDK metrics ${temporalListen ? `http://${formatAddress(temporalListen)}/metrics` : 'off'}`,
  );
  console.log(
    `pgops worker: task queue ${config.temporal.taskQueue} on ${config.temporal.address}/${config.temporal.namespace}, ` +
      `targets ${Object.keys(config.targets).join(', ')}, bucket ${config.s3.bucket}`,
  );
  noticeWorkerShutdown();
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM once in-flight work drained or the grace time ran out
  } finally {
    await metrics?.close();
    await closePooledTargets();
    await connection.close();
  }
}

export function runWorkerProcess(): void {
  main().then(
    () => process.exit(0),
    (err) => {
      const oneLine = err instanceof ConfigError || err instanceof TemporalUnreachable;
      console.error(`pgops worker: ${oneLine ? err.message : (err as Error).stack}`);
      process.exit(1);
    },
  );
}

if (require.main === module) runWorkerProcess();
