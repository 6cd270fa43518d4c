// Heartbeats for long activities. The SDK itself throttles what reaches the server.
import { Context } from '@temporalio/activity';

/** Kills a child process when the activity is cancelled (or its heartbeat times out). */
export function killOnCancel(child: { kill: (signal?: NodeJS.Signals) => boolean }): void {
  Context.current().cancelled.catch(() => child.kill('SIGTERM'));
}

const PROGRESS_INTERVAL_MS = 1_000;

export interface Heartbeats {
  /** Call on progress: heartbeats the latest details at most once a second. */
  progressed(): void;
  stop(): void;
}

/**
 * Heartbeats the latest details on progress (for `pgops backup now`) and every `keepAliveMs`
 * regardless, so a step that moves nothing for a while (a lock wait, a slow part) is not
 * mistaken for a dead worker. Stop it when the step ends. `quietStartMs` holds back progress
 * heartbeats for that long after the start: each is a write on the Temporal server, and a step
 * that is usually over by then (an embedding batch) needs none.
 */
export function heartbeatWhile(details: () => unknown, { keepAliveMs = 5_000, quietStartMs = 0 } = {}): Heartbeats {
  // Progress beats at most once a second; the first may come quietStartMs after the start.
  let last = Date.now() - PROGRESS_INTERVAL_MS + quietStartMs;
  const beat = () => {
    last = Date.now();
    Context.current().heartbeat(details());
  };
  const timer = setInterval(beat, keepAliveMs);
  return {
    progressed: () => {
      if (Date.now() - last >= PROGRESS_INTERVAL_MS) beat();
    },
    stop: () => clearInterval(timer),
  };
}

/** Runs `work` with heartbeats every few seconds carrying `details`: for a step with no progress to report. */
export async function heartbeatDuring<T>(details: () => unknown, work: () => Promise<T>): Promise<T> {
  const heartbeats = heartbeatWhile(details);
  try {
    return await work();
  } finally {
    heartbeats.stop();
  }
}
