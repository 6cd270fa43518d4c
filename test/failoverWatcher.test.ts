// The failover nobody starts: failoverWatcher on an isolated primary + standby + PgBouncer
// (ports 26150-26152). A watcher's worker SIGKILLed is replaced within seconds; a blip and a
// worker cut off from the primary promote nothing; the primary SIGKILLed, then (after a rejoin)
// frozen with SIGSTOP and never thawed, is failed over with no one starting anything, and a
// backup of "<cluster>:primary" follows the new primary with the configuration unchanged (one of
// "<cluster>:standby" reads the streaming standby). Every worker here is configured with pg1 as
// the primary, as an operator would have left it.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { Client, WorkflowHandle } from '@temporalio/client';
import execa from 'execa';
import { readProcess } from '../src/failover/activities/serverProcesses';
import { backupPrefix } from '../src/backup/manifest';
import { readManifestObject } from '../src/backup/manifest/store';
import { createS3Client } from '../src/shared/storage/s3Client';
import { MANIFEST_FILE } from '../src/backup/manifest';
import { decideRestore, restoreStatus, startRestore, startWatcher, watchStatus } from '../src/client';
import type { WatchState } from '../src/failover/contract';
import { connectClient } from '../src/shared/temporal/connection';
import type { BackupManifest } from '../src/backup/manifest';
import { createReplicaCluster, startWriter, type NodeName, type ReplicaCluster } from './support/replicaCluster';
import { REPO_DIR, withWorker } from './support/stack';
import { startWorkerProcess, waitUntil } from './support/workerProcess';

jest.setTimeout(240_000);

let cluster: ReplicaCluster;

beforeAll(async () => {
  // An idle primary's WAL sender sends keepalives only when the standby has not replied for half
  // of wal_sender_timeout: with replies less often than that, a live primary is heard every 1.5 s
  // even with no writes, which is what tells a worker cut off from a frozen primary (see docs).
  cluster = await createReplicaCluster('fo-watch', 26150, 'wal_receiver_status_interval = 10s\nwal_sender_timeout = 3s');
  await cluster.sql('pg1', 'CREATE TABLE acked (id int PRIMARY KEY)');
  // A record left by an earlier run of this file names a node of a cluster that no longer exists.
  const config = cluster.config('pg1');
  const s3 = createS3Client(config.s3);
  await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key: `${config.s3.prefix}/topology/${cluster.name}.json` })).finally(() => s3.destroy());
});

afterAll(async () => {
  await cluster?.down();
});

async function writable(node: NodeName): Promise<boolean> {
  return cluster
    .sql<{ r: boolean }>(node, 'SELECT pg_is_in_recovery() AS r')
    .then((rows) => !rows[0].r)
    .catch(() => false);
}

async function primaries(): Promise<NodeName[]> {
  const found: NodeName[] = [];
  for (const node of ['pg1', 'pg2'] as const) if (await writable(node)) found.push(node);
  return found;
}

/** Runs `work` while a watcher of the test cluster runs on an in-process worker; the watcher ends with it. */
async function withWatcher<T>(work: (ctx: { client: Client; handle: WorkflowHandle; taskQueue: string }) => Promise<T>, extra?: Record<string, string>): Promise<T> {
  return withWorker(cluster.config('pg1', extra), async ({ client, taskQueue }) => {
    const handle = await startWatcher(client, { taskQueue }, cluster.name);
    try {
      return await work({ client, handle, taskQueue });
    } finally {
      await handle.terminate('test over').catch(() => undefined);
    }
  });
}

/** The watch activity's last heartbeat: when, and from which worker. */
async function watchHeartbeat(handle: WorkflowHandle): Promise<{ at: number; worker: string } | undefined> {
  const pending = (await handle.describe()).raw.pendingActivities?.[0];
  if (!pending?.lastHeartbeatTime || !pending.lastWorkerIdentity) return undefined;
  return { at: Number(pending.lastHeartbeatTime.seconds) * 1000 + Math.floor((pending.lastHeartbeatTime.nanos ?? 0) / 1e6), worker: pending.lastWorkerIdentity };
}

/** The process group a worker identity ("pid@host") belongs to: which of our worker processes it is. */
function processGroupOf(identity: string): number | undefined {
  return readProcess(Number(identity.split('@')[0]))?.pgrp;
}

/** Alive and not a zombie (a killed child whose parent died is reaped by whoever adopts it, maybe later). */
function alive(pid: number): boolean {
  const proc = readProcess(pid);
  return proc !== undefined && proc.state !== 'Z';
}

