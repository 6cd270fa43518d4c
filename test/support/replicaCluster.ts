// An isolated primary + streaming standby + PgBouncer per test file (scripts/replica-cluster), so
// failover tests can kill servers without touching the shared stack's. Nodes are targets pg1
// (first primary) and pg2 (first standby); the cluster's roles are given per worker config.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import execa from 'execa';
import type { Client as PgClient } from 'pg';
import { killServerProcesses, serverProcesses } from '../../src/failover/activities/serverProcesses';
import { connectTarget } from '../../src/shared/postgres/connection';
import { clusterVariable, loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../../src/shared/config';
import type { Client as TemporalClient } from '@temporalio/client';
import { startFailover, startRejoin, startWatcher, watchStatus } from '../../src/client';
import type { RejoinResult } from '../../src/failover/contract';
import { REPO_DIR, stackEnv, withWorker } from './stack';

export type NodeName = 'pg1' | 'pg2';

export interface ReplicaCluster {
  name: string;
  ports: { pg1: number; pg2: number; pgbouncer: number };
  dataDir: Record<NodeName, string>;
  /** Runs a PostgreSQL server program (initdb, pg_ctl, …) as the servers' OS user. */
  asServerUser(program: string, args: string[]): Promise<unknown>;
  /** Worker environment with `primary` as the cluster's primary and the other node its standby. */
  env(primary: NodeName, extra?: Record<string, string>): Record<string, string>;
  config(primary: NodeName, extra?: Record<string, string>): WorkerConfig;
  target(node: NodeName | 'endpoint'): TargetConfig;
  connect(node: NodeName | 'endpoint'): Promise<PgClient>;
  sql<T = Record<string, unknown>>(node: NodeName | 'endpoint', text: string, values?: unknown[]): Promise<T[]>;
  postmasterPid(node: NodeName): number;
  signal(node: NodeName, signal: NodeJS.Signals): void;
  /** Every process of the node's data directory: the postmaster and its children. */
  processes(node: NodeName): number[];
  /** SIGSTOPs the postmaster and every child: a hung server, as a stuck disk or kernel leaves it. */
  freeze(node: NodeName): number[];
  start(node: NodeName): Promise<void>;
  /**
   * rejoinAsStandby of `node` under `newPrimary`, run by a worker whose config has `newPrimary` as
   * the cluster's primary (plus `extra`), as workflow `<workflowIdPrefix>-<uuid>` (default "rejoin").
   */
  rejoin(node: NodeName, newPrimary: NodeName, options?: { extra?: Record<string, string>; workflowIdPrefix?: string }): Promise<RejoinResult>;
  down(): Promise<void>;
}

const PG_DATA_ROOT = '/var/lib/pgops';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A test process killed before its afterAll leaves its cluster running: stop and delete those whose owner is gone. */
async function removeAbandonedClusters(name: string, ports: ReplicaCluster['ports']): Promise<void> {
  const pattern = new RegExp(`^test-${name}-(\\d+)$`);
  for (const dir of existsSync(PG_DATA_ROOT) ? readdirSync(PG_DATA_ROOT) : []) {
    const owner = pattern.exec(dir);
    if (!owner || processAlive(Number(owner[1]))) continue;
    await execa(path.join(REPO_DIR, 'scripts/replica-cluster'), ['down'], {
      env: {
        PGOPS_PG_ROOT: path.join(PG_DATA_ROOT, dir),
        PGOPS_PRIMARY_PORT: String(ports.pg1),
        PGOPS_STANDBY_PORT: String(ports.pg2),
        PGOPS_PGBOUNCER_PORT: String(ports.pgbouncer),
      },
      reject: false,
    });
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Builds the cluster on basePort..basePort+2 (refused if any is taken). Keep them below the
 * kernel's ephemeral range (32768 and up here): a client connection's local port can take one
 * between one test file's cluster and the next. `extraConf` goes into both servers' config.
 */
export async function createReplicaCluster(name: string, basePort: number, extraConf = ''): Promise<ReplicaCluster> {
  const ports = { pg1: basePort, pg2: basePort + 1, pgbouncer: basePort + 2 };
  await removeAbandonedClusters(name, ports);
  for (const port of Object.values(ports)) {
    if (!(await portFree(port))) throw new Error(`port ${port} for test cluster ${name} is taken (a leftover cluster? see /var/lib/pgops/test-*)`);
  }
  const root = `${PG_DATA_ROOT}/test-${name}-${process.pid}`;
  const scriptEnv = {
    PGOPS_PG_ROOT: root,
    PGOPS_PRIMARY_PORT: String(ports.pg1),
    PGOPS_STANDBY_PORT: String(ports.pg2),
    PGOPS_PGBOUNCER_PORT: String(ports.pgbouncer),
    PGOPS_PG_EXTRA_CONF: extraConf,
  };
  const script = path.join(REPO_DIR, 'scripts/replica-cluster');
  const up = await execa(script, ['up'], { env: scriptEnv, reject: false, all: true });
  if (up.exitCode !== 0) {
    await execa(script, ['down'], { env: scriptEnv, reject: false });
    throw new Error(`scripts/replica-cluster up failed:\n${up.all}`);
  }
  const info = Object.fromEntries(
    up.stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const dataDir = { pg1: info.PRIMARY_DIR, pg2: info.STANDBY_DIR };
  const url = (port: number) => `postgres://${info.SUPERUSER}:${info.PASSWORD}@127.0.0.1:${port}/${info.DATABASE}`;
  const v = (setting: string) => clusterVariable(name, setting);

  const env = (primary: NodeName, extra: Record<string, string> = {}): Record<string, string> => ({
    ...(stackEnv() as Record<string, string>),
    PGOPS_TARGETS: 'pg1,pg2',
    // Its own servers only: no verify server (backups of it verify by listing, or on the source).
    PGOPS_VERIFY_TARGET: '',
    PGOPS_TARGET_PG1_URL: url(ports.pg1),
    PGOPS_TARGET_PG1_DATA_DIR: dataDir.pg1,
    PGOPS_TARGET_PG1_OS_USER: info.PG_USER,
    PGOPS_TARGET_PG2_URL: url(ports.pg2),
    PGOPS_TARGET_PG2_DATA_DIR: dataDir.pg2,
    PGOPS_TARGET_PG2_OS_USER: info.PG_USER,
    PGOPS_CLUSTERS: name,
    [v('PRIMARY')]: primary,
    [v('STANDBYS')]: primary === 'pg1' ? 'pg2' : 'pg1',
    [v('ENDPOINT_URL')]: url(ports.pgbouncer),
    [v('PGBOUNCER_INI')]: info.PGBOUNCER_INI,
    [v('REPLICATION_USER')]: info.REPLICATION_USER,
    [v('REPLICATION_PASSWORD')]: info.REPLICATION_PASSWORD,
    [v('CONFIRM_WINDOW')]: '4s',
    [v('REPLAY_CATCHUP_TIMEOUT')]: '3s',
    ...extra,
  });
  const config = (primary: NodeName, extra?: Record<string, string>) => loadWorkerConfig({ ...env(primary, extra), PGOPS_ENV_FILE: '/dev/null' });
  const targets = config('pg1');
  const target = (node: NodeName | 'endpoint') => (node === 'endpoint' ? targets.clusters[name].endpoint! : targets.targets[node]);
  const connect = (node: NodeName | 'endpoint') => connectTarget(target(node), { timeoutMs: 3_000 });
  const postmasterPid = (node: NodeName) => Number(readFileSync(path.join(dataDir[node], 'postmaster.pid'), 'utf8').split('\n')[0]);
  const asPgUser = (args: string[]) => execa('runuser', ['-u', info.PG_USER, '--', ...args], { all: true });

  return {
    name,
    ports,
    dataDir,
    asServerUser: (program, args) => asPgUser([path.join(info.PG_BIN, program), ...args]),
    env,
    config,
    target,
    connect,
    async sql<T>(node: NodeName | 'endpoint', text: string, values?: unknown[]) {
      const client = await connect(node);
      try {
        return (await client.query(text, values)).rows as T[];
      } finally {
        await client.end();
      }
    },
    postmasterPid,
    signal: (node, signal) => process.kill(postmasterPid(node), signal),
    processes: (node) => serverProcesses(dataDir[node]).map((p) => p.pid),
    freeze(node) {
      const pids = serverProcesses(dataDir[node]).map((p) => p.pid);
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      return pids;
    },
    async start(node) {
      await asPgUser([path.join(info.PG_BIN, 'pg_ctl'), '-D', dataDir[node], '-l', `${dataDir[node]}.log`, '-o', `-p ${ports[node]}`, '-w', 'start']);
    },
    rejoin: (node, newPrimary, { extra, workflowIdPrefix = 'rejoin' } = {}) =>
      withWorker(config(newPrimary, extra), async ({ client, taskQueue }) =>
        (await startRejoin(client, { taskQueue, workflowId: `${workflowIdPrefix}-${randomUUID()}` }, { cluster: name, node, newPrimary })).result(),
      ),
    async down() {
      // A frozen node would hold pg_ctl stop to its timeout and outlive its deleted directory.
      for (const node of ['pg1', 'pg2'] as const) await killServerProcesses(dataDir[node]).catch(() => undefined);
      await execa(script, ['down'], { env: scriptEnv, reject: false });
    },
  };
}

/** Inserts rows through `node` as fast as it answers, remembering each id whose commit was acknowledged. */
export function startWriter(cluster: ReplicaCluster, node: NodeName | 'endpoint', table: string) {
  const acknowledged: number[] = [];
  const acknowledgedAt: number[] = [];
  const errors: string[] = [];
  let running = true;
  const done = (async () => {
    let client: PgClient | undefined;
    let id = 1;
    while (running) {
      try {
        client ??= await cluster.connect(node);
        await client.query(`INSERT INTO ${table} (id) VALUES ($1) ON CONFLICT DO NOTHING`, [id]);
        acknowledged.push(id);
        acknowledgedAt.push(Date.now());
        id++;
      } catch (err) {
        errors.push((err as Error).message);
        void client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    void client?.end().catch(() => undefined);
  })();
  return {
    acknowledged,
    errors,
    /**
     * The longest wait between two acknowledged writes among gaps ending after `sinceMs`, and when
     * it ended: the outage as the application saw it (a write in flight at a kill may still be acknowledged).
     */
    longestGap(sinceMs = 0): { ms: number; endedAt: number } {
      let longest = { ms: 0, endedAt: 0 };
      for (let i = 1; i < acknowledgedAt.length; i++) {
        const ms = acknowledgedAt[i] - acknowledgedAt[i - 1];
        if (acknowledgedAt[i] > sinceMs && ms > longest.ms) longest = { ms, endedAt: acknowledgedAt[i] };
      }
      return longest;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/**
 * For the history recorder: on a cluster of its own, SIGKILL the primary and run failoverPromotion
 * under `workflowId`, or (`rejoin`) do that first and then record rejoinAsStandby of the old primary.
 */
export async function recordFailover(client: TemporalClient, workflowId: string, workflow: 'failoverPromotion' | 'rejoinAsStandby' | 'switchover'): Promise<void> {
  const cluster = await createReplicaCluster(`record-${workflow.toLowerCase()}`, 26130);
  try {
    await withWorker(cluster.config('pg1'), async ({ taskQueue }) => {
      if (workflow === 'switchover') {
        await (await startFailover(client, { taskQueue, workflowId }, { cluster: cluster.name, mode: 'switchover', reason: 'recording a replay history' })).result();
        return;
      }
      cluster.signal('pg1', 'SIGKILL');
      const failoverId = workflow === 'failoverPromotion' ? workflowId : `${workflowId}-failover`;
      await (await startFailover(client, { taskQueue, workflowId: failoverId }, { cluster: cluster.name, reason: 'recording a replay history' })).result();
      if (workflow === 'rejoinAsStandby') {
        await (await startRejoin(client, { taskQueue, workflowId }, { cluster: cluster.name, node: 'pg1', newPrimary: 'pg2' })).result();
      }
    });
  } finally {
    await cluster.down();
  }
}

/**
 * For the history recorder: a watcher on a cluster of its own sees the primary SIGKILLed, fails
 * over, and is stopped (cancelled) once the failover is done.
 */
export async function recordWatcher(client: TemporalClient, workflowId: string): Promise<void> {
  const cluster = await createReplicaCluster('record-watcher', 26130);
  try {
    await withWorker(cluster.config('pg1'), async ({ taskQueue }) => {
      const handle = await startWatcher(client, { taskQueue, workflowId }, cluster.name);
      await new Promise((r) => setTimeout(r, 2_000));
      cluster.signal('pg1', 'SIGKILL');
      while ((await watchStatus(handle)).lastFailover === undefined) await new Promise((r) => setTimeout(r, 250));
      await handle.cancel();
      await handle.result().catch(() => undefined);
    });
  } finally {
    await cluster.down();
  }
}
