// POSTs a backup's outcome (logical or base backup), a failed restore drill or the WAL archive's (or its audit's) call for an operator as JSON to the configured webhook (PGOPS_NOTIFY_WEBHOOK_URL).
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../config';
import type { BackupNotification } from '../../backup/contract';
import type { ArchiveNotification, BaseBackupNotification, WalAuditNotification } from '../../archive/contract';
import type { DrillNotification } from '../../pitr/contract';

type Notification = BackupNotification | BaseBackupNotification | ArchiveNotification | WalAuditNotification | DrillNotification;

export function webhookActivities(config: WorkerConfig) {
  async function notifyWebhook(notification: Notification): Promise<{ delivered: boolean; status?: number }> {
    if (!config.notifyWebhookUrl) return { delivered: false };
    const where = webhookOrigin(config.notifyWebhookUrl);
    let response: Response;
    try {
      response = await fetch(config.notifyWebhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'pgops' },
        body: JSON.stringify({ source: 'pgops', ...notification }),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw ApplicationFailure.retryable(`webhook ${where} unreachable: ${fetchFailure(err, config.notifyWebhookUrl)}`, 'WebhookUnreachable');
    }
    if (!response.ok) {
      throw ApplicationFailure.retryable(`webhook ${where} answered ${response.status}`, 'WebhookRejected');
    }
    return { delivered: true, status: response.status };
  }
  return { notifyWebhook };
}

/**
 * Where the webhook is, for messages: a hook's path or query is often its secret (Slack, Teams,
 * Discord), and failure messages end up in workflow histories, logs and other webhooks.
 */
export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'at PGOPS_NOTIFY_WEBHOOK_URL (not a valid URL)';
  }
}

/** fetch's own words ("fetch failed") and its cause's ("connect ECONNREFUSED ..."), minus the URL. */
function fetchFailure(err: unknown, url: string): string {
  const { message, cause } = err as Error & { cause?: Error };
  const text = cause?.message ? `${message}: ${cause.message}` : String(message ?? err);
  return text.split(url).join('<PGOPS_NOTIFY_WEBHOOK_URL>');
}
