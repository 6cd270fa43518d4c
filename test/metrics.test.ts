// The worker's Prometheus metrics against the real stack: what an operator's alerts rely on.
// Backups run on a tiny database of their own, under a private S3 prefix and target names no
// other test uses; replication is watched on an isolated replica cluster (ports 26260-26262).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Registry } from 'prom-client';
import { decideRestore, restoreStatus, startBackup, startRestore } from '../src/client';
import { createMetricsRegistry } from '../src/metrics';
import { ConfigError, loadWorkerConfig, type WorkerConfig } from '../src/shared/config';
import { connectTarget } from '../src/shared/postgres/connection';
import { appendAuditRecord } from '../src/shared/storage/auditLog';
import { connectClient } from '../src/shared/temporal/connection';
import { deletePrefix, targetUrl } from './support/backupFixture';
import { createReplicaCluster, type ReplicaCluster } from './support/replicaCluster';
import { stackConfig, stackEnv, withWorker } from './support/stack';
import { startWorkerProcess, waitUntil } from './support/workerProcess';
import execa from 'execa';
import { REPO_DIR } from './support/stack';

const id = randomUUID().replace(/-/g, '').slice(0, 8);
const database = `pgops_metrics_${id}`;
const target = `metrics-${id}`;
const failingTarget = `metrics-fail-${id}`;
const prefix = `test-metrics-${id}`;
let stagingDir: string;
let config: WorkerConfig;

