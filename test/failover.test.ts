// failoverPromotion and rejoinAsStandby against a real, isolated primary + standby + PgBouncer on
// loopback (never the shared stack's servers): the primary SIGKILLed with synchronous replication
// (RPO 0), the split-brain guard and rejoin, the worker SIGKILLed mid-failover (async replication,
// lost transactions counted). Each test continues on the cluster the previous one left.
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { failoverStatus, startFailover } from '../src/client';
import { createS3Client } from '../src/shared/storage/s3Client';
import type { FailoverResult } from '../src/failover/contract';
import { connectClient } from '../src/shared/temporal/connection';
import { createReplicaCluster, startWriter, type NodeName, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';
import { startWorkerProcess, waitUntil, type WorkerProcess } from './support/workerProcess';

jest.setTimeout(180_000);

let cluster: ReplicaCluster;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  cluster = await createReplicaCluster('fo-sync', 26110);
  // Synchronous commit to the standby on the first primary only (the standby was cloned before):
  // after the failover the new primary must not wait for a standby it no longer has.
  await cluster.sql('pg1', `ALTER SYSTEM SET synchronous_standby_names = '*'`);
  await cluster.sql('pg1', 'SELECT pg_reload_conf()');
  await cluster.sql('pg1', 'CREATE TABLE acked (id int PRIMARY KEY)');
});

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await cluster?.down();
});

async function inRecovery(node: NodeName): Promise<boolean> {
  return (await cluster.sql<{ r: boolean }>(node, 'SELECT pg_is_in_recovery() AS r'))[0].r;
}

async function presentIds(node: NodeName | 'endpoint', table: string, ids: number[]): Promise<number> {
  const rows = await cluster.sql<{ n: string }>(node, `SELECT count(*) AS n FROM ${table} WHERE id = ANY($1)`, [ids]);
  return Number(rows[0].n);
}

async function endpointServer(): Promise<{ port: number; inRecovery: boolean }> {
  const rows = await cluster.sql<{ port: number; r: boolean }>('endpoint', 'SELECT inet_server_port() AS port, pg_is_in_recovery() AS r');
  return { port: rows[0].port, inRecovery: rows[0].r };
}

async function auditRecord(result: FailoverResult): Promise<FailoverResult> {
  const config = cluster.config('pg1');
  const s3 = createS3Client(config.s3);
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: result.auditKey! }));
    const lines = (await object.Body!.transformToString()).trim().split('\n').map((l) => JSON.parse(l));
    return lines.find((l) => l.id === `${result.workflowId}/${result.runId}`);
  } finally {
    s3.destroy();
  }
}

