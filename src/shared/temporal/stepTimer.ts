// How long each step of a workflow took, for its result and audit record. Workflow code: Date.now()
// is the SDK's deterministic clock there (it moves with the history, so replay gives the same).
export function stepTimer() {
  const durationsMs: Record<string, number> = {};
  /** Runs `work`, adding its duration to the step's (a step run twice counts both). */
  const timed = async <T>(step: string, work: () => Promise<T>): Promise<T> => {
    const from = Date.now();
    try {
      return await work();
    } finally {
      durationsMs[step] = (durationsMs[step] ?? 0) + Date.now() - from;
    }
  };
  return { durationsMs, timed };
}
