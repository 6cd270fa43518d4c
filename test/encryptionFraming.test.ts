// The object framing (src/shared/crypto): what decrypts is exactly what was encrypted, and any
// change to the stored bytes (a cut, a moved chunk, a flipped bit, another key or object name)
// is refused before a byte of the changed part is released. No services needed.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import {
  decryptBuffer,
  decryptStream,
  encryptBuffer,
  encryptedSize,
  encryptStream,
  KeyMissing,
  KeyRing,
  ObjectNotAuthentic,
  parseKeyList,
  readKeyId,
  signRecord,
  verifyRecord,
} from '../src/shared/crypto';
import { loadKeyRing, ConfigError } from '../src/shared/config';

const CHUNK = 1024;
const key = () => randomBytes(32);
const ring = new KeyRing(new Map([['k1', key()]]), 'k1');
const context = 'demo/demo-20260101T000000Z-abcdef/dump.pgdump';

async function roundTrip(plain: Buffer, chunkBytes = CHUNK) {
  const stored = await encryptBuffer(ring, plain, { context, chunkBytes });
  expect(stored.length).toBe(encryptedSize(plain.length, 'k1', chunkBytes));
  expect(await decryptBuffer(ring, stored, { context })).toEqual(plain);
  return stored;
}

const opening = (stored: Buffer, r = ring, ctx = context) => decryptBuffer(r, stored, { context: ctx });
const headerBytes = encryptedSize(0, 'k1', CHUNK) - 16;

describe('object framing', () => {
  test.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 17])('%i bytes round-trip exactly', async (n) => {
    await roundTrip(randomBytes(n));
  });

  test('streamed in odd pieces, the output is the same as in one piece', async () => {
    const plain = randomBytes(10 * CHUNK + 333);
    const pieces: Buffer[] = [];
    for (let at = 0; at < plain.length; at += 97) pieces.push(plain.subarray(at, at + 97));
    const stored: Buffer[] = [];
    await pipeline(Readable.from(pieces), encryptStream(ring, { context, chunkBytes: CHUNK }), new Writable({ write: (c, _e, d) => (stored.push(c), d()) }));
    const all = Buffer.concat(stored);
    const out: Buffer[] = [];
    const storedPieces: Buffer[] = [];
    for (let at = 0; at < all.length; at += 113) storedPieces.push(all.subarray(at, at + 113));
    await pipeline(Readable.from(storedPieces), decryptStream(ring, { context }), new Writable({ write: (c, _e, d) => (out.push(c), d()) }));
    expect(Buffer.concat(out)).toEqual(plain);
  });

  test('the same plaintext encrypts differently every time (a fresh data key per object)', async () => {
    const plain = Buffer.from('the same dump');
    expect((await roundTrip(plain)).equals(await roundTrip(plain))).toBe(false);
  });

  test('no plaintext shows in the stored bytes; the header names the key id', async () => {
    const plain = Buffer.from('marker-5f2a9 '.repeat(1000));
    const stored = await roundTrip(plain);
    expect(stored.includes(Buffer.from('marker-5f2a9'))).toBe(false);
    expect(readKeyId(stored)).toBe('k1');
  });

  test('truncated anywhere: refused', async () => {
    const stored = await roundTrip(randomBytes(4 * CHUNK + 10));
    const sealedChunk = CHUNK + 16;
    for (const cut of [5, headerBytes - 1, headerBytes + 10, headerBytes + sealedChunk, headerBytes + 3 * sealedChunk, stored.length - 1]) {
      await expect(opening(stored.subarray(0, cut))).rejects.toThrow(ObjectNotAuthentic);
    }
  });

  test('a chunk cut at a chunk boundary is caught by the missing final flag', async () => {
    const stored = await roundTrip(randomBytes(4 * CHUNK));
    await expect(opening(stored.subarray(0, headerBytes + 2 * (CHUNK + 16)))).rejects.toThrow(/final chunk: the object is truncated/);
  });

  test('two chunks swapped: refused', async () => {
    const stored = await roundTrip(randomBytes(4 * CHUNK + 10));
    const s = CHUNK + 16;
    const at = (i: number) => headerBytes + i * s;
    const swapped = Buffer.concat([stored.subarray(0, at(1)), stored.subarray(at(2), at(3)), stored.subarray(at(1), at(2)), stored.subarray(at(3))]);
    expect(swapped.length).toBe(stored.length);
    await expect(opening(swapped)).rejects.toThrow(/chunk 1 does not authenticate/);
  });

  test('a chunk duplicated or appended: refused', async () => {
    const stored = await roundTrip(randomBytes(2 * CHUNK + 10));
    const s = CHUNK + 16;
    await expect(opening(Buffer.concat([stored.subarray(0, headerBytes + s), stored.subarray(headerBytes)]))).rejects.toThrow(ObjectNotAuthentic);
    await expect(opening(Buffer.concat([stored, Buffer.from([0])]))).rejects.toThrow(ObjectNotAuthentic);
  });

  test('one flipped bit anywhere (header, wrapped key, any chunk, any tag): refused', async () => {
    const stored = await roundTrip(randomBytes(3 * CHUNK + 100));
    for (let at = 0; at < stored.length; at += 37) {
      const flipped = Buffer.from(stored);
      flipped[at] ^= 0x01;
      await expect(opening(flipped)).rejects.toThrow();
    }
  });

  test('a wrong key under the same id, an unknown key id, another object name: refused, naming why', async () => {
    const stored = await roundTrip(randomBytes(100));
    await expect(opening(stored, new KeyRing(new Map([['k1', key()]]), 'k1'))).rejects.toThrow(/does not unwrap with key "k1"/);
    await expect(opening(stored, new KeyRing(new Map([['k2', key()]]), 'k2'))).rejects.toThrow(KeyMissing);
    await expect(opening(stored, new KeyRing(new Map([['k2', key()]]), 'k2'))).rejects.toThrow(/key id "k1"/);
    await expect(opening(stored, ring, 'demo/another-backup/dump.pgdump')).rejects.toThrow(/moved from/);
    await expect(decryptBuffer(ring, stored, { context, expectKeyId: 'k0' })).rejects.toThrow(/manifest records "k0"/);
  });

  test('a plaintext object is not mistaken for an encrypted one', async () => {
    await expect(opening(Buffer.from('PGDMP custom dump'))).rejects.toThrow(/no pgopsENC header/);
  });

  test('memory stays flat: 64 MiB through the streams with a bounded high-water mark', async () => {
    const piece = randomBytes(1 << 20);
    let plainHash = createHash('sha256');
    const outHash = createHash('sha256');
    const rssBefore = process.memoryUsage().rss;
    let peak = 0;
    async function* source() {
      for (let i = 0; i < 64; i++) {
        plainHash = plainHash.update(piece);
        peak = Math.max(peak, process.memoryUsage().rss - rssBefore);
        yield piece;
      }
    }
    await pipeline(source(), encryptStream(ring, { context }), decryptStream(ring, { context }), new Writable({ write: (c, _e, d) => (outHash.update(c), d()) }));
    expect(outHash.digest('hex')).toBe(plainHash.digest('hex'));
    expect(peak).toBeLessThan(48 * 1024 * 1024);
  });
});

