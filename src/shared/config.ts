// The one configuration loader. Everything comes from environment variables, optionally
// seeded from an env file; a missing or malformed value fails fast with one line naming it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parse as parseEnvFile } from 'dotenv';
import { msToNumber } from '@temporalio/common/lib/time';
import { isDuration } from './duration';
import type { ApprovalPolicy } from './approval';
import { clusterVariable } from '../failover/contract';
import { isOperatorName } from './approval';
import { NAME_PATTERN } from './targets';
import { KeyRing, parseKeyList } from './crypto/keyRing';

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  /** Present when the connection uses TLS; cert/key make it mutual TLS. */
  tls?: { serverRootCaPath?: string; clientCertPath?: string; clientKeyPath?: string; serverName?: string };
  apiKey?: string;
}

/** A PostgreSQL server the worker may act on, named in workflow inputs by `name` only. */
export interface TargetConfig {
  name: string;
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  /** The variable this target came from, so errors can tell the operator what to fix. */
  source: string;
  /** Present when the server runs on the worker's machine and pgops may stop, start and rebuild it. */
  server?: ServerControl;
  /** libpq's sslmode and certificate files, from the URL's query; absent: no TLS (as before). */
  tls?: TargetTls;
  /** The server's log file, where the worker can read it (`pgops doctor` shows its last errors). */
  logFile?: string;
}

/**
 * TLS as libpq's sslmode has it, less `allow` and `prefer`: they fall back to clear text without
 * saying so, which the pg client cannot do and an operator should not get by accident.
 */
export interface TargetTls {
  mode: 'disable' | 'require' | 'verify-ca' | 'verify-full';
  /** CA file the server's certificate must chain to, or `system` (the OS trust store, verify-full only). */
  rootCert?: string;
  /** Client certificate and key files, for `cert` authentication. */
  cert?: string;
  key?: string;
}

/** A PostgreSQL server on this machine: its data directory, and the OS user its files belong to. */
export interface ServerControl {
  dataDir: string;
  /** pg_ctl, pg_rewind and pg_basebackup run as this user (via runuser) when the worker runs as root. */
  osUser?: string;
}

/** How the SDK computes request checksums: some S3-compatible stores reject the AWS defaults. */
export type S3ChecksumMode = 'when_supported' | 'when_required';

export interface S3Config {
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  checksumMode: S3ChecksumMode;
  /** Key prefix under which backups live: <prefix>/<target>/<backupId>/... */
  prefix: string;
  storageClass?: string;
  serverSideEncryption?: 'AES256' | 'aws:kms';
  sseKmsKeyId?: string;
  /** Object-lock retention for uploaded backups, where the bucket has object lock enabled. */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
  /** URL-encoded tag set, e.g. "app=cs-arena&kind=backup". */
  tags?: string;
}

/** A TCP address to listen on. */
export interface ListenAddress {
  host: string;
  port: number;
}

export interface MetricsConfig {
  /** Where the worker serves pgops' /metrics; absent: not served. */
  listen?: ListenAddress;
  /** Where the Temporal SDK's own exporter serves the worker's SDK metrics; absent: not exported. */
  temporalListen?: ListenAddress;
}

export interface WorkerConfig {
  temporal: TemporalConfig;
  /** Directory holding pg_dump, pg_restore, psql, ... of the servers' major version. */
  pgBinDir: string;
  targets: Record<string, TargetConfig>;
  s3: S3Config;
  stagingDir: string;
  shutdownGraceTime: string;
  /** Where backup failures (and, if asked, successes) are POSTed as JSON. */
  notifyWebhookUrl?: string;
  openai: { apiKey?: string; baseUrl?: string };
  restore: ApprovalPolicy;
  clusters: Record<string, ClusterConfig>;
  /** Where test restores go when a backup names no verify target: a server of their own, not production. */
  verifyTarget?: string;
  /** Where pg_receivewal writes WAL before it is uploaded: <walSpoolDir>/<cluster>/<system identifier>. */
  walSpoolDir: string;
  metrics: MetricsConfig;
  /** Master keys: encrypt and authenticate everything stored. Absent: backups are stored as they are (pgops check says so). */
  encryption?: KeyRing;
}

