// The worker's master keys: one current key that encrypts and signs everything new, and retired
// keys that only decrypt and verify what older backups were made with. Master keys never touch
// data directly: each derives (HKDF-SHA256) a key that wraps per-object data keys and a key that
// authenticates manifests, so one secret per key id serves both without reusing a key across
// purposes. The ring never serialises its secrets (toJSON names the ids only).
import { hkdfSync } from 'node:crypto';

/** Key ids appear in object headers and manifests: short, printable, no separators. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const MASTER_KEY_BYTES = 32;

export type KeyPurpose = 'wrap' | 'manifest';

const HKDF_INFO: Record<KeyPurpose, string> = {
  wrap: 'pgops v1 object data-key wrapping',
  manifest: 'pgops v1 manifest authentication',
};

export class KeyMissing extends Error {
  override name = 'KeyMissing';
  constructor(readonly keyId: string, what: string) {
    super(`${what} needs encryption key id "${keyId}", which this worker's key ring does not hold; add it to PGOPS_ENCRYPTION_KEYS (or the keys file) as a retired key`);
  }
}

export class KeyRing {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly #derived = new Map<string, Buffer>();

  /** `current` encrypts and signs; every other key only decrypts and verifies. */
  constructor(keys: Map<string, Buffer>, readonly current: string) {
    if (!keys.has(current)) throw new Error(`current key id "${current}" is not among the keys (${[...keys.keys()].join(', ')})`);
    for (const [id, key] of keys) {
      if (!KEY_ID_PATTERN.test(id)) throw new Error(`key id "${id}" must be 1-64 of A-Z a-z 0-9 . _ -`);
      if (key.length !== MASTER_KEY_BYTES) throw new Error(`key "${id}" is ${key.length} bytes; a master key is ${MASTER_KEY_BYTES} random bytes`);
    }
    this.#keys = keys;
  }

  get ids(): string[] {
    return [...this.#keys.keys()];
  }

  get retired(): string[] {
    return this.ids.filter((id) => id !== this.current);
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** The 32-byte key of `purpose` derived from master key `id`; KeyMissing names the id when it is not here. */
  derive(id: string, purpose: KeyPurpose, what = 'this object'): Buffer {
    const cacheKey = `${purpose}\0${id}`;
    const cached = this.#derived.get(cacheKey);
    if (cached) return cached;
    const master = this.#keys.get(id);
    if (!master) throw new KeyMissing(id, what);
    const derived = Buffer.from(hkdfSync('sha256', master, Buffer.from('pgops'), Buffer.from(HKDF_INFO[purpose]), 32));
    this.#derived.set(cacheKey, derived);
    return derived;
  }

  /**
   * The ring as PGOPS_ENCRYPTION_KEYS reads it ("id:base64,…"), for the one place a helper run as
   * another OS user needs it: the 0600 env file of a restore's wal-fetch program. Never logged,
   * never in a workflow's input or result.
   */
  exportKeyList(): string {
    return [...this.#keys].map(([id, key]) => `${id}:${key.toString('base64')}`).join(',');
  }

  toJSON(): { current: string; retired: string[] } {
    return { current: this.current, retired: this.retired };
  }
}

/**
 * Parses "id:base64,id:base64" (the environment) or lines of "id base64" / "id:base64" (a keys
 * file; # comments). Base64 or hex of exactly 32 bytes.
 */
export function parseKeyList(text: string, where: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  const entries = text
    .split(/[\n,]/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter(Boolean);
  for (const entry of entries) {
    const match = /^([^\s:=]+)\s*[:=\s]\s*(\S+)$/.exec(entry);
    if (!match) throw new Error(`${where}: "${entry.slice(0, 20)}…" is not "<key id>:<base64 of 32 bytes>"`);
    const [, id, encoded] = match;
    if (!KEY_ID_PATTERN.test(id)) throw new Error(`${where}: key id "${id}" must be 1-64 of A-Z a-z 0-9 . _ -`);
    if (keys.has(id)) throw new Error(`${where}: key id "${id}" appears twice`);
    const key = /^[0-9a-fA-F]{64}$/.test(encoded) ? Buffer.from(encoded, 'hex') : Buffer.from(encoded, 'base64');
    if (key.length !== MASTER_KEY_BYTES) {
      throw new Error(`${where}: key "${id}" decodes to ${key.length} bytes; a master key is ${MASTER_KEY_BYTES} random bytes (openssl rand -base64 32)`);
    }
    keys.set(id, key);
  }
  return keys;
}
