// docker-compose.yml cannot run here (no Docker engine), so check what can be checked: it parses,
// and the worker's environment in it is one the worker's config loader accepts and fully reads.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import execa from 'execa';
import { parse } from 'yaml';
import { loadWorkerConfig, type Env } from '../src/shared/config';
import { promtoolPath } from './support/promtool';
import { REPO_DIR, stackConfig } from './support/stack';

type Service = { environment?: Record<string, string>; depends_on?: Record<string, unknown>; stop_grace_period?: string };

/** Resolves compose's ${VAR:-default} the way compose does when VAR is unset. */
function withDefaults(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');
}

const compose = parse(readFileSync(path.join(REPO_DIR, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service & { volumes?: string[]; configs?: { source: string; target: string }[] }>;
  configs: Record<string, { content: string }>;
};

describe('docker-compose.yml', () => {
  const services = compose.services;
  const workerEnv = Object.fromEntries(
    Object.entries(services['pgops-worker'].environment ?? {}).map(([k, v]) => [k, withDefaults(String(v))]),
  );

  test('has every service of the production-like deployment', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'create-bucket',
        'csarena-db',
        'csarena-standby',
        'csarena-verify',
        'failover-watcher',
        'grafana',
        'minio',
        'pgops-worker',
        'prometheus',
        'temporal',
        'temporal-db',
        'temporal-ui',
        'wal-archiver',
      ].sort(),
    );
  });

  test("the worker's environment is valid, and every PGOPS_ variable in it is one the worker reads", () => {
    const read = new Set<string>();
    // The image's own ENV supplies the bin dir; here the local stack's stands in for it.
    const env = new Proxy<Env>({ ...workerEnv, PGOPS_PG_BIN_DIR: stackConfig().pgBinDir }, {
      get(target, key: string) {
        read.add(key);
        return target[key];
      },
    });
    const config = loadWorkerConfig(env);
    expect(config.targets.primary).toMatchObject({ host: 'csarena-db', database: 'csarena' });
    expect(config.clusters.main).toMatchObject({ primary: 'primary', standbys: ['standby'] });
    expect(config.verifyTarget).toBe('verify');
    expect(config.targets.verify).toMatchObject({ host: 'csarena-verify' });
    expect(Object.keys(workerEnv).filter((k) => k.startsWith('PGOPS_') && !read.has(k))).toEqual([]);
  });

  test('the watcher is started for the cluster the worker knows, on the task queue it polls', () => {
    const watcher = services['failover-watcher'] as Service & { command: string[] };
    expect(watcher.command.slice(-4)).toEqual(['failover', 'watch', '--cluster', 'main']);
    expect(watcher.environment?.PGOPS_TASK_QUEUE).toBe(workerEnv.PGOPS_TASK_QUEUE);
    expect(workerEnv.PGOPS_CLUSTERS.split(',')).toContain('main');
  });

  test('the worker, MinIO and the database agree on credentials', () => {
    const minio = services.minio.environment ?? {};
    expect(workerEnv.PGOPS_S3_ACCESS_KEY_ID).toBe(withDefaults(minio.MINIO_ROOT_USER));
    expect(workerEnv.PGOPS_S3_SECRET_ACCESS_KEY).toBe(withDefaults(minio.MINIO_ROOT_PASSWORD));
    const dbPassword = withDefaults(services['csarena-db'].environment?.POSTGRES_PASSWORD ?? '');
    expect(new URL(workerEnv.PGOPS_TARGET_PRIMARY_URL).password).toBe(dbPassword);
  });

  test('Prometheus scrapes both metrics endpoints where the worker binds them, with the shipped rules; Grafana gets the dashboard', async () => {
    const config = loadWorkerConfig({ ...workerEnv, PGOPS_PG_BIN_DIR: stackConfig().pgBinDir });
    // Inside its container the worker must listen beyond loopback for Prometheus' container to reach it.
    expect(config.metrics.listen).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(config.metrics.temporalListen).toEqual({ host: '0.0.0.0', port: 9465 });
    const prometheusConfig = compose.configs['prometheus-config'].content;
    const scrape = parse(prometheusConfig) as { rule_files: string[]; scrape_configs: { static_configs: { targets: string[] }[] }[] };
    expect(scrape.scrape_configs.flatMap((j) => j.static_configs.flatMap((c) => c.targets)).sort()).toEqual(['pgops-worker:9464', 'pgops-worker:9465']);
    const mounts = compose.services.prometheus.volumes ?? [];
    const rulesMount = mounts.find((v) => v.startsWith('./ops/prometheus/pgops-alerts.yml:'))!;
    expect(scrape.rule_files).toEqual([rulesMount.split(':')[1]]);
    expect(compose.services.grafana.volumes).toContain('./ops/grafana/pgops.json:/var/lib/grafana/dashboards/pgops.json:ro');

    // promtool checks the configuration as Prometheus would load it, with the rules file in place.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgops-prometheus-'));
    try {
      writeFileSync(path.join(dir, 'prometheus.yml'), prometheusConfig.replace(scrape.rule_files[0], path.join(REPO_DIR, 'ops/prometheus/pgops-alerts.yml')));
      const check = await execa(promtoolPath(), ['check', 'config', 'prometheus.yml'], { cwd: dir, reject: false, all: true });
      expect(check.all).toContain('SUCCESS');
      expect(check.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