export const DEFAULT_TASK_QUEUE = 'pgops';

/**
 * Reads the env file named by PGOPS_ENV_FILE (default `.env` in the working directory) beneath
 * the real environment: a variable that is set wins over the file.
 */
export function environment(base: Env = process.env): Env {
  const file = base.PGOPS_ENV_FILE ?? '.env';
  if (!existsSync(file)) {
    if (base.PGOPS_ENV_FILE) throw new ConfigError(`PGOPS_ENV_FILE names ${file}, which does not exist`);
    return base;
  }
  return { ...parseEnvFile(readFileSync(file)), ...base };
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function required(env: Env, name: string, meaning: string): string {
  const value = optional(env, name);
  if (value === undefined) throw new ConfigError(`${name} is not set: ${meaning}`);
  return value;
}

function booleanValue(env: Env, name: string, fallback: boolean): boolean {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new ConfigError(`${name}=${value} is not a boolean (use true or false)`);
}

function hostPort(env: Env, name: string, fallback: string): string {
  const value = optional(env, name) ?? fallback;
  if (!/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/.test(value)) {
    throw new ConfigError(`${name}=${value} is not a host:port address (e.g. 127.0.0.1:7233)`);
  }
  return value;
}

export function loadTemporalConfig(env: Env = environment()): TemporalConfig {
  const clientCertPath = optional(env, 'PGOPS_TEMPORAL_TLS_CERT');
  const clientKeyPath = optional(env, 'PGOPS_TEMPORAL_TLS_KEY');
  if ((clientCertPath === undefined) !== (clientKeyPath === undefined)) {
    throw new ConfigError('PGOPS_TEMPORAL_TLS_CERT and PGOPS_TEMPORAL_TLS_KEY must be set together for mutual TLS');
  }
  for (const [name, path] of [
    ['PGOPS_TEMPORAL_TLS_CERT', clientCertPath],
    ['PGOPS_TEMPORAL_TLS_KEY', clientKeyPath],
    ['PGOPS_TEMPORAL_TLS_CA', optional(env, 'PGOPS_TEMPORAL_TLS_CA')],
  ] as const) {
    if (path !== undefined && !existsSync(path)) throw new ConfigError(`${name}=${path}: no such file`);
  }
  const apiKey = optional(env, 'PGOPS_TEMPORAL_API_KEY');
  // Temporal Cloud API keys only travel over TLS, so an API key turns TLS on.
  const useTls = booleanValue(env, 'PGOPS_TEMPORAL_TLS', clientCertPath !== undefined || apiKey !== undefined);
  return {
    address: hostPort(env, 'PGOPS_TEMPORAL_ADDRESS', '127.0.0.1:7233'),
    namespace: optional(env, 'PGOPS_TEMPORAL_NAMESPACE') ?? 'pgops',
    taskQueue: optional(env, 'PGOPS_TASK_QUEUE') ?? DEFAULT_TASK_QUEUE,
    tls: useTls
      ? {
          serverRootCaPath: optional(env, 'PGOPS_TEMPORAL_TLS_CA'),
          clientCertPath,
          clientKeyPath,
          serverName: optional(env, 'PGOPS_TEMPORAL_TLS_SERVER_NAME'),
        }
      : undefined,
    apiKey,
  };
}

function targetVariable(name: string): string {
  return `PGOPS_TARGET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
}

function parseTarget(env: Env, name: string, variable = targetVariable(name)): TargetConfig {
  const raw = required(env, variable, `connection URL of target "${name}" (postgres://user:password@host:port/database)`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${variable} is not a URL (expected postgres://user:password@host:port/database)`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(`${variable} must start with postgres://, found ${url.protocol}//`);
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!url.hostname || !url.username || !database) {
    throw new ConfigError(`${variable} must name a host, a user and a database (postgres://user:password@host:port/database)`);
  }
  const tls = parseTls(url.searchParams, variable);
  return {
    name,
    host: url.hostname,
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username),
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database,
    source: variable,
    server: loadServerControl(env, name),
    ...(tls ? { tls } : {}),
    ...optionalLogFile(env, variable),
  };
}