function variable(name: string): string {
  return `PGOPS_TARGET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
}

beforeAll(async () => {
  const base = stackConfig();
  const admin = await connectTarget(base.targets.primary);
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const db = await connectTarget({ ...base.targets.primary, database });
  await db.query('CREATE TABLE players AS SELECT g AS id, md5(g::text) AS name FROM generate_series(1, 1000) g');
  await db.end();
  stagingDir = mkdtempSync(path.join(os.tmpdir(), 'pgops-metrics-'));
  config = loadWorkerConfig({
    ...stackEnv(),
    PGOPS_TARGETS: `primary,standby,verify,${target},${failingTarget}`,
    [variable(target)]: targetUrl({ ...base.targets.primary, database }),
    [variable(failingTarget)]: targetUrl({ ...base.targets.primary, database: `${database}_missing` }),
    PGOPS_S3_PREFIX: `${prefix}/backups`,
    PGOPS_STAGING_DIR: stagingDir,
  });
}, 60_000);

afterAll(async () => {
  if (config) await deletePrefix(config, `${prefix}/`);
  if (stagingDir) rmSync(stagingDir, { recursive: true, force: true });
  const admin = await connectTarget(stackConfig().targets.primary);
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.query(`DROP DATABASE IF EXISTS ${database}_copy WITH (FORCE)`);
  await admin.end();
});

/** The samples of one metric, collected now (every collect reads its source: no cache in tests). */
async function samples(registry: Registry, name: string): Promise<{ labels: Partial<Record<string, string | number>>; value: number }[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values;
}

async function sample(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  return (await samples(registry, name)).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function metricsFor(workerConfig: WorkerConfig, client: Client, taskQueue: string): Registry {
  return createMetricsRegistry(workerConfig, client, { taskQueue, cacheMs: 0 });
}

describe('backups', () => {
  test('after a backup the last-success gauge is its end, verified, with its size and duration; after a failed one its failure time shows; a restore of it waiting for approval shows since when', async () => {
    await withWorker(config, async ({ client, taskQueue }) => {
      const registry = metricsFor(config, client, taskQueue);
      expect(await sample(registry, 'pgops_backup_last_success_timestamp_seconds', { target })).toBeUndefined();

      const handle = await startBackup(client, { taskQueue }, { target });
      const { manifest } = await handle.result();
      const closedAt = (await handle.describe()).closeTime!.getTime() / 1000;
      const lastSuccess = await sample(registry, 'pgops_backup_last_success_timestamp_seconds', { target, kind: 'logical' });
      expect(lastSuccess).toBe(Date.parse(manifest.finishedAt) / 1000);
      // The manifest's end is the dump's; verification and upload follow within seconds.
      expect(closedAt - lastSuccess!).toBeGreaterThanOrEqual(0);
      expect(closedAt - lastSuccess!).toBeLessThan(30);
      expect(await sample(registry, 'pgops_backup_last_success_verified', { target, kind: 'logical' })).toBe(1);
      expect(await sample(registry, 'pgops_backup_last_verified_success_timestamp_seconds', { target, kind: 'logical' })).toBe(lastSuccess);
      expect(await sample(registry, 'pgops_backup_last_success_size_bytes', { target, kind: 'logical' })).toBe(manifest.sizeBytes);
      expect(await sample(registry, 'pgops_backup_last_success_duration_seconds', { target, kind: 'logical' })).toBeCloseTo(
        (Date.parse(manifest.finishedAt) - Date.parse(manifest.startedAt)) / 1000,
        3,
      );

      const failing = await startBackup(client, { taskQueue }, { target: failingTarget });
      await expect(failing.result()).rejects.toThrow();
      const failedAt = (await failing.describe()).closeTime!.getTime() / 1000;
      // Visibility is eventually consistent: the run shows in a list within a second or so.
      let lastFailure: number | undefined;
      await waitUntil('the failed backup in visibility', async () => {
        lastFailure = await sample(registry, 'pgops_backup_last_failure_timestamp_seconds', { target: failingTarget });
        return lastFailure !== undefined;
      }, 15_000);
      expect(Math.abs(lastFailure! - failedAt)).toBeLessThan(1);
      expect(await sample(registry, 'pgops_backup_last_failure_timestamp_seconds', { target })).toBeUndefined();
      expect(await sample(registry, 'pgops_metrics_source_up', { source: 'catalog:logical' })).toBe(1);
      expect(await sample(registry, 'pgops_metrics_source_up', { source: 'temporal:backup-failures' })).toBe(1);

      const staging = await sample(registry, 'pgops_disk_free_ratio', { dir: 'staging', path: stagingDir });
      expect(staging).toBeGreaterThan(0);
      expect(staging).toBeLessThanOrEqual(1);
      expect(await sample(registry, 'pgops_disk_free_bytes', { dir: 'data', target: 'primary' })).toBeGreaterThan(0);

      // A restore of that backup waiting at its approval gate, and how long it has waited.
      expect(await sample(registry, 'pgops_approvals_waiting', { workflow: 'guardedRestore' })).toBe(0);
      const restore = await startRestore(client, { taskQueue }, { backup: manifest.backupId, target, mode: 'new-database', newDatabase: `${database}_copy`, requestedBy: 'alice' });
      await waitUntil('the restore to wait for approval', async () => (await restoreStatus(client, restore.workflowId)).stage === 'awaiting-approval', 30_000);
      const waitingSince = Date.parse((await restoreStatus(client, restore.workflowId)).awaitingApprovalSince!) / 1000;
      expect(await sample(registry, 'pgops_approvals_waiting', { workflow: 'guardedRestore' })).toBe(1);
      expect(await sample(registry, 'pgops_approval_waiting_since_timestamp_seconds', { workflow_id: restore.workflowId, target, waiting_for: 'approval' })).toBe(waitingSince);
      expect(Date.now() / 1000 - waitingSince).toBeLessThan(30);
      await decideRestore(client, restore.workflowId, 'reject', { approver: 'bob', reason: 'only a metrics test' });
      await restore.result();
      expect(await sample(registry, 'pgops_approvals_waiting', { workflow: 'guardedRestore' })).toBe(0);
    });
  });
});

describe('restores, failovers and restore drills, from the audit trail', () => {
  test('counts by outcome, the last outcome and its downtime, the same from any worker', async () => {
    // A target of these records alone: the backups test's rejected restore is in the same trail.
    const target = `audited-${id}`;
    const audit = (n: number, outcome: string, downtimeMs?: number) =>
      appendAuditRecord(config, 'restores', `restore-${n}/run`, { workflowId: `restore-${n}`, target, outcome, finishedAt: `2026-11-0${n}T03:00:00.000Z`, downtimeMs }, `2026-11-0${n}T03:00:00.000Z`);
    await audit(1, 'restored', 7);
    await audit(2, 'failed');
    await audit(3, 'restored', 12);
    await audit(3, 'restored', 12); // a retried activity appends once
    const steps = [
      { step: 'confirm failure', startedAt: '2026-11-04T03:00:00.000Z', ms: 4000, outcome: 'ok' },
      { step: 'promote', startedAt: '2026-11-04T03:00:04.500Z', ms: 300, outcome: 'ok' },
      { step: 'repoint clients', startedAt: '2026-11-04T03:00:05.000Z', ms: 200, outcome: 'pgbouncer' },
    ];
    const drill = (n: number, ok: boolean) =>
      appendAuditRecord(config, 'drills', `drill-${n}/run`, { workflowId: `drill-${n}`, cluster: `c-${id}`, ok, checks: [{ name: 'amcheck', ok, detail: '' }], finishedAt: `2026-11-0${n}T05:00:00.000Z` }, `2026-11-0${n}T05:00:00.000Z`);
    await drill(1, true);
    await drill(2, false);
    await drill(3, true);
    await drill(4, false);
    await appendAuditRecord(config, 'failovers', 'failover-x/run', { cluster: `c-${id}`, mode: 'failover', outcome: 'promoted', steps, finishedAt: '2026-11-04T03:00:06.000Z' }, '2026-11-04T03:00:06.000Z');

    const client = await connectClient(config.temporal);
    try {
      const registry = metricsFor(config, client, `unused-${id}`);
      expect(await sample(registry, 'pgops_restores_total', { target, outcome: 'restored' })).toBe(2);
      expect(await sample(registry, 'pgops_restores_total', { target, outcome: 'failed' })).toBe(1);
      expect(await sample(registry, 'pgops_restore_last_outcome', { target, outcome: 'restored' })).toBe(1);
      expect(await sample(registry, 'pgops_restore_last_outcome', { target, outcome: 'failed' })).toBe(0);
      expect(await sample(registry, 'pgops_restore_last_downtime_seconds', { target })).toBe(0.012);
      expect(await sample(registry, 'pgops_failovers_total', { cluster: `c-${id}`, mode: 'failover', outcome: 'promoted' })).toBe(1);
      // From confirming the failure to clients repointed: 03:00:00.000 to 03:00:05.200.
      expect(await sample(registry, 'pgops_failover_last_downtime_seconds', { cluster: `c-${id}` })).toBeCloseTo(5.2, 6);
      // The newest passed drill (the 3rd) and the newest failed one (the 4th): the alert rule compares them.
      expect(await sample(registry, 'pgops_restore_drill_last_success_timestamp_seconds', { target: `c-${id}` })).toBe(Date.parse('2026-11-03T05:00:00.000Z') / 1000);
      expect(await sample(registry, 'pgops_restore_drill_last_failure_timestamp_seconds', { target: `c-${id}` })).toBe(Date.parse('2026-11-04T05:00:00.000Z') / 1000);
    } finally {
      await client.connection.close();
    }
  });
});

describe('replication', () => {
  let cluster: ReplicaCluster | undefined;
  afterAll(async () => {
    await cluster?.down();
  });

  test('a streaming standby shows with its lag; stopped, it is not streaming and its slot holds the WAL written since', async () => {
    cluster = await createReplicaCluster('metrics', 26260);
    const clusterConfig = cluster.config('pg1', { PGOPS_S3_PREFIX: `${prefix}/backups`, PGOPS_STAGING_DIR: stagingDir });
    const labels = { cluster: cluster.name, standby: 'pg2' };
    const client = await connectClient(clusterConfig.temporal);
    try {
      const registry = metricsFor(clusterConfig, client, `unused-${id}`);
      expect(await sample(registry, 'pgops_cluster_primary', { cluster: cluster.name, node: 'pg1' })).toBe(1);
      expect(await sample(registry, 'pgops_replication_streaming', labels)).toBe(1);
      expect(await sample(registry, 'pgops_replication_lag_bytes', labels)).toBeGreaterThanOrEqual(0);
      expect(await sample(registry, 'pgops_replication_lag_seconds', labels)).toBeGreaterThanOrEqual(0);
      const slot = { cluster: cluster.name, slot: 'pgops_standby' };
      expect(await sample(registry, 'pgops_replication_slot_active', slot)).toBe(1);

      await cluster.asServerUser('pg_ctl', ['-D', cluster.dataDir.pg2, '-m', 'fast', '-w', 'stop']);
      await cluster.sql('pg1', 'CREATE TABLE metrics_wal AS SELECT g FROM generate_series(1, 100000) g');
      await waitUntil('the standby to show as not streaming', async () => (await sample(registry, 'pgops_replication_streaming', labels)) === 0, 15_000);
      expect(await sample(registry, 'pgops_replication_lag_bytes', labels)).toBeUndefined();
      expect(await sample(registry, 'pgops_replication_slot_active', slot)).toBe(0);
      // 100 000 rows are a few MB of WAL, all kept for the absent standby.
      expect(await sample(registry, 'pgops_replication_slot_retained_bytes', slot)).toBeGreaterThan(1_000_000);
      expect(await sample(registry, 'pgops_metrics_source_up', { source: `replication:${cluster.name}` })).toBe(1);
    } finally {
      await client.connection.close();
    }
  });
});

describe('endpoints', () => {
  test('a bad or taken metrics address is one clear line', async () => {
    const env = stackEnv();
    for (const bad of ['9464', 'localhost', '127.0.0.1:99999', 'http://127.0.0.1:9464']) {
      expect(() => loadWorkerConfig({ ...env, PGOPS_METRICS_ADDRESS: bad })).toThrow(
        new ConfigError(
          `PGOPS_METRICS_ADDRESS=${bad} is not an address to listen on: use host:port (127.0.0.1:9464 by default; 0.0.0.0:9464 inside a container whose port is published) or off`,
        ),
      );
    }
    expect(loadWorkerConfig({ ...env, PGOPS_METRICS_ADDRESS: 'off' }).metrics.listen).toBeUndefined();
    expect(() => loadWorkerConfig({ ...env, PGOPS_METRICS_ADDRESS: '127.0.0.1:9500', PGOPS_TEMPORAL_METRICS_ADDRESS: '127.0.0.1:9500' })).toThrow(/both use port 9500/);
    const worker = await execa(path.join(REPO_DIR, 'bin/pgops'), ['worker'], {
      env: { ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', PGOPS_METRICS_ADDRESS: 'localhost' } as Record<string, string>,
      reject: false,
      timeout: 60_000,
    });
    expect(worker.exitCode).toBe(1);
    expect(worker.stderr.split('\n').filter((l) => l.trim())).toEqual([expect.stringMatching(/^pgops worker: PGOPS_METRICS_ADDRESS=localhost is not an address to listen on/)]);

    // An address already taken: one line too, for either endpoint.
    const taken = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      for (const [name, other] of [
        ['PGOPS_METRICS_ADDRESS', 'PGOPS_TEMPORAL_METRICS_ADDRESS'],
        ['PGOPS_TEMPORAL_METRICS_ADDRESS', 'PGOPS_METRICS_ADDRESS'],
      ]) {
        const busy = await execa(path.join(REPO_DIR, 'bin/pgops'), ['worker'], {
          env: { ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', [name]: `127.0.0.1:${port}`, [other]: 'off' } as Record<string, string>,
          reject: false,
          timeout: 60_000,
        });
        expect(busy.exitCode).toBe(1);
        expect(busy.stderr.split('\n').filter((l) => l.trim())).toEqual([
          expect.stringMatching(new RegExp(`^pgops worker: ${name}=127\\.0\\.0\\.1:${port}: cannot listen there \\(.*\\); choose another host:port, or off$`)),
        ]);
      }
    } finally {
      taken.close();
    }
  });

  test('the worker serves /metrics and the SDK its own metrics, both on loopback only by default', async () => {
    const env = stackEnv();
    delete env.PGOPS_METRICS_ADDRESS;
    delete env.PGOPS_TEMPORAL_METRICS_ADDRESS;
    const worker = await startWorkerProcess({ ...(env as Record<string, string>), PGOPS_TASK_QUEUE: `metrics-${id}` }, { metrics: true });
    try {
      expect(worker.output()).toContain('metrics http://127.0.0.1:9464/metrics, Temporal SDK metrics http://127.0.0.1:9465/metrics');
      const pgops = await fetch('http://127.0.0.1:9464/metrics');
      expect(pgops.status).toBe(200);
      expect(pgops.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await pgops.text()).toMatch(/^pgops_metrics_source_up\{source="catalog:logical"\} 1$/m);
      let sdk = '';
      await waitUntil('the SDK to export its pollers', async () => {
        sdk = await (await fetch('http://127.0.0.1:9465/metrics')).text();
        return sdk.includes(`task_queue="metrics-${id}"`);
      }, 15_000);
      expect(sdk).toMatch(/^temporal_num_pollers\{/m);
      expect(sdk).toMatch(/^temporal_request_latency_seconds_bucket\{/m);
      // Not reachable through any other address of this machine.
      const external = Object.values(os.networkInterfaces())
        .flat()
        .find((i) => i && !i.internal && i.family === 'IPv4');
      for (const port of external ? [9464, 9465] : []) expect(await connects(external!.address, port)).toBe(false);
    } finally {
      await worker.kill('SIGTERM');
    }
    expect(await connects('127.0.0.1', 9464)).toBe(false);
  });
});

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
