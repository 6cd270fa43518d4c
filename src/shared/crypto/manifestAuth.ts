// Authentication of what pgops writes about its backups (manifests; the WAL index later): an
// HMAC-SHA256 with a key derived from a master key only the workers hold, over the record's
// canonical JSON (keys sorted, no whitespace) without its own `authentication` field. Anyone
// who can write to the bucket can write JSON; only a worker can write JSON that verifies.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { KeyRing } from './keyRing';

export interface RecordAuthentication {
  keyId: string;
  algorithm: 'HMAC-SHA256';
  /** Hex. */
  mac: string;
}

/**
 * - `authentic`: the MAC verifies with the key it names
 * - `unsigned`: no authentication field at all
 * - `unknown-key`: signed with a key id this ring lacks (cannot tell; not trusted)
 * - `invalid`: the MAC does not verify: altered, or forged
 * - `not-checked`: this process has no keys, so it cannot tell
 */
export type AuthenticationStatus = 'authentic' | 'unsigned' | 'unknown-key' | 'invalid' | 'not-checked';

/** A record's canonical form: JSON with object keys sorted at every level, undefined members left out. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The domain ("manifest") keeps a MAC of one kind of record from passing as another's. */
function mac(ring: KeyRing, keyId: string, domain: string, record: object): string {
  const rest: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  delete rest.authentication;
  return createHmac('sha256', ring.derive(keyId, 'manifest', `authenticating a ${domain}`))
    .update(`pgops ${domain} v1\n`)
    .update(canonicalJson(rest))
    .digest('hex');
}

/** `record` with its authentication by the ring's current key. */
export function signRecord<T extends object>(ring: KeyRing, domain: string, record: T): T & { authentication: RecordAuthentication } {
  const rest: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  delete rest.authentication;
  return { ...(rest as T), authentication: { keyId: ring.current, algorithm: 'HMAC-SHA256', mac: mac(ring, ring.current, domain, rest) } };
}

export function verifyRecord(ring: KeyRing | undefined, domain: string, record: object): { status: AuthenticationStatus; keyId?: string } {
  if (!ring) return { status: 'not-checked' };
  const auth = (record as { authentication?: Partial<RecordAuthentication> }).authentication;
  if (!auth || typeof auth !== 'object') return { status: 'unsigned' };
  const keyId = typeof auth.keyId === 'string' ? auth.keyId : undefined;
  if (!keyId || auth.algorithm !== 'HMAC-SHA256' || typeof auth.mac !== 'string' || !/^[0-9a-f]{64}$/.test(auth.mac)) return { status: 'invalid', keyId };
  if (!ring.has(keyId)) return { status: 'unknown-key', keyId };
  const expected = Buffer.from(mac(ring, keyId, domain, record), 'hex');
  return { status: timingSafeEqual(expected, Buffer.from(auth.mac, 'hex')) ? 'authentic' : 'invalid', keyId };
}

/** Whether a record in this status may be acted on: authentic, or nothing could be checked because no key is configured. */
export function isTrusted(status: AuthenticationStatus): boolean {
  return status === 'authentic' || status === 'not-checked';
}

export function describeStatus(status: AuthenticationStatus, keyId?: string): string {
  switch (status) {
    case 'authentic':
      return `authentic (key ${keyId})`;
    case 'unsigned':
      return 'UNAUTHENTICATED: no authentication';
    case 'unknown-key':
      return `UNVERIFIABLE: signed with key "${keyId}", not in this key ring`;
    case 'invalid':
      return 'UNAUTHENTICATED: authentication does not verify';
    case 'not-checked':
      return 'not checked (no encryption key configured)';
  }
}