function optionalLogFile(env: Env, urlVariable: string): { logFile?: string } {
  const variable = urlVariable.replace(/_URL$/, '_LOG_FILE');
  const logFile = optional(env, variable);
  if (logFile === undefined) return {};
  if (!logFile.startsWith('/')) throw new ConfigError(`${variable}=${logFile} must be an absolute path to the server's log file`);
  return { logFile };
}

const TLS_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'];
const SSL_MODES: TargetTls['mode'][] = ['disable', 'require', 'verify-ca', 'verify-full'];

/** The URL's libpq TLS parameters; any other parameter is refused rather than silently ignored. */
function parseTls(query: URLSearchParams, variable: string): TargetTls | undefined {
  const unknown = [...query.keys()].find((key) => !TLS_PARAMETERS.includes(key));
  if (unknown !== undefined) throw new ConfigError(`${variable}: URL parameter "${unknown}" is not supported (only ${TLS_PARAMETERS.join(', ')})`);
  const [rootCert, cert, key] = ['sslrootcert', 'sslcert', 'sslkey'].map((name) => query.get(name) ?? undefined);
  const files = { ...(rootCert ? { rootCert } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  // libpq's rule: sslrootcert=system means verify-full unless told otherwise.
  const mode = query.get('sslmode') ?? (rootCert === 'system' ? 'verify-full' : rootCert || cert ? 'require' : undefined);
  if (mode === undefined) return undefined;
  if (!SSL_MODES.includes(mode as TargetTls['mode'])) {
    throw new ConfigError(`${variable}: sslmode=${mode} is not supported: use ${SSL_MODES.join(', ')} (allow and prefer may fall back to clear text)`);
  }
  if ((mode === 'verify-ca' || mode === 'verify-full') && !rootCert) {
    throw new ConfigError(`${variable}: sslmode=${mode} needs sslrootcert=<CA file> (or sslrootcert=system for the OS trust store)`);
  }
  if (rootCert === 'system' && mode !== 'verify-full') throw new ConfigError(`${variable}: sslrootcert=system needs sslmode=verify-full, as in libpq`);
  if (Boolean(cert) !== Boolean(key)) throw new ConfigError(`${variable}: sslcert and sslkey must be given together`);
  const relative = Object.values(files).find((file) => file !== 'system' && !file.startsWith('/'));
  if (relative !== undefined) throw new ConfigError(`${variable}: ${relative} must be an absolute path (the worker's directory is not the operator's)`);
  return { mode: mode as TargetTls['mode'], ...files };
}

function loadServerControl(env: Env, name: string): ServerControl | undefined {
  const prefix = targetVariable(name).replace(/_URL$/, '');
  const dataDir = optional(env, `${prefix}_DATA_DIR`);
  const osUser = optional(env, `${prefix}_OS_USER`);
  if (dataDir === undefined) {
    if (osUser !== undefined) throw new ConfigError(`${prefix}_OS_USER is set but ${prefix}_DATA_DIR is not: name the server's data directory`);
    return undefined;
  }
  if (!dataDir.startsWith('/')) throw new ConfigError(`${prefix}_DATA_DIR=${dataDir} must be an absolute path`);
  return { dataDir, osUser };
}

/** The targets alone, for commands that only connect (migrate, seed, restore cleanup). */
export function loadTargets(env: Env = environment()): Record<string, TargetConfig> {
  const names = required(env, 'PGOPS_TARGETS', 'comma-separated names of the database targets (e.g. primary,standby)')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const targets: Record<string, TargetConfig> = {};
  for (const name of names) {
    if (!NAME_PATTERN.test(name)) {
      throw new ConfigError(`PGOPS_TARGETS: "${name}" is not a valid target name (lowercase letters, digits, _ and -)`);
    }
    targets[name] = parseTarget(env, name);
  }
  return targets;
}

/** The bucket alone, for commands that only read the catalog (backups list). */
export function loadS3(env: Env = environment()): S3Config {
  const endpoint = optional(env, 'PGOPS_S3_ENDPOINT');
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new ConfigError(`PGOPS_S3_ENDPOINT=${endpoint} is not an http(s) URL`);
  }
  const checksumMode = optional(env, 'PGOPS_S3_CHECKSUM_MODE') ?? 'when_supported';
  if (checksumMode !== 'when_supported' && checksumMode !== 'when_required') {
    throw new ConfigError(`PGOPS_S3_CHECKSUM_MODE=${checksumMode} must be when_supported or when_required`);
  }
  const accessKeyId = optional(env, 'PGOPS_S3_ACCESS_KEY_ID');
  const secretAccessKey = optional(env, 'PGOPS_S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError('PGOPS_S3_ACCESS_KEY_ID and PGOPS_S3_SECRET_ACCESS_KEY must be set together');
  }
  const sse = optional(env, 'PGOPS_S3_SSE');
  if (sse !== undefined && sse !== 'AES256' && sse !== 'aws:kms') {
    throw new ConfigError(`PGOPS_S3_SSE=${sse} must be AES256 (SSE-S3) or aws:kms (SSE-KMS)`);
  }
  return {
    endpoint,
    prefix: (optional(env, 'PGOPS_S3_PREFIX') ?? 'backups').replace(/\/+$/, ''),
    storageClass: optional(env, 'PGOPS_S3_STORAGE_CLASS'),
    serverSideEncryption: sse,
    sseKmsKeyId: optional(env, 'PGOPS_S3_SSE_KMS_KEY_ID'),
    objectLock: loadObjectLock(env),
    tags: optional(env, 'PGOPS_S3_TAGS'),
    region: optional(env, 'PGOPS_S3_REGION') ?? 'us-east-1',
    bucket: required(env, 'PGOPS_S3_BUCKET', 'the S3 bucket that holds backups'),
    accessKeyId,
    secretAccessKey,
    // S3-compatible stores (MinIO, NCP) want path-style URLs; AWS wants virtual-hosted ones.
    forcePathStyle: booleanValue(env, 'PGOPS_S3_FORCE_PATH_STYLE', endpoint !== undefined),
    checksumMode,
  };
}

function loadObjectLock(env: Env): S3Config['objectLock'] {
  const days = optional(env, 'PGOPS_S3_OBJECT_LOCK_DAYS');
  if (days === undefined) return undefined;
  if (!/^\d+$/.test(days) || Number(days) < 1) throw new ConfigError(`PGOPS_S3_OBJECT_LOCK_DAYS=${days} is not a positive whole number`);
  const mode = optional(env, 'PGOPS_S3_OBJECT_LOCK_MODE') ?? 'GOVERNANCE';
  if (mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') {
    throw new ConfigError(`PGOPS_S3_OBJECT_LOCK_MODE=${mode} must be GOVERNANCE or COMPLIANCE`);
  }
  return { mode, days: Number(days) };
}

function loadWebhookUrl(env: Env): string | undefined {
  const url = optional(env, 'PGOPS_NOTIFY_WEBHOOK_URL');
  // Not echoed: a webhook's URL is often its secret.
  if (url !== undefined && !/^https?:\/\/[^/]+/.test(url)) throw new ConfigError('PGOPS_NOTIFY_WEBHOOK_URL is not an http(s) URL (http://... or https://...)');
  return url;
}

/** The embeddings API is sent the API key and the rows' text, so only loopback may go unencrypted. */
export function loadOpenAi(env: Env): WorkerConfig['openai'] {
  const baseUrl = optional(env, 'PGOPS_OPENAI_BASE_URL');
  if (baseUrl !== undefined) checkEmbeddingsApiUrl(baseUrl);
  return { apiKey: optional(env, 'PGOPS_OPENAI_API_KEY'), baseUrl };
}

function checkEmbeddingsApiUrl(baseUrl: string): void {
  const allowed = 'use https://, or http:// only to this machine (127.0.0.0/8, ::1, localhost)';
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ConfigError(`PGOPS_OPENAI_BASE_URL=${baseUrl} is not a URL: ${allowed}`);
  }
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname))) return;
  throw new ConfigError(`PGOPS_OPENAI_BASE_URL=${baseUrl}: the API key and the rows' text must not cross the network unencrypted; ${allowed}`);
}