async function waitForFailover(handle: WorkflowHandle, started: number, timeoutMs = 90_000): Promise<WatchState> {
  let state: WatchState | undefined;
  await waitUntil('the watcher to finish a failover', async () => {
    state = await watchStatus(handle);
    return state.failoversStarted > started && state.lastFailover !== undefined && state.lastFailover.outcome !== 'already-running';
  }, timeoutMs);
  return state!;
}

/** `pgops backup now --target <cluster>:<role>`, the CLI against a worker with the original configuration. */
async function backupRole(taskQueue: string, role: 'primary' | 'standby'): Promise<BackupManifest> {
  const env = { ...cluster.env('pg1'), PGOPS_ENV_FILE: '/dev/null', PGOPS_TASK_QUEUE: taskQueue };
  const cli = await execa(path.join(REPO_DIR, 'bin/pgops'), ['backup', 'now', '--target', `${cluster.name}:${role}`, '--verify', 'list'], { env, reject: false, all: true });
  expect(cli.exitCode).toBe(0);
  const id = /backup (\S+) of/.exec(cli.all ?? '')?.[1];
  expect(id).toBeDefined();
  const config = cluster.config('pg1');
  const s3 = createS3Client(config.s3);
  try {
    return await readManifestObject(s3, config.s3.bucket, `${backupPrefix(config.s3, cluster.name, id!)}${MANIFEST_FILE}`);
  } finally {
    s3.destroy();
  }
}

