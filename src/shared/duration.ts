// Durations as Temporal reads them ("24 hours", "30m", "500ms"): one check for config and workflow input.
import { msToNumber } from '@temporalio/common/lib/time';

export function isDuration(value: string): boolean {
  try {
    return msToNumber(value as Parameters<typeof msToNumber>[0]) > 0;
  } catch {
    return false;
  }
}
