// An HTTP proxy in front of the S3 endpoint whose behaviour a test switches, for faults the
// shared MinIO cannot be made to show on its own, or not at a chosen moment.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type S3ProxyMode = 'pass' | 'refuse-writes' | 'hold-writes';

/**
 * `pass`; `refuse-writes` (PUT answered 403 AccessDenied, as a read-only bucket policy does);
 * `hold-writes` (PUT and POST wait until `release()`, so a test can stop the real server while an
 * upload is surely in flight); `down()` (the port refuses connections, as a stopped MinIO does,
 * without stopping the shared one).
 */
export async function startS3Proxy(upstream: string) {
  const target = new URL(upstream);
  let mode: S3ProxyMode = 'pass';
  const held: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const forward = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const upstreamReq = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    });
    upstreamReq.on('error', () => res.destroy());
    req.pipe(upstreamReq);
  };
  const server = http.createServer((req, res) => {
    const write = req.method === 'PUT' || req.method === 'POST';
    if (mode === 'refuse-writes' && req.method === 'PUT') {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>');
      return;
    }
    if (mode === 'hold-writes' && write) {
      req.pause();
      held.push(() => forward(req, res));
      return;
    }
    forward(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    setMode(m: S3ProxyMode) {
      mode = m;
    },
    /** Writes waiting in `hold-writes`. */
    held: () => held.length,
    /** Back to `pass`; the held writes go on to the server (or fail, if it is gone). */
    release() {
      mode = 'pass';
      for (const go of held.splice(0)) go();
    },
    async down() {
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      });
    },
    async up() {
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