/** `hostname` as WHATWG URL normalises it: 127.1 is already 127.0.0.1, IPv6 in brackets. */
function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** An allow-list of operator names; a name no approval could carry is a typo to report now. */
function approverNames(env: Env, variable: string): string[] {
  const names = (optional(env, variable) ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const bad = names.find((name) => !isOperatorName(name));
  if (bad !== undefined) throw new ConfigError(`${variable}: "${bad}" is not an operator name (letters, digits, . _ @ + -)`);
  return names;
}

/** Who may approve a guarded restore. Lives with the worker so a restore's input cannot loosen it. */
function loadRestorePolicy(env: Env): ApprovalPolicy {
  const approvers = approverNames(env, 'PGOPS_RESTORE_APPROVERS');
  const approvalTimeout = optional(env, 'PGOPS_RESTORE_APPROVAL_TIMEOUT') ?? '24 hours';
  if (!isDuration(approvalTimeout)) {
    throw new ConfigError(`PGOPS_RESTORE_APPROVAL_TIMEOUT=${approvalTimeout} is not a duration such as "24 hours" or "30m"`);
  }
  return { approvers, twoPersonRule: booleanValue(env, 'PGOPS_RESTORE_TWO_PERSON_RULE', true), approvalTimeout };
}

// ---------------------------------------------------------------- clusters (failover)

export type FailoverApprovalMode = 'automatic' | 'manual';

/** How cautious a failover is. Workflows read it through the describeCluster activity. */
export interface FailoverPolicy {
  /** How long the primary is probed before it counts as failed. */
  confirmWindowMs: number;
  probeIntervalMs: number;
  /** Connect + SELECT 1 must answer within this. */
  probeTimeoutMs: number;
  /** Refuse a candidate further behind than this unless an operator forces it (Patroni's maximum_lag_on_failover). */
  maxLagBytes: number;
  /** How long replay may take to catch up with what the candidate received. */
  replayCatchUpMs: number;
  approval: FailoverApprovalMode;
  /** How long a waiting failover waits for an operator's signal before giving up with nothing promoted. */
  approvalTimeoutMs: number;
  /** Without confirmed fencing of the old primary, stop and ask an operator. */
  fencingRequired: boolean;
  /** Who may answer the failover's gates; empty means anyone. */
  approvers: string[];
}

/** A primary and its standbys, the app-facing endpoint in front of them, and the hooks that act on the world. */
export interface ClusterConfig {
  name: string;
  primary: string;
  standbys: string[];
  /** Where the app connects (PgBouncer, HAProxy, a DNS name): failover verifies a write through it. */
  endpoint?: TargetConfig;
  /** The PgBouncer ini the default repoint hook rewrites (then RELOAD on its admin console). */
  pgbouncerIni?: string;
  /** Argument arrays; {cluster}, {old_primary}, {new_primary}, {new_host}, {new_port}, {old_host}, {old_port} are filled in. */
  fenceCommand?: string[];
  repointCommand?: string[];
  /** The role a rejoined standby streams as. */
  replication?: { user: string; password?: string };
  policy: FailoverPolicy;
  /** The WAL archive of the cluster (docs/wal-archive.md). */
  walArchive: WalArchiveConfig;
}

/**
 * `off`: no archiver may run. `async`: the archiver streams WAL and the primary does not wait for it.
 * `sync`: the operator has put the archiver's application_name into synchronous_standby_names, so
 * commits wait for the archive host's fsync; the archiver checks that it is there.
 */
export type WalArchiveMode = 'off' | 'async' | 'sync';

export interface WalArchiveConfig {
  mode: WalArchiveMode;
}

export { clusterVariable };

function durationMs(env: Env, name: string, fallback: string): number {
  const value = optional(env, name) ?? fallback;
  if (!isDuration(value)) throw new ConfigError(`${name}=${value} is not a duration such as "6s" or "1 minute"`);
  return msToNumber(value as Parameters<typeof msToNumber>[0]);
}

function commandArray(env: Env, name: string): string[] | undefined {
  const value = optional(env, name);
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === 'string' && a !== '')) {
    throw new ConfigError(`${name} must be a JSON array of arguments, e.g. ["/usr/local/bin/fence","{old_host}"] (no shell strings)`);
  }
  return parsed as string[];
}

