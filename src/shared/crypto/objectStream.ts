// Client-side authenticated encryption of one stored object, streamed in fixed-size chunks: the
// STREAM construction age and libsodium's secretstream use, with node:crypto's AES-256-GCM.
//
//   header  "pgopsENC" | version 1 | log2(chunk size) | key id length | key id
//           | wrap nonce (12) | data key wrapped by the master key's wrapping key (32) | tag (16)
//   chunks  AES-256-GCM(data key, nonce = chunk index (11 bytes, big-endian) | final flag (1))
//           each chunkBytes of plaintext (the final one 0..chunkBytes) followed by its 16-byte tag
//
// Each object has its own random data key, so chunk nonces from a counter never repeat under a
// key. The wrap authenticates the header before it (version, chunk size, key id) and the
// caller's context (the object's place in the backup), so a header edited or an object moved
// to another name fails to open. A chunk moved, dropped, duplicated or flipped fails its tag; a
// stream cut at a chunk boundary lacks the chunk marked final. Nothing of a chunk is released
// before its tag checked, and a reader must not use the output before the stream ends cleanly.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { KEY_ID_PATTERN, type KeyRing } from './keyRing';

export const ENCRYPTION_SCHEME = 'pgops-stream-v1';
export const ENCRYPTION_CIPHER = 'AES-256-GCM';
const MAGIC = Buffer.from('pgopsENC');
const VERSION = 1;
const DEFAULT_CHUNK_LOG2 = 16; // 64 KiB, as age
const TAG = 16;
const NONCE = 12;
const DATA_KEY = 32;

export const DEFAULT_CHUNK_BYTES = 1 << DEFAULT_CHUNK_LOG2;

/** Raised for anything that does not open: the message says what, the caller adds which object. */
export class ObjectNotAuthentic extends Error {
  override name = 'ObjectNotAuthentic';
}

export interface StreamOptions {
  /** Bound into the header's authentication: the same string must be given to decrypt (e.g. "primary/<backup id>/dump.pgdump"). */
  context: string;
}

export interface EncryptOptions extends StreamOptions {
  /** Which master key wraps the data key (default: the ring's current key). */
  keyId?: string;
  /** Plaintext bytes per chunk, a power of two from 1 KiB to 16 MiB (default 64 KiB). */
  chunkBytes?: number;
}

function chunkNonce(index: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(NONCE);
  // 2^53 chunks is far beyond any object; the top 3 bytes of the 11-byte counter stay zero.
  nonce.writeUIntBE(Math.floor(index / 2 ** 32), 1, 3);
  nonce.writeUInt32BE(index % 2 ** 32, 7);
  nonce[11] = final ? 1 : 0;
  return nonce;
}

function headerPrefix(keyId: string, chunkLog2: number): Buffer {
  const id = Buffer.from(keyId, 'ascii');
  return Buffer.concat([MAGIC, Buffer.from([VERSION, chunkLog2, id.length]), id]);
}

function wrapAad(prefix: Buffer, context: string): Buffer {
  return Buffer.concat([prefix, Buffer.from(context, 'utf8')]);
}

/** Bytes of the stored object for `plainBytes` of plaintext. */
export function encryptedSize(plainBytes: number, keyId: string, chunkBytes = DEFAULT_CHUNK_BYTES): number {
  const chunks = Math.max(1, Math.ceil(plainBytes / chunkBytes));
  return headerPrefix(keyId, Math.log2(chunkBytes)).length + NONCE + DATA_KEY + TAG + plainBytes + chunks * TAG;
}

/** A Transform from plaintext to the stored form. */
export function encryptStream(ring: KeyRing, options: EncryptOptions): Transform {
  const keyId = options.keyId ?? ring.current;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const chunkLog2 = Math.log2(chunkBytes);
  if (!Number.isInteger(chunkLog2) || chunkLog2 < 10 || chunkLog2 > 24) throw new Error(`chunk size ${chunkBytes} must be a power of two from 1 KiB to 16 MiB`);
  const wrapKey = ring.derive(keyId, 'wrap', `encrypting ${options.context}`);
  const dataKey = randomBytes(DATA_KEY);
  const prefix = headerPrefix(keyId, chunkLog2);
  const wrapNonce = randomBytes(NONCE);
  const wrap = createCipheriv('aes-256-gcm', wrapKey, wrapNonce);
  wrap.setAAD(wrapAad(prefix, options.context));
  const wrapped = Buffer.concat([wrap.update(dataKey), wrap.final()]);
  const header = Buffer.concat([prefix, wrapNonce, wrapped, wrap.getAuthTag()]);

  let index = 0;
  const pending = new ChunkBuffer();
  const seal = (plain: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv('aes-256-gcm', dataKey, chunkNonce(index++, final));
    return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  };
  let headerSent = false;
  const sendHeader = (t: Transform) => {
    if (!headerSent) t.push(header);
    headerSent = true;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      sendHeader(this);
      pending.add(chunk);
      // A chunk is sealed only once a byte beyond it exists: the last one must carry the final flag.
      while (pending.length > chunkBytes) this.push(seal(pending.take(chunkBytes), false));
      done();
    },
    flush(done: TransformCallback) {
      sendHeader(this);
      this.push(seal(pending.take(pending.length), true));
      done();
    },
  });
}