describe('failoverWatcher', () => {
  test('the worker running the watcher SIGKILLed: another worker resumes watching within seconds', async () => {
    const taskQueue = `fo-watch-kill-${Date.now()}`;
    const env = { ...cluster.env('pg1'), PGOPS_TASK_QUEUE: taskQueue };
    const first = await startWorkerProcess(env);
    const second = await startWorkerProcess(env);
    const client = await connectClient(cluster.config('pg1').temporal);
    const handle = await startWatcher(client, { taskQueue }, cluster.name);
    try {
      await waitUntil('the watch to heartbeat', async () => (await watchHeartbeat(handle)) !== undefined, 30_000);
      const watching = (await watchHeartbeat(handle))!.worker;
      const victim = processGroupOf(watching) === first.child.pid ? first : second;
      const killedAt = Date.now();
      await victim.kill('SIGKILL');
      await waitUntil('another worker to take the watch', async () => {
        const beat = await watchHeartbeat(handle);
        return beat !== undefined && beat.worker !== watching && beat.at > killedAt;
      }, 30_000);
      const resumedMs = Date.now() - killedAt;
      console.log(`watcher resumed on another worker ${resumedMs} ms after SIGKILL`);
      expect(resumedMs).toBeLessThan(20_000);
      expect(await primaries()).toEqual(['pg1']); // and it did not mistake the dead worker for a dead primary
    } finally {
      await handle.terminate('test over').catch(() => undefined);
      await client.connection.close();
      await first.kill('SIGKILL');
      await second.kill('SIGKILL');
    }
  });

  test('a blip shorter than the window (primary frozen 2.5 s): no promotion, the watcher keeps watching', async () => {
    await withWatcher(async ({ handle }) => {
      await waitUntil('the watcher to probe', async () => (await watchHeartbeat(handle)) !== undefined, 30_000);
      const frozen = cluster.freeze('pg1');
      await sleep(2_500);
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
      const state = await waitForFailover(handle, 0, 60_000);
      expect(state.lastFailover?.outcome).toBe('cancelled');
      expect(state.lastFailover?.detail).toMatch(/^primary pg1 answer/);
      expect((await handle.describe()).status.name).toBe('RUNNING');
    });
    expect(await primaries()).toEqual(['pg1']);
  });

  test('a worker cut off from the primary while the standby still streams from it: no failover, the watcher keeps watching', async () => {
    // The worker's route to pg1 leads nowhere (a port with no server); pg2 still streams from pg1.
    const cutOff = { PGOPS_TARGET_PG1_URL: cluster.env('pg1').PGOPS_TARGET_PG1_URL.replace(`:${cluster.ports.pg1}/`, ':26159/') };
    await withWatcher(async ({ handle }) => {
      const state = await waitForFailover(handle, 0, 60_000);
      expect(state.lastFailover?.outcome).toBe('cancelled');
      expect(state.lastFailover?.detail).toMatch(/still hears the primary/);
      expect((await handle.describe()).status.name).toBe('RUNNING');
    }, cutOff);
    expect(await primaries()).toEqual(['pg1']);
  });

  test('primary SIGKILLed, nobody starts anything: the watcher fails over, writes through PgBouncer reach pg2, and a backup and a restore of the primary role follow', async () => {
    await withWatcher(async ({ client, handle, taskQueue }) => {
      await waitUntil('the watcher to probe', async () => (await watchHeartbeat(handle)) !== undefined, 30_000);
      const writer = startWriter(cluster, 'endpoint', 'acked');
      await waitUntil('steady writes', async () => writer.acknowledged.length >= 50);
      const killedAt = Date.now();
      cluster.signal('pg1', 'SIGKILL');
      const state = await waitForFailover(handle, 0);
      const ackedAtFailover = writer.acknowledged.length;
      await waitUntil('writes through the endpoint again', async () => writer.acknowledged.length > ackedAtFailover + 20, 30_000);
      await writer.stop();
      expect(state.lastFailover).toMatchObject({ outcome: 'promoted', primary: 'pg1', detail: 'promoted pg2' });
      console.log(`SIGKILL: writes back through PgBouncer ${writer.longestGap(killedAt).endedAt - killedAt} ms after the kill`);
      expect(await primaries()).toEqual(['pg2']);
      expect(cluster.processes('pg1')).toEqual([]);
      const [server] = await cluster.sql<{ port: number }>('endpoint', 'SELECT inet_server_port() AS port');
      expect(server.port).toBe(cluster.ports.pg2);

      await cluster.sql('pg2', 'CREATE TABLE after_first_failover (id int)');
      const manifest = await backupRole(taskQueue, 'primary');
      expect(manifest).toMatchObject({ target: cluster.name, sourceNode: 'pg2' });
      expect(Object.keys(manifest.rowCounts)).toContain('public.after_first_failover');

      // A restore into "<cluster>:primary" lands on pg2 too, from the cluster's catalog.
      const restoreHandle = await startRestore(client, { taskQueue }, {
        target: `${cluster.name}:primary`, backup: manifest.backupId, mode: 'new-database', newDatabase: 'restored_after_failover', requestedBy: 'alice',
      });
      await waitUntil('the restore plan', async () => (await restoreStatus(client, restoreHandle.workflowId)).stage === 'awaiting-approval', 60_000);
      await decideRestore(client, restoreHandle.workflowId, 'approve', { approver: 'bob', reason: 'restore beside the failed-over primary' });
      expect((await restoreHandle.result()).outcome).toBe('restored');
      const found = await cluster.sql<{ n: string }>('pg2', `SELECT count(*) AS n FROM pg_database WHERE datname = 'restored_after_failover'`);
      expect(found[0].n).toBe('1');
    });
  });

  test('the new primary frozen with SIGSTOP and never thawed: failed over back to pg1, the frozen processes gone, the backup follows again', async () => {
    const rejoin = await cluster.rejoin('pg1', 'pg2');
    expect(rejoin.receiverStatus).toBe('streaming');
    await withWatcher(async ({ handle, taskQueue }) => {
      // pg1 streams from pg2 again: a backup of the standby role reads it, not the primary.
      const fromStandby = await backupRole(taskQueue, 'standby');
      expect(fromStandby).toMatchObject({ target: cluster.name, sourceNode: 'pg1' });
      await waitUntil('the watcher to probe', async () => (await watchHeartbeat(handle)) !== undefined, 30_000);
      const before = (await watchStatus(handle)).failoversStarted;
      // An operator's shell sitting in the data directory (root's, not the server's user's) is not fenced.
      const bystander = spawn('sleep', ['120'], { cwd: cluster.dataDir.pg2, stdio: 'ignore' });
      const frozen = cluster.freeze('pg2');
      expect(frozen).not.toContain(bystander.pid);
      expect(frozen.length).toBeGreaterThan(3);
      const frozenAt = Date.now();
      const state = await waitForFailover(handle, before);
      console.log(`frozen primary: failover done ${Date.now() - frozenAt} ms after SIGSTOP`);
      expect(state.lastFailover).toMatchObject({ outcome: 'promoted', primary: 'pg2', detail: 'promoted pg1' });
      expect(cluster.processes('pg2')).toEqual([]);
      expect(frozen.filter(alive)).toEqual([]);
      expect(alive(bystander.pid!)).toBe(true);
      bystander.kill('SIGKILL');
      expect(await primaries()).toEqual(['pg1']);
      await cluster.sql('endpoint', 'INSERT INTO acked (id) VALUES (-1)');
      expect((await cluster.sql<{ port: number }>('endpoint', 'SELECT inet_server_port() AS port'))[0].port).toBe(cluster.ports.pg1);

      const manifest = await backupRole(taskQueue, 'primary');
      expect(manifest).toMatchObject({ target: cluster.name, sourceNode: 'pg1' });
    });
  });
});
