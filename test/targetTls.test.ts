// Targets over TLS, as the production layout reaches a database on another server: a TLS-only
// PostgreSQL on loopback (hostssl only, a CA of its own made with openssl), reached by the pg
// client and by the client tools with libpq's sslmode/sslrootcert/sslcert/sslkey from the URL.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import execa from 'execa';
import { withTarget } from '../src/shared/postgres/connection';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { ConfigError, loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../src/shared/config';
import { REPO_DIR, stackEnv } from './support/stack';

jest.setTimeout(120_000);

const PORT = 26175;
const SERVER_OS_USER = 'pgops';
const DATA_ROOT = `/var/lib/pgops/test-tls-${process.pid}`;
const DATA_DIR = `${DATA_ROOT}/data`;
const APP_PASSWORD = 'tls-test-password';
/**
 * The PostgreSQL that scripts/stack installs (pinned in stack-lib.sh, built with OpenSSL), for the
 * server and the client tools alike: a stack started from an older checkout may name a build
 * without TLS in PGOPS_PG_BIN_DIR.
 */
const pgBin = execa.sync('bash', ['-c', 'source scripts/stack-lib.sh && printf %s "$PG_BIN"'], { cwd: REPO_DIR, env: { REPO_DIR } }).stdout;
/** Root-owned: the CA files and the client's key, as a worker keeps them. */
let certs: string;

async function openssl(args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: certs });
}

