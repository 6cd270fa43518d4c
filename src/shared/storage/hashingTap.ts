// A stream stage that passes bytes through while it hashes (SHA-256) and counts them: how every
// object pgops stores or fetches is checked in the same pass that moves it, never read twice.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

export interface HashingTap {
  stream: Transform;
  /** Once the stream has ended: the SHA-256 and size of what went through. */
  result(): { sha256: string; sizeBytes: number };
}

/** `onBytes` hears each chunk's size as it passes (progress, heartbeats). */
export function hashingTap(onBytes?: (chunkBytes: number) => void): HashingTap {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  return { stream, result: () => ({ sha256: hash.digest('hex'), sizeBytes: bytes }) };
}
