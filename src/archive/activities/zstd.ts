// Segments are compressed on their way to S3 with the zstd CLI (Node 20's zlib has no zstd, and
// pg_receivewal 18 cannot write it), streamed through pipes: memory stays flat whatever the file.
// The SHA-256 is always of the raw bytes, since zstd's output differs between versions and levels.
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { childEnv } from '../../shared/childEnv';
import { hashingTap } from '../../shared/storage/hashingTap';

const ZSTD = process.env.PGOPS_ZSTD_BIN ?? 'zstd';

export interface CompressedFile {
  sha256: string;
  rawBytes: number;
  storedBytes: number;
}

function zstd(args: string[]) {
  const child = spawn(ZSTD, ['-q', ...args], { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run ${ZSTD}: ${err.message} (install zstd)`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${ZSTD} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`))));
  });
  return { child, exited };
}

/** `source` compressed into `destination` (zstd -1), with the SHA-256 and size of the raw bytes. */
export async function compressFile(source: string, destination: string): Promise<CompressedFile> {
  const raw = hashingTap();
  const { child, exited } = zstd(['-1', '-c']);
  let storedBytes = 0;
  child.stdout.on('data', (d: Buffer) => (storedBytes += d.length));
  await Promise.all([pipeline(createReadStream(source), raw.stream, child.stdin), pipeline(child.stdout, createWriteStream(destination, { mode: 0o600 })), exited]);
  const { sha256, sizeBytes } = raw.result();
  return { sha256, rawBytes: sizeBytes, storedBytes };
}

/** The SHA-256 and size of what a zstd stream decompresses to (a read-back from S3). */
export async function decompressedDigest(compressed: Readable): Promise<{ sha256: string; rawBytes: number }> {
  const raw = hashingTap();
  const { child, exited } = zstd(['-d', '-c']);
  const sink = new Writable({ write: (_chunk, _enc, done) => done() });
  await Promise.all([pipeline(compressed, child.stdin), pipeline(child.stdout, raw.stream, sink), exited]);
  const { sha256, sizeBytes } = raw.result();
  return { sha256, rawBytes: sizeBytes };
}
