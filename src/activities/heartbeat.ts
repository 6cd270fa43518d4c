// Heartbeats for long activities, at most one a second however often progress is reported.
import { Context } from '@temporalio/activity';

export function throttledHeartbeat(intervalMs = 1_000): (details: unknown) => void {
  let last = 0;
  return (details) => {
    const now = Date.now();
    if (now - last < intervalMs) return;
    last = now;
    Context.current().heartbeat(details);
  };
}

/** Kills a child process when the activity is cancelled (or its heartbeat times out). */
export function killOnCancel(child: { kill: (signal?: NodeJS.Signals) => boolean }): void {
  Context.current().cancelled.catch(() => child.kill('SIGTERM'));
}

/**
 * Heartbeats every `ms` with the latest details until stopped, so a step that makes no visible
 * progress for a while (a lock wait, a slow part) is not mistaken for a dead worker.
 */
export function heartbeatWhile(details: () => unknown, ms = 5_000): () => void {
  const timer = setInterval(() => Context.current().heartbeat(details()), ms);
  return () => clearInterval(timer);
}
