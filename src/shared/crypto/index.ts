// Encryption and authentication of what pgops stores: the API the logical backups use today and
// the physical archive (WAL segments, base backups) calls as it lands. See docs/encryption.md.
export { KeyRing, KeyMissing, KEY_ID_PATTERN, parseKeyList } from './keyRing';
export {
  decryptBuffer,
  decryptStream,
  encryptBuffer,
  encryptedSize,
  encryptStream,
  readKeyId,
  DEFAULT_CHUNK_BYTES,
  ENCRYPTION_CIPHER,
  ENCRYPTION_SCHEME,
  ObjectNotAuthentic,
  type EncryptOptions,
  type StreamOptions,
} from './objectStream';
export { canonicalJson, describeStatus, isTrusted, signRecord, verifyRecord, type AuthenticationStatus, type RecordAuthentication } from './manifestAuth';
