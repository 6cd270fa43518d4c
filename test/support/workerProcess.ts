// A pgops worker as a real child process, in its own process group so SIGKILL takes all of it.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_DIR, stackEnv } from './stack';

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `bin/pgops worker` from the sources, or with `compiled` the build a deployment runs
 * (`node dist/src/worker.js` with its prebuilt workflow bundle; run `npm run build` first).
 * Its metrics endpoints are off unless `metrics` asks for them: two workers on one machine (a
 * killed one's successor, another test file's) would otherwise contend for the same ports.
 */
export async function startWorkerProcess(env: Record<string, string>, options: { compiled?: boolean; metrics?: boolean } = {}): Promise<WorkerProcess> {
  const readyTimeoutMs = 90_000;
  const [command, args] = options.compiled
    ? ['node', [path.join(REPO_DIR, 'dist/src/worker.js')]]
    : [path.join(REPO_DIR, 'bin/pgops'), ['worker']];
  const child = spawn(command, args, {
    env: { ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', ...(options.metrics ? {} : { PGOPS_METRICS_ADDRESS: 'off', PGOPS_TEMPORAL_METRICS_ADDRESS: 'off' }), ...env } as NodeJS.ProcessEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready after ${readyTimeoutMs} ms:\n${output}`)), readyTimeoutMs);
    const poll = setInterval(() => {
      if (output.includes('pgops worker: task queue')) {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      }
    }, 100);
    child.once('exit', (code) => {
      clearTimeout(timer);
      clearInterval(poll);
      reject(new Error(`worker exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    child,
    output: () => output,
    async kill(signal) {
      // SIGKILL takes the whole group at once, like a machine dying. SIGTERM goes to the worker
      // alone, like a deploy stopping it; its children (pg_dump, ...) must be left to finish.
      try {
        process.kill(signal === 'SIGKILL' ? -child.pid! : child.pid!, signal);
      } catch {
        return; // already gone
      }
      await exited;
      await waitUntil(`worker process group ${child.pid} to exit`, async () => !groupAlive(child.pid!), 10 * 60_000);
    },
  };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `probe` every 50 ms until it returns true, or fails after `timeoutMs`. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