/** Reads an object's header far enough to name its key id (for checks before decrypting). */
export function readKeyId(head: Buffer): string | undefined {
  if (head.length < MAGIC.length + 3 || !head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const idLength = head[MAGIC.length + 2];
  const id = head.subarray(MAGIC.length + 3, MAGIC.length + 3 + idLength).toString('ascii');
  return KEY_ID_PATTERN.test(id) ? id : undefined;
}

/**
 * A Transform from the stored form back to plaintext. `expectKeyId`, when given, must be the key
 * id in the header (what the authenticated manifest recorded). Errors are ObjectNotAuthentic.
 */
export function decryptStream(ring: KeyRing, options: StreamOptions & { expectKeyId?: string }): Transform {
  const pending = new ChunkBuffer();
  let dataKey: Buffer | undefined;
  let chunkBytes = 0;
  let index = 0;
  let finished = false;
  const open = (sealed: Buffer, final: boolean): Buffer => {
    const decipher = createDecipheriv('aes-256-gcm', dataKey!, chunkNonce(index, final));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    try {
      const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
      index++;
      return plain;
    } catch {
      throw new ObjectNotAuthentic(
        final
          ? `chunk ${index} does not authenticate as the final chunk: the object is truncated or altered`
          : `chunk ${index} does not authenticate: altered, reordered or from another object`,
      );
    }
  };
  const readHeader = (): boolean => {
    const fixed = MAGIC.length + 3;
    if (pending.length < fixed) return false;
    const start = pending.peek(fixed);
    if (!start.subarray(0, MAGIC.length).equals(MAGIC)) throw new ObjectNotAuthentic('not an object pgops encrypted (no pgopsENC header)');
    if (start[MAGIC.length] !== VERSION) throw new ObjectNotAuthentic(`encryption format version ${start[MAGIC.length]} is not one this pgops reads (${VERSION})`);
    const chunkLog2 = start[MAGIC.length + 1];
    if (chunkLog2 < 10 || chunkLog2 > 24) throw new ObjectNotAuthentic(`header names a chunk size of 2^${chunkLog2} bytes`);
    const total = fixed + start[MAGIC.length + 2] + NONCE + DATA_KEY + TAG;
    if (pending.length < total) return false;
    const header = pending.take(total);
    const prefix = header.subarray(0, fixed + start[MAGIC.length + 2]);
    const keyId = readKeyId(prefix);
    if (!keyId) throw new ObjectNotAuthentic('header carries no valid key id');
    if (options.expectKeyId !== undefined && keyId !== options.expectKeyId) {
      throw new ObjectNotAuthentic(`encrypted with key id "${keyId}", but its manifest records "${options.expectKeyId}"`);
    }
    const wrapKey = ring.derive(keyId, 'wrap', `decrypting ${options.context}`);
    let at = prefix.length;
    const wrapNonce = header.subarray(at, (at += NONCE));
    const wrapped = header.subarray(at, (at += DATA_KEY));
    const tag = header.subarray(at, at + TAG);
    const unwrap = createDecipheriv('aes-256-gcm', wrapKey, wrapNonce);
    unwrap.setAAD(wrapAad(prefix, options.context));
    unwrap.setAuthTag(tag);
    try {
      dataKey = Buffer.concat([unwrap.update(wrapped), unwrap.final()]);
    } catch {
      throw new ObjectNotAuthentic(`its data key does not unwrap with key "${keyId}": a different key under the same id, an altered header, or an object moved from ${JSON.stringify(options.context)}`);
    }
    chunkBytes = 2 ** chunkLog2;
    return true;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      try {
        if (finished) throw new ObjectNotAuthentic('data follows the final chunk');
        pending.add(chunk);
        if (!dataKey && !readHeader()) return done();
        const sealedBytes = chunkBytes + TAG;
        while (pending.length > sealedBytes) this.push(open(pending.take(sealedBytes), false));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        if (!dataKey && !readHeader()) throw new ObjectNotAuthentic('the object ends inside its header');
        if (pending.length < TAG) throw new ObjectNotAuthentic(`the object ends ${pending.length} bytes into chunk ${index}: truncated`);
        this.push(open(pending.take(pending.length), true));
        finished = true;
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
}

/** Encrypts a small object held in memory (globals, test fixtures). */
export async function encryptBuffer(ring: KeyRing, plain: Buffer, options: EncryptOptions): Promise<Buffer> {
  return collect(encryptStream(ring, options), plain);
}

export async function decryptBuffer(ring: KeyRing, stored: Buffer, options: StreamOptions & { expectKeyId?: string }): Promise<Buffer> {
  return collect(decryptStream(ring, options), stored);
}

function collect(transform: Transform, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    transform.on('data', (b: Buffer) => out.push(b));
    transform.on('error', reject);
    transform.on('end', () => resolve(Buffer.concat(out)));
    transform.end(input);
  });
}

/** A queue of buffers taken from in exact sizes, copying only what crosses a boundary. */
class ChunkBuffer {
  private parts: Buffer[] = [];
  length = 0;

  add(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.length += b.length;
  }

  peek(n: number): Buffer {
    return this.parts.length > 0 && this.parts[0].length >= n ? this.parts[0].subarray(0, n) : Buffer.concat(this.parts).subarray(0, n);
  }

  take(n: number): Buffer {
    this.length -= n;
    const first = this.parts[0];
    if (first && first.length === n) return this.parts.shift()!;
    if (first && first.length > n) {
      this.parts[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const part = this.parts[0];
      const used = Math.min(part.length, n - at);
      part.copy(out, at, 0, used);
      at += used;
      if (used === part.length) this.parts.shift();
      else this.parts[0] = part.subarray(used);
    }
    return out;
  }
}