function loadCluster(env: Env, name: string, targets: Record<string, TargetConfig>): ClusterConfig {
  const v = (setting: string) => clusterVariable(name, setting);
  const node = (variable: string, nodeName: string) => {
    if (!targets[nodeName]) throw new ConfigError(`${variable}: "${nodeName}" is not a configured target (PGOPS_TARGETS: ${Object.keys(targets).join(', ')})`);
    return nodeName;
  };
  const primary = node(v('PRIMARY'), required(env, v('PRIMARY'), `the target that is cluster "${name}"'s primary`));
  const standbys = required(env, v('STANDBYS'), `comma-separated targets that stream from cluster "${name}"'s primary`)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => node(v('STANDBYS'), s));
  if (standbys.includes(primary)) throw new ConfigError(`${v('STANDBYS')} lists the primary "${primary}" itself`);
  const endpointUrl = optional(env, v('ENDPOINT_URL'));
  const pgbouncerIni = optional(env, v('PGBOUNCER_INI'));
  if (pgbouncerIni !== undefined && endpointUrl === undefined) {
    throw new ConfigError(`${v('PGBOUNCER_INI')} is set but ${v('ENDPOINT_URL')} is not: PgBouncer's admin console is reached at the endpoint's address with its credentials`);
  }
  const maxLag = optional(env, v('MAX_LAG_BYTES')) ?? String(1024 * 1024);
  if (!/^\d+$/.test(maxLag)) throw new ConfigError(`${v('MAX_LAG_BYTES')}=${maxLag} is not a whole number of bytes`);
  const approval = optional(env, v('APPROVAL')) ?? 'automatic';
  if (approval !== 'automatic' && approval !== 'manual') throw new ConfigError(`${v('APPROVAL')}=${approval} must be automatic or manual`);
  const replicationUser = optional(env, v('REPLICATION_USER'));
  const policy: FailoverPolicy = {
    confirmWindowMs: durationMs(env, v('CONFIRM_WINDOW'), '6s'),
    probeIntervalMs: durationMs(env, v('PROBE_INTERVAL'), '1s'),
    probeTimeoutMs: durationMs(env, v('PROBE_TIMEOUT'), '1s'),
    maxLagBytes: Number(maxLag),
    replayCatchUpMs: durationMs(env, v('REPLAY_CATCHUP_TIMEOUT'), '10s'),
    approval,
    approvalTimeoutMs: durationMs(env, v('APPROVAL_TIMEOUT'), '1 hour'),
    fencingRequired: booleanValue(env, v('FENCING_REQUIRED'), true),
    approvers: approverNames(env, v('APPROVERS')),
  };
  if (policy.probeIntervalMs > policy.confirmWindowMs) {
    throw new ConfigError(`${v('PROBE_INTERVAL')} is longer than ${v('CONFIRM_WINDOW')}: the window would hold a single probe`);
  }
  return {
    name,
    primary,
    standbys,
    endpoint: endpointUrl === undefined ? undefined : parseTarget(env, `${name}-endpoint`, v('ENDPOINT_URL')),
    pgbouncerIni,
    fenceCommand: commandArray(env, v('FENCE_COMMAND')),
    repointCommand: commandArray(env, v('REPOINT_COMMAND')),
    replication: replicationUser ? { user: replicationUser, password: optional(env, v('REPLICATION_PASSWORD')) } : undefined,
    policy,
    walArchive: loadWalArchive(env, name),
  };
}

