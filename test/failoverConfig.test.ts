// A failover cluster's configuration: every mistake is one line naming the variable, and the
// default repoint hook's PgBouncer rewrite touches only the [databases] targets.
import { repointPgbouncerIni } from '../src/failover/activities/repoint';
import { ConfigError, loadWorkerConfig } from '../src/shared/config';
import { stackEnv } from './support/stack';

const CLUSTER = {
  PGOPS_TARGETS: 'primary,standby',
  PGOPS_VERIFY_TARGET: '',
  PGOPS_CLUSTERS: 'main',
  PGOPS_CLUSTER_MAIN_PRIMARY: 'primary',
  PGOPS_CLUSTER_MAIN_STANDBYS: 'standby',
};

function load(changes: Record<string, string | undefined>) {
  const env: Record<string, string | undefined> = { ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', ...CLUSTER, ...changes };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return loadWorkerConfig(env);
}

describe('failover cluster configuration', () => {
  test('defaults: 6 s window, 1 s probes, 1 MiB lag, automatic approval, fencing required', () => {
    expect(load({}).clusters.main).toMatchObject({
      primary: 'primary',
      standbys: ['standby'],
      policy: {
        confirmWindowMs: 6_000,
        probeIntervalMs: 1_000,
        probeTimeoutMs: 1_000,
        maxLagBytes: 1_048_576,
        replayCatchUpMs: 10_000,
        approval: 'automatic',
        approvalTimeoutMs: 3_600_000,
        fencingRequired: true,
      },
    });
  });

  test.each([
    [{ PGOPS_CLUSTER_MAIN_PRIMARY: 'nope' }, 'PGOPS_CLUSTER_MAIN_PRIMARY: "nope" is not a configured target (PGOPS_TARGETS: primary, standby)'],
    [{ PGOPS_CLUSTER_MAIN_STANDBYS: 'standby,primary' }, 'PGOPS_CLUSTER_MAIN_STANDBYS lists the primary "primary" itself'],
    [{ PGOPS_CLUSTER_MAIN_STANDBYS: undefined }, `PGOPS_CLUSTER_MAIN_STANDBYS is not set: comma-separated targets that stream from cluster "main"'s primary`],
    [{ PGOPS_CLUSTER_MAIN_CONFIRM_WINDOW: 'soon' }, 'PGOPS_CLUSTER_MAIN_CONFIRM_WINDOW=soon is not a duration such as "6s" or "1 minute"'],
    [{ PGOPS_CLUSTER_MAIN_PROBE_INTERVAL: '10s' }, 'PGOPS_CLUSTER_MAIN_PROBE_INTERVAL is longer than PGOPS_CLUSTER_MAIN_CONFIRM_WINDOW: the window would hold a single probe'],
    [{ PGOPS_CLUSTER_MAIN_MAX_LAG_BYTES: '1MB' }, 'PGOPS_CLUSTER_MAIN_MAX_LAG_BYTES=1MB is not a whole number of bytes'],
    [{ PGOPS_CLUSTER_MAIN_APPROVAL: 'sometimes' }, 'PGOPS_CLUSTER_MAIN_APPROVAL=sometimes must be automatic or manual'],
    [
      { PGOPS_CLUSTER_MAIN_FENCE_COMMAND: '/usr/local/bin/fence {old_host}' },
      'PGOPS_CLUSTER_MAIN_FENCE_COMMAND must be a JSON array of arguments, e.g. ["/usr/local/bin/fence","{old_host}"] (no shell strings)',
    ],
    [
      { PGOPS_CLUSTER_MAIN_PGBOUNCER_INI: '/etc/pgbouncer/pgbouncer.ini', PGOPS_CLUSTER_MAIN_ENDPOINT_URL: undefined },
      "PGOPS_CLUSTER_MAIN_PGBOUNCER_INI is set but PGOPS_CLUSTER_MAIN_ENDPOINT_URL is not: PgBouncer's admin console is reached at the endpoint's address with its credentials",
    ],
    [{ PGOPS_CLUSTERS: 'Main' }, 'PGOPS_CLUSTERS: "Main" is not a valid cluster name (lowercase letters, digits, _ and -)'],
    [{ PGOPS_TARGET_PRIMARY_OS_USER: 'pgops', PGOPS_TARGET_PRIMARY_DATA_DIR: undefined }, "PGOPS_TARGET_PRIMARY_OS_USER is set but PGOPS_TARGET_PRIMARY_DATA_DIR is not: name the server's data directory"],
    [{ PGOPS_TARGET_PRIMARY_DATA_DIR: 'data/primary' }, 'PGOPS_TARGET_PRIMARY_DATA_DIR=data/primary must be an absolute path'],
  ])('%j is refused with one line', (changes, message) => {
    expect(() => load(changes)).toThrow(new ConfigError(message));
  });

  test('hooks are argument arrays; the endpoint and replication role come from their own variables', () => {
    const cluster = load({
      PGOPS_CLUSTER_MAIN_FENCE_COMMAND: '["/usr/local/bin/fence","--host","{old_host}"]',
      PGOPS_CLUSTER_MAIN_ENDPOINT_URL: 'postgres://app:s3cret@127.0.0.1:6432/csarena',
      PGOPS_CLUSTER_MAIN_REPLICATION_USER: 'streamer',
      PGOPS_CLUSTER_MAIN_REPLICATION_PASSWORD: 'replication-secret',
    }).clusters.main;
    expect(cluster.fenceCommand).toEqual(['/usr/local/bin/fence', '--host', '{old_host}']);
    expect(cluster.endpoint).toMatchObject({ host: '127.0.0.1', port: 6432, user: 'app', password: 's3cret', source: 'PGOPS_CLUSTER_MAIN_ENDPOINT_URL' });
    expect(cluster.replication).toEqual({ user: 'streamer', password: 'replication-secret' });
  });
});

describe('PgBouncer repoint', () => {
  const ini = [
    '[databases]',
    'csarena = host=127.0.0.1 port=55432 dbname=csarena',
    '; reports = host=10.0.0.9 port=5432',
    'postgres = host=127.0.0.1 port=55432 dbname=postgres',
    'analytics = host=10.0.0.7 port=55432 dbname=analytics',
    'legacy = host=127.0.0.1 dbname=legacy',
    '',
    '[pgbouncer]',
    'listen_port = 55439',
    'admin_users = postgres',
  ].join('\n');
  const oldPrimary = { host: '127.0.0.1', port: 55432 };
  const newPrimary = { host: '10.0.0.2', port: 5433 };

  test("the old primary's [databases] entries point at the new primary; other servers' entries, comments and other sections are kept", () => {
    expect(repointPgbouncerIni(ini, oldPrimary, newPrimary).split('\n')).toEqual([
      '[databases]',
      'csarena = host=10.0.0.2 port=5433 dbname=csarena',
      '; reports = host=10.0.0.9 port=5432',
      'postgres = host=10.0.0.2 port=5433 dbname=postgres',
      'analytics = host=10.0.0.7 port=55432 dbname=analytics',
      'legacy = host=127.0.0.1 dbname=legacy',
      '',
      '[pgbouncer]',
      'listen_port = 55439',
      'admin_users = postgres',
    ]);
  });

  test('repointing twice changes nothing more', () => {
    const once = repointPgbouncerIni(ini, oldPrimary, newPrimary);
    expect(repointPgbouncerIni(once, oldPrimary, newPrimary)).toBe(once);
  });

  test('an entry without a port is taken as PgBouncer takes it, port 5432', () => {
    const ini = '[databases]\nlegacy = host=127.0.0.1 dbname=legacy\n';
    expect(repointPgbouncerIni(ini, { host: '127.0.0.1', port: 5432 }, newPrimary)).toBe('[databases]\nlegacy = host=10.0.0.2 dbname=legacy port=5433\n');
  });
});