describe('manifest authentication', () => {
  const manifest = { backupId: 'b1', finishedAt: '2026-01-01T00:00:00Z', dataFiles: [{ name: 'dump.pgdump', sha256: 'ab', sizeBytes: 3 }], verification: { level: 'list' } };

  test('a signed record verifies, whatever the key order; any change does not', () => {
    const signed = signRecord(ring, 'manifest', manifest);
    expect(verifyRecord(ring, 'manifest', signed)).toEqual({ status: 'authentic', keyId: 'k1' });
    const reordered = JSON.parse(JSON.stringify({ verification: signed.verification, authentication: signed.authentication, dataFiles: signed.dataFiles, finishedAt: signed.finishedAt, backupId: signed.backupId }));
    expect(verifyRecord(ring, 'manifest', reordered).status).toBe('authentic');
    expect(verifyRecord(ring, 'manifest', { ...signed, finishedAt: '2099-01-01T00:00:00Z' }).status).toBe('invalid');
    expect(verifyRecord(ring, 'manifest', { ...signed, verification: undefined }).status).toBe('invalid');
    expect(verifyRecord(ring, 'manifest', manifest).status).toBe('unsigned');
    expect(verifyRecord(ring, 'wal-index', signed).status).toBe('invalid');
    expect(verifyRecord(new KeyRing(new Map([['k9', key()]]), 'k9'), 'manifest', signed)).toEqual({ status: 'unknown-key', keyId: 'k1' });
    expect(verifyRecord(undefined, 'manifest', signed).status).toBe('not-checked');
  });

  test('after rotation: new records are signed with the new key, old ones still verify with the retired one', () => {
    const old = key();
    const before = signRecord(new KeyRing(new Map([['2026-01', old]]), '2026-01'), 'manifest', manifest);
    const rotated = new KeyRing(new Map([['2026-07', key()], ['2026-01', old]]), '2026-07');
    expect(verifyRecord(rotated, 'manifest', before)).toEqual({ status: 'authentic', keyId: '2026-01' });
    expect(signRecord(rotated, 'manifest', manifest).authentication.keyId).toBe('2026-07');
  });
});

describe('key configuration', () => {
  const b64 = () => randomBytes(32).toString('base64');

  test('inline keys, the current one named; a single key needs no name; the ring never serialises secrets', () => {
    const [a, b] = [b64(), b64()];
    const r = loadKeyRing({ PGOPS_ENV_FILE: '/dev/null', PGOPS_ENCRYPTION_KEYS: `new:${a},old:${b}`, PGOPS_ENCRYPTION_KEY_ID: 'new' })!;
    expect(r.toJSON()).toEqual({ current: 'new', retired: ['old'] });
    expect(JSON.stringify({ r })).not.toContain(a.slice(0, 10));
    expect(loadKeyRing({ PGOPS_ENCRYPTION_KEYS: `only:${a}` })!.current).toBe('only');
    expect(loadKeyRing({})).toBeUndefined();
  });

  test('mistakes are one line naming the setting', () => {
    expect(() => loadKeyRing({ PGOPS_ENCRYPTION_KEYS: `a:${b64()},b:${b64()}` })).toThrow(/set PGOPS_ENCRYPTION_KEY_ID/);
    expect(() => loadKeyRing({ PGOPS_ENCRYPTION_KEYS: 'a:c2hvcnQ=' })).toThrow(/decodes to 5 bytes/);
    expect(() => loadKeyRing({ PGOPS_ENCRYPTION_KEYS: `a:${b64()}`, PGOPS_ENCRYPTION_KEY_ID: 'b' })).toThrow(ConfigError);
    expect(() => loadKeyRing({ PGOPS_ENCRYPTION_KEY_ID: 'b' })).toThrow(/no keys are/);
    expect(() => parseKeyList(`a:${b64()}\na:${b64()}`, 'file')).toThrow(/appears twice/);
  });
});
