// An S3 endpoint that refuses writes: a proxy in front of the stack's MinIO that passes reads
// (GET, HEAD) through and answers every write 403 AccessDenied, as a bucket policy denying
// s3:PutObject to the worker's key would. The client's Host header is kept, so signatures hold.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReadOnlyS3 {
  endpoint: string;
  refusedWrites: () => number;
  close(): Promise<void>;
}

const ACCESS_DENIED = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied.</Message><RequestId>readonly-proxy</RequestId></Error>';

export async function startReadOnlyS3(upstream: string): Promise<ReadOnlyS3> {
  const target = new URL(upstream);
  let refused = 0;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      refused++;
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' });
      res.end(ACCESS_DENIED);
      return;
    }
    const forwarded = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refusedWrites: () => refused,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