function loadWalArchive(env: Env, cluster: string): WalArchiveConfig {
  const variable = clusterVariable(cluster, 'WAL_ARCHIVE');
  const mode = optional(env, variable) ?? 'async';
  if (mode !== 'off' && mode !== 'async' && mode !== 'sync') {
    throw new ConfigError(`${variable}=${mode} must be off, async or sync (sync also needs the archiver in synchronous_standby_names, see docs/wal-archive.md)`);
  }
  return { mode };
}

function loadWalSpoolDir(env: Env): string {
  const dir = optional(env, 'PGOPS_WAL_SPOOL_DIR') ?? '/var/lib/pgops/wal-spool';
  if (!dir.startsWith('/')) throw new ConfigError(`PGOPS_WAL_SPOOL_DIR=${dir} must be an absolute path`);
  return dir.replace(/\/+$/, '');
}

function loadClusters(env: Env, targets: Record<string, TargetConfig>): Record<string, ClusterConfig> {
  const clusters: Record<string, ClusterConfig> = {};
  for (const name of (optional(env, 'PGOPS_CLUSTERS') ?? '').split(',').map((n) => n.trim()).filter(Boolean)) {
    if (!NAME_PATTERN.test(name)) throw new ConfigError(`PGOPS_CLUSTERS: "${name}" is not a valid cluster name (lowercase letters, digits, _ and -)`);
    // Backups of a cluster role ("main:primary") are catalogued under the cluster's name.
    if (targets[name]) throw new ConfigError(`PGOPS_CLUSTERS: "${name}" is also a target's name; a cluster's backup catalog would mix with that target's`);
    clusters[name] = loadCluster(env, name, targets);
  }
  return clusters;
}

