// A webhook's URL is often its secret (the token sits in the path): failure messages, which land
// in workflow histories, logs and the failure webhook itself, show only where it is. No stack.
import { webhookActivities } from '../src/shared/notify/webhook';
import type { WorkerConfig } from '../src/shared/config';
import type { BackupNotification } from '../src/backup/contract';
import { startWebhookReceiver } from './support/webhookReceiver';

const TOKEN = 'T0KEN-s3cr3t-9f8e7d';
const notification: BackupNotification = { workflowId: 'wf', backupId: 'b-1', target: 'demo', status: 'failed', stage: 'dump', error: 'boom' };

async function failureOf(url: string): Promise<Error & { type?: string }> {
  const { notifyWebhook } = webhookActivities({ notifyWebhookUrl: url } as WorkerConfig);
  return notifyWebhook(notification).then(
    () => {
      throw new Error('the webhook was delivered');
    },
    (err: Error) => err,
  );
}

test('a webhook that refuses the connection is named by its origin, never its token', async () => {
  // A port that was just free on loopback: nothing listens there any more.
  const gone = await startWebhookReceiver();
  const origin = new URL(gone.url).origin;
  await gone.close();
  const failure = await failureOf(`${origin}/hooks/${TOKEN}?key=${TOKEN}`);
  expect(failure.type).toBe('WebhookUnreachable');
  expect(failure.message).toContain(`webhook ${origin} unreachable`);
  expect(failure.message).toMatch(/ECONNREFUSED/);
  expect(failure.message).not.toContain(TOKEN);
});

test('a webhook that answers with an error status is named by its origin, never its token', async () => {
  const refusing = await startWebhookReceiver(403);
  try {
    const origin = new URL(refusing.url).origin;
    const failure = await failureOf(`${origin}/hooks/${TOKEN}`);
    expect(failure).toMatchObject({ type: 'WebhookRejected', message: `webhook ${origin} answered 403` });
  } finally {
    await refusing.close();
  }
});