/** A CA, a server certificate for 127.0.0.1 only, a client certificate for "postgres", and a CA that signed none of them. */
async function makeCertificates(): Promise<void> {
  for (const ca of ['ca', 'other-ca']) {
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=pgops test ${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.crt`]);
  }
  writeFileSync(path.join(certs, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  const signed = async (name: string, subject: string, extensions: string[]) => {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, ...extensions]);
  };
  await signed('server', '/CN=127.0.0.1', ['-extfile', 'server.ext']);
  await signed('client', '/CN=postgres', []);
}

async function asServerUser(program: string, args: string[]): Promise<void> {
  await execa('runuser', ['-u', SERVER_OS_USER, '--', path.join(pgBin, program), ...args]);
}

/** initdb, the server's certificate and key owned by the server's OS user, hostssl only over TCP. */
async function startTlsOnlyServer(): Promise<void> {
  mkdirSync(DATA_ROOT, { recursive: true });
  await execa('chown', [SERVER_OS_USER, DATA_ROOT]);
  await asServerUser('initdb', ['-D', DATA_DIR, '-U', 'postgres', '--auth=trust', '--no-locale', '--no-sync']);
  for (const file of ['server.crt', 'server.key', 'ca.crt']) {
    await execa('install', ['-o', SERVER_OS_USER, '-m', '0600', path.join(certs, file), path.join(DATA_DIR, file)]);
  }
  writeFileSync(
    path.join(DATA_DIR, 'pg_hba.conf'),
    // The socket (in the data directory, for setup) stays local; every TCP connection must be TLS.
    ['local all all trust', 'hostssl all postgres 127.0.0.1/32 cert', 'hostssl all app 127.0.0.1/32 scram-sha-256', ''].join('\n'),
  );
  writeFileSync(
    path.join(DATA_DIR, 'postgresql.auto.conf'),
    [`port = ${PORT}`, `listen_addresses = '127.0.0.1'`, `unix_socket_directories = '${DATA_DIR}'`, 'ssl = on', `ssl_ca_file = 'ca.crt'`, 'shared_buffers = 16MB', ''].join('\n'),
  );
  await asServerUser('pg_ctl', ['-D', DATA_DIR, '-l', `${DATA_ROOT}/server.log`, '-w', 'start']);
  await asServerUser('psql', ['-h', DATA_DIR, '-p', String(PORT), '-U', 'postgres', '-d', 'postgres', '-Xqc', `CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}'`]);
}

beforeAll(async () => {
  certs = mkdtempSync(path.join(tmpdir(), 'pgops-tls-'));
  await makeCertificates();
  await startTlsOnlyServer();
});

afterAll(async () => {
  await asServerUser('pg_ctl', ['-D', DATA_DIR, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
  rmSync(DATA_ROOT, { recursive: true, force: true });
  if (certs) rmSync(certs, { recursive: true, force: true });
});

function workerConfig(url: string): WorkerConfig {
  return loadWorkerConfig({ ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', PGOPS_PG_BIN_DIR: pgBin, PGOPS_TARGETS: 'remote', PGOPS_TARGET_REMOTE_URL: url, PGOPS_CLUSTERS: '', PGOPS_VERIFY_TARGET: '' });
}

function target(query: string, user = `app:${APP_PASSWORD}`): { config: WorkerConfig; target: TargetConfig } {
  const config = workerConfig(`postgres://${user}@127.0.0.1:${PORT}/postgres?${query}`);
  return { config, target: config.targets.remote };
}

const SSL_OF_SESSION = 'SELECT ssl, coalesce(client_dn, \'\') AS client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

async function sessionSsl(t: TargetConfig): Promise<{ ssl: boolean; client_dn: string }> {
  return withTarget(t, async (client) => (await client.query<{ ssl: boolean; client_dn: string }>(SSL_OF_SESSION)).rows[0]);
}

async function psqlSsl(config: WorkerConfig, t: TargetConfig): Promise<string> {
  return (await runPgTool(config, 'psql', ['-XAt', '-F', ' ', '-c', SSL_OF_SESSION], t)).stdout.trim();
}

describe('targets over TLS (a TLS-only PostgreSQL on 127.0.0.1)', () => {
  const rootCert = () => `sslrootcert=${certs}/ca.crt`;

  test('without sslmode the server refuses the connection, and the error says how to ask for TLS', async () => {
    const { target: plain } = target('');
    await expect(sessionSsl(plain)).rejects.toThrow(/^target remote: 127\.0\.0\.1:26175 accepts only TLS connections; add \?sslmode=verify-full/);
  });

  test('sslmode=verify-full with sslrootcert: the pg client and psql both connect over verified TLS', async () => {
    const { config, target: t } = target(`sslmode=verify-full&${rootCert()}`);
    expect(t.tls).toEqual({ mode: 'verify-full', rootCert: `${certs}/ca.crt` });
    expect(await sessionSsl(t)).toEqual({ ssl: true, client_dn: '' });
    expect(await psqlSsl(config, t)).toBe('t');
  });

  test('sslcert and sslkey: certificate authentication for the pg client and psql', async () => {
    const { config, target: t } = target(`sslmode=verify-full&${rootCert()}&sslcert=${certs}/client.crt&sslkey=${certs}/client.key`, 'postgres');
    expect(await sessionSsl(t)).toEqual({ ssl: true, client_dn: '/CN=postgres' });
    expect(await psqlSsl(config, t)).toBe('t /CN=postgres');
  });

  test('a certificate the given root did not sign is refused, by the pg client and by psql', async () => {
    const { config, target: t } = target(`sslmode=verify-ca&sslrootcert=${certs}/other-ca.crt`);
    await expect(sessionSsl(t)).rejects.toThrow(/^target remote: the certificate of 127\.0\.0\.1:26175 does not verify/);
    await expect(psqlSsl(config, t)).rejects.toThrow(/certificate verify failed/);
  });

  test('sslmode=require encrypts without verifying, as libpq does', async () => {
    const { config, target: t } = target('sslmode=require');
    expect(await sessionSsl(t)).toEqual({ ssl: true, client_dn: '' });
    expect(await psqlSsl(config, t)).toBe('t');
  });

  test.each([
    ['sslmode=prefer', /sslmode=prefer is not supported: use disable, require, verify-ca, verify-full/],
    ['sslmode=verify-full', /sslmode=verify-full needs sslrootcert=<CA file>/],
    ['sslmode=require&sslrootcert=ca.crt', /ca\.crt must be an absolute path/],
    ['target_session_attrs=read-write', /URL parameter "target_session_attrs" is not supported/],
  ])('%s is refused with one line naming the variable', (query, why) => {
    expect(() => target(query)).toThrow(ConfigError);
    expect(() => target(query)).toThrow(new RegExp(`^PGOPS_TARGET_REMOTE_URL: ${why.source}`));
  });
});