function loadVerifyTarget(env: Env, targets: Record<string, TargetConfig>): string | undefined {
  const name = optional(env, 'PGOPS_VERIFY_TARGET');
  if (name !== undefined && !targets[name]) {
    throw new ConfigError(`PGOPS_VERIFY_TARGET: "${name}" is not a configured target (PGOPS_TARGETS: ${Object.keys(targets).join(', ')})`);
  }
  return name;
}

/** `host:port` (IPv6 in brackets) or `off`; loopback unless the operator says otherwise. */
function listenAddress(env: Env, name: string, fallback: string): ListenAddress | undefined {
  const value = optional(env, name) ?? fallback;
  if (/^off$/i.test(value)) return undefined;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(
      `${name}=${value} is not an address to listen on: use host:port (${fallback} by default; 0.0.0.0:${fallback.split(':')[1]} inside a container whose port is published) or off`,
    );
  }
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
}

function loadMetrics(env: Env): MetricsConfig {
  const listen = listenAddress(env, 'PGOPS_METRICS_ADDRESS', '127.0.0.1:9464');
  const temporalListen = listenAddress(env, 'PGOPS_TEMPORAL_METRICS_ADDRESS', '127.0.0.1:9465');
  if (listen && temporalListen && listen.port === temporalListen.port) {
    throw new ConfigError(`PGOPS_METRICS_ADDRESS and PGOPS_TEMPORAL_METRICS_ADDRESS both use port ${listen.port}: give the Temporal SDK's metrics a port of their own`);
  }
  return { listen, temporalListen };
}

/**
 * The master keys, from PGOPS_ENCRYPTION_KEYS ("id:base64,id:base64") or the file named by
 * PGOPS_ENCRYPTION_KEYS_FILE (one "id base64" a line, # comments; readable by this user only).
 * PGOPS_ENCRYPTION_KEY_ID names the current key (optional with a single key); the others are
 * retired: they open older backups and never encrypt new ones. No keys: undefined.
 */
