// A real HTTP endpoint on loopback that records what pgops POSTs to it.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookReceiver {
  url: string;
  received: unknown[];
  close(): Promise<void>;
}

/** `status`: what every POST is answered with (204 unless a test wants the hook to refuse). */
export async function startWebhookReceiver(status = 204): Promise<WebhookReceiver> {
  const received: unknown[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/pgops`, received, close: () => new Promise((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }) };
}
