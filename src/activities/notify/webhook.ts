// POSTs a backup's outcome as JSON to the configured webhook (PGOPS_NOTIFY_WEBHOOK_URL).
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../config';
import type { BackupNotification } from '../../types';

export function webhookActivities(config: WorkerConfig) {
  async function notifyWebhook(notification: BackupNotification): Promise<{ delivered: boolean; status?: number }> {
    if (!config.notifyWebhookUrl) return { delivered: false };
    let response: Response;
    try {
      response = await fetch(config.notifyWebhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'pgops' },
        body: JSON.stringify({ source: 'pgops', ...notification }),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw ApplicationFailure.retryable(`webhook ${config.notifyWebhookUrl} unreachable: ${(err as Error).message}`, 'WebhookUnreachable');
    }
    if (!response.ok) {
      throw ApplicationFailure.retryable(`webhook ${config.notifyWebhookUrl} answered ${response.status}`, 'WebhookRejected');
    }
    return { delivered: true, status: response.status };
  }
  return { notifyWebhook };
}