export function loadKeyRing(env: Env = environment()): KeyRing | undefined {
  const inline = optional(env, 'PGOPS_ENCRYPTION_KEYS');
  const file = optional(env, 'PGOPS_ENCRYPTION_KEYS_FILE');
  const currentId = optional(env, 'PGOPS_ENCRYPTION_KEY_ID');
  if (inline !== undefined && file !== undefined) throw new ConfigError('PGOPS_ENCRYPTION_KEYS and PGOPS_ENCRYPTION_KEYS_FILE are both set; use one');
  if (inline === undefined && file === undefined) {
    if (currentId !== undefined) throw new ConfigError(`PGOPS_ENCRYPTION_KEY_ID=${currentId} is set but no keys are (PGOPS_ENCRYPTION_KEYS or PGOPS_ENCRYPTION_KEYS_FILE)`);
    return undefined;
  }
  const where = inline !== undefined ? 'PGOPS_ENCRYPTION_KEYS' : `PGOPS_ENCRYPTION_KEYS_FILE=${file}`;
  let keys: Map<string, Buffer>;
  try {
    keys = parseKeyList(inline ?? readKeysFile(file!), where);
  } catch (err) {
    throw err instanceof ConfigError ? err : new ConfigError((err as Error).message);
  }
  if (keys.size === 0) throw new ConfigError(`${where} holds no keys`);
  if (currentId === undefined && keys.size > 1) {
    throw new ConfigError(`${where} holds ${keys.size} keys (${[...keys.keys()].join(', ')}); set PGOPS_ENCRYPTION_KEY_ID to the one new backups use`);
  }
  const current = currentId ?? [...keys.keys()][0];
  if (!keys.has(current)) throw new ConfigError(`PGOPS_ENCRYPTION_KEY_ID=${current} is not among the keys in ${where} (${[...keys.keys()].join(', ')})`);
  return new KeyRing(keys, current);
}

/** Master keys are the backups' confidentiality: a file another user could read is refused. */
function readKeysFile(file: string): string {
  if (!file.startsWith('/')) throw new ConfigError(`PGOPS_ENCRYPTION_KEYS_FILE=${file} must be an absolute path`);
  let stat;
  try {
    stat = statSync(file);
  } catch (err) {
    throw new ConfigError(`PGOPS_ENCRYPTION_KEYS_FILE=${file} cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  const me = process.getuid?.();
  if ((stat.mode & 0o077) !== 0 || (me !== undefined && stat.uid !== me)) {
    throw new ConfigError(
      `PGOPS_ENCRYPTION_KEYS_FILE=${file} has mode ${(stat.mode & 0o777).toString(8)} and owner uid ${stat.uid}; it must belong to this worker's user and be readable by it alone (chmod 600)`,
    );
  }
  return readFileSync(file, 'utf8');
}

export function loadWorkerConfig(env: Env = environment()): WorkerConfig {
  const pgBinDir = required(env, 'PGOPS_PG_BIN_DIR', 'directory of pg_dump/pg_restore/psql matching the servers\' major version');
  if (!existsSync(`${pgBinDir}/pg_dump`)) {
    throw new ConfigError(`PGOPS_PG_BIN_DIR=${pgBinDir} has no pg_dump in it`);
  }
  const targets = loadTargets(env);
  return {
    temporal: loadTemporalConfig(env),
    pgBinDir,
    targets,
    s3: loadS3(env),
    stagingDir: optional(env, 'PGOPS_STAGING_DIR') ?? '/var/tmp/pgops-staging',
    shutdownGraceTime: optional(env, 'PGOPS_WORKER_SHUTDOWN_GRACE') ?? '15 minutes',
    notifyWebhookUrl: loadWebhookUrl(env),
    openai: loadOpenAi(env),
    restore: loadRestorePolicy(env),
    clusters: loadClusters(env, targets),
    verifyTarget: loadVerifyTarget(env, targets),
    walSpoolDir: loadWalSpoolDir(env),
    metrics: loadMetrics(env),
    encryption: loadKeyRing(env),
  };
}
