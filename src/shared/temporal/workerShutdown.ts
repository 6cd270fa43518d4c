// Whether this worker process has been asked to stop (SIGINT or SIGTERM, the signals on which the
// SDK starts draining). A finite activity (a dump, an upload) gets the worker's grace time to
// finish, which is what a deploy wants. The endless ones (the WAL archiver's stream, the failover
// watcher's probing) have nothing to finish: without this they held every stop for the whole
// grace (15 minutes by default, `npm run demo` included). They end their round at once instead,
// the way a round ends on its deadline, and the workflow's next round goes to a worker that polls.
const stopping = new AbortController();

/** Aborted once the worker process got SIGINT or SIGTERM; never in a test's in-process worker. */
export const workerShutdownSignal: AbortSignal = stopping.signal;

/** Called by the worker process before it runs (beside the SDK's own handlers for the same signals). */
export function noticeWorkerShutdown(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stopping.abort());
}