describe('failoverPromotion on an isolated primary + standby + PgBouncer', () => {
  test('SIGKILL of the primary under synchronous replication: promoted, repointed, every acknowledged commit kept (RPO 0)', async () => {
    const writer = startWriter(cluster, 'endpoint', 'acked');
    await waitUntil('the writer to commit through PgBouncer', async () => writer.acknowledged.length >= 50);
    const killedAt = Date.now();
    cluster.signal('pg1', 'SIGKILL');
    await waitUntil('writes to fail', async () => writer.errors.length > 0, 10_000);
    await writer.stop();

    const result = await withWorker(cluster.config('pg1'), async ({ client, taskQueue }) => {
      const handle = await startFailover(client, { taskQueue, workflowId: `fo-kill-${randomUUID()}` }, { cluster: cluster.name, reason: 'test: SIGKILL' });
      return handle.result();
    });
    const rtoMs = Date.now() - killedAt;

    expect(result.outcome).toBe('promoted');
    expect(result.confirmation?.failed).toBe(true);
    expect(result.newPrimary).toBe('pg2');
    expect(result.promotion!.timelineAfter).toBeGreaterThan(result.promotion!.timelineBefore);
    expect(result.fence?.confirmed).toBe(true);
    expect(result.repoint).toMatchObject({ method: 'pgbouncer', verifiedWrite: true, endpointServerPort: cluster.ports.pg2 });
    expect(result.steps.map((s) => s.step)).toEqual(['confirm failure', 'choose candidate', 'fence old primary', 'promote', 'repoint clients', 'count lost commits', 'record new primary']);
    // Synchronous replication: whatever the old primary committed past the standby was never acknowledged.
    expect(result.lostCommitsDetail).toMatch(/^\d+ commit\(s\) on timeline 1 of pg1 after /);

    expect(await endpointServer()).toEqual({ port: cluster.ports.pg2, inRecovery: false });
    await cluster.sql('endpoint', 'INSERT INTO acked (id) VALUES (-1)');
    const acked = writer.acknowledged;
    expect(await presentIds('pg2', 'acked', acked)).toBe(acked.length);

    const audit = await auditRecord(result);
    expect(audit).toMatchObject({ outcome: 'promoted', newPrimary: 'pg2', oldPrimary: 'pg1' });
    console.log(`failover after SIGKILL: ${acked.length} acknowledged commits, all present (workflow: ${result.lostCommitsDetail}); death -> workflow done ${rtoMs} ms; steps ${JSON.stringify(result.steps.map((s) => [s.step, s.ms]))}`);
  });

  test('split-brain guard: the old primary restarted takes no writes through the endpoint; rejoinAsStandby makes it stream', async () => {
    // Restarted by hand it comes back as a primary on the old timeline: a split brain, except
    // that the endpoint no longer leads to it.
    await cluster.start('pg1');
    expect(await inRecovery('pg1')).toBe(false);
    await cluster.sql('endpoint', 'INSERT INTO acked (id) VALUES (-2)');
    expect(await endpointServer()).toEqual({ port: cluster.ports.pg2, inRecovery: false });
    expect(await presentIds('pg1', 'acked', [-2])).toBe(0);
    expect(await presentIds('pg2', 'acked', [-2])).toBe(1);

    const rejoin = await cluster.rejoin('pg1', 'pg2');
    expect(rejoin).toMatchObject({ node: 'pg1', newPrimary: 'pg2', method: 'pg_rewind', receiverStatus: 'streaming' });
    expect(await inRecovery('pg1')).toBe(true);
    const receiver = await cluster.sql<{ status: string }>('pg1', 'SELECT status FROM pg_stat_wal_receiver');
    expect(receiver[0].status).toBe('streaming');
    await cluster.sql('pg2', 'INSERT INTO acked (id) VALUES (-3)');
    await waitUntil('a row written on pg2 to replay on pg1', async () => (await presentIds('pg1', 'acked', [-3])) === 1, 30_000);
    // The row the split-brained pg1 would have lost is not there either: it now follows pg2's history.
    expect(await presentIds('pg1', 'acked', [-2])).toBe(1);
  });

  test('worker SIGKILLed mid-failover (async replication): a new worker finishes, exactly one primary, lost commits counted', async () => {
    // Roles are now reversed: pg2 primary, pg1 streaming (asynchronously: pg2 never had synchronous_standby_names).
    await cluster.sql('pg2', 'CREATE TABLE acked_async (id int PRIMARY KEY)');
    const taskQueue = `fo-worker-kill-${randomUUID()}`;
    const env = { ...cluster.env('pg2'), PGOPS_TASK_QUEUE: taskQueue };
    const first = await startWorkerProcess(env);
    workers.push(first);
    const client = await connectClient(cluster.config('pg2').temporal);
    try {
      const writer = startWriter(cluster, 'endpoint', 'acked_async');
      await waitUntil('the writer to commit', async () => writer.acknowledged.length >= 50);
      cluster.signal('pg2', 'SIGKILL');
      await waitUntil('writes to fail', async () => writer.errors.length > 0, 10_000);
      await writer.stop();
      const handle = await startFailover(client, { taskQueue, workflowId: `fo-worker-kill-${randomUUID()}` }, { cluster: cluster.name });
      await waitUntil('the failover to be confirming', async () => (await failoverStatus(handle)).stage === 'confirming', 60_000);
      await first.kill('SIGKILL');
      workers.push(await startWorkerProcess(env));
      const result = await handle.result();

      expect(result.outcome).toBe('promoted');
      expect(result.newPrimary).toBe('pg1');
      const primaries = [];
      for (const node of ['pg1', 'pg2'] as const) {
        const writable = await cluster
          .sql<{ r: boolean }>(node, 'SELECT pg_is_in_recovery() AS r')
          .then((rows) => !rows[0].r)
          .catch(() => false);
        if (writable) primaries.push(node);
      }
      expect(primaries).toEqual(['pg1']);
      expect(await endpointServer()).toEqual({ port: cluster.ports.pg1, inRecovery: false });
      const acked = writer.acknowledged;
      const lost = acked.length - (await presentIds('pg1', 'acked_async', acked));
      // The workflow's count (from the old primary's WAL) includes commits never acknowledged.
      expect(result.lostCommits).toBeGreaterThanOrEqual(lost);
      console.log(`async failover with the worker SIGKILLed: ${acked.length} acknowledged, ${lost} lost; workflow: ${result.lostCommitsDetail}; lag at promotion ${result.lagBytesAtPromotion} bytes`);
    } finally {
      await client.connection.close();
    }
  });

  test('rejoinAsStandby falls back to a fresh base backup when pg_rewind cannot work, keeping the old data directory', async () => {
    // pg2 (killed above) is replaced by an unrelated cluster: pg_rewind refuses a different system.
    const dir = cluster.dataDir.pg2;
    rmSync(dir, { recursive: true, force: true });
    await cluster.asServerUser('initdb', ['-D', dir, '-U', 'postgres', '--auth=trust', '--no-locale', '--no-sync']);
    const rejoin = await cluster.rejoin('pg2', 'pg1', { workflowIdPrefix: 'rejoin-rebuild' });
    expect(rejoin).toMatchObject({ node: 'pg2', newPrimary: 'pg1', method: 'pg_basebackup', receiverStatus: 'streaming' });
    expect(rejoin.rewindError).toMatch(/different systems/);
    expect(existsSync(`${rejoin.keptOldDataDir}/PG_VERSION`)).toBe(true);
    await cluster.sql('pg1', 'INSERT INTO acked_async (id) VALUES (-4)');
    await waitUntil('a row written on pg1 to replay on pg2', async () => (await presentIds('pg2', 'acked_async', [-4])) === 1, 30_000);
  });
});
