// What keeps failoverPromotion from promoting when it should not, and the planned switchover, on
// an isolated primary + standby + PgBouncer: a short blip cancels; a lagging standby is refused
// until an operator forces it; a switchover under steady writes loses nothing. Each test
// continues on the cluster the previous one left.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { approveFailover, failoverStatus, startFailover } from '../src/client';
import { createReplicaCluster, startWriter, type NodeName, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

jest.setTimeout(180_000);

let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await createReplicaCluster('fo-guard', 26120);
  await cluster.sql('pg1', 'CREATE TABLE filler (id bigserial PRIMARY KEY, payload text)');
  await cluster.sql('pg1', 'ALTER TABLE filler ALTER payload SET STORAGE EXTERNAL'); // uncompressed: the WAL is as big as the rows
});

afterAll(async () => {
  await cluster?.down();
});

async function inRecovery(node: NodeName): Promise<boolean> {
  return (await cluster.sql<{ r: boolean }>(node, 'SELECT pg_is_in_recovery() AS r'))[0].r;
}

describe('failoverPromotion guards and switchover', () => {
  test('unknown cluster: one clear error, nothing touched', async () => {
    await withWorker(cluster.config('pg1'), async ({ client, taskQueue }) => {
      const handle = await startFailover(client, { taskQueue, workflowId: `fo-bad-${randomUUID()}` }, { cluster: 'nope' });
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(((err as WorkflowFailedError).cause?.cause as Error | undefined)?.message).toMatch(/^unknown cluster "nope" \(configured in PGOPS_CLUSTERS: fo-guard\)$/);
    });
    expect(await inRecovery('pg1')).toBe(false);
    expect(await inRecovery('pg2')).toBe(true);
  });

  test('a blip shorter than the window (primary frozen with SIGSTOP, then SIGCONT): no promotion', async () => {
    const result = await withWorker(cluster.config('pg1'), async ({ client, taskQueue }) => {
      cluster.signal('pg1', 'SIGSTOP');
      try {
        const handle = await startFailover(client, { taskQueue, workflowId: `fo-blip-${randomUUID()}` }, { cluster: cluster.name });
        await waitUntil('the confirmation to run', async () => (await failoverStatus(handle)).stage === 'confirming');
        await sleep(1_500);
        cluster.signal('pg1', 'SIGCONT');
        return await handle.result();
      } finally {
        cluster.signal('pg1', 'SIGCONT');
      }
    });
    expect(result.outcome).toBe('cancelled');
    expect(result.newPrimary).toBeUndefined();
    expect(result.confirmation?.failed).toBe(false);
    expect(result.steps.map((s) => s.step)).toEqual(['confirm failure']);
    expect(await inRecovery('pg1')).toBe(false);
    expect(await inRecovery('pg2')).toBe(true);
    console.log(`blip: ${result.reason}; probes ${JSON.stringify(result.confirmation?.probes.map((p) => p.ok))}`);
  });

  test('a standby lagging beyond the maximum: refused, promoted only after an approval that forces it', async () => {
    await cluster.sql('pg2', 'SELECT pg_wal_replay_pause()');
    await cluster.sql('pg1', `INSERT INTO filler (payload) SELECT repeat(md5(g::text), 100) FROM generate_series(1, 1500) g`); // ~5 MB of WAL
    const written = (await cluster.sql<{ rows: string }>('pg1', 'SELECT count(*) AS rows FROM filler'))[0].rows;
    await waitUntil('the standby to receive it unreplayed', async () => {
      const [lag] = await cluster.sql<{ bytes: string }>('pg2', 'SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) AS bytes');
      return Number(lag.bytes) > 2 * 1024 * 1024;
    });
    cluster.signal('pg1', 'SIGKILL');

    const result = await withWorker(cluster.config('pg1'), async ({ client, taskQueue }) => {
      const handle = await startFailover(client, { taskQueue, workflowId: `fo-lag-${randomUUID()}` }, { cluster: cluster.name });
      await waitUntil('the refusal', async () => (await failoverStatus(handle)).waitingFor === 'forced-promotion', 60_000);
      expect((await failoverStatus(handle)).refusal).toMatch(/^pg2 is \d+ bytes behind, more than the 1048576 allowed/);
      // An approval that does not force the promotion does not move it.
      await approveFailover(handle, { operator: 'alice', note: 'plain approval' });
      await sleep(1_000);
      expect((await failoverStatus(handle)).waitingFor).toBe('forced-promotion');
      expect(await inRecovery('pg2')).toBe(true);
      await approveFailover(handle, { operator: 'alice', forcePromotion: true, note: 'accept the lag' });
      return handle.result();
    });
    expect(result).toMatchObject({ outcome: 'promoted', newPrimary: 'pg2', forced: true });
    expect(result.lagBytesAtPromotion).toBeGreaterThan(1024 * 1024);
    expect(result.approvals).toEqual([{ operator: 'alice', forcePromotion: true, note: 'accept the lag' }]);
    // Promotion replays everything the standby had received, so the forced promotion lost nothing here.
    expect((await cluster.sql<{ rows: string }>('pg2', 'SELECT count(*) AS rows FROM filler'))[0].rows).toBe(written);
  });

  test('planned switchover under steady writes through PgBouncer: zero lost commits', async () => {
    // pg2 is the primary now; bring pg1 (SIGKILLed above) back as its standby first.
    const rejoin = await cluster.rejoin('pg1', 'pg2');
    expect(rejoin.receiverStatus).toBe('streaming');
    await cluster.sql('pg2', 'CREATE TABLE steady (id int PRIMARY KEY)');

    const writer = startWriter(cluster, 'endpoint', 'steady');
    await waitUntil('steady writes', async () => writer.acknowledged.length >= 100);
    const result = await withWorker(cluster.config('pg2'), async ({ client, taskQueue }) =>
      (await startFailover(client, { taskQueue, workflowId: `fo-switch-${randomUUID()}` }, { cluster: cluster.name, mode: 'switchover' })).result(),
    );
    const ackedAtSwitch = writer.acknowledged.length;
    await waitUntil('writes to continue after the switchover', async () => writer.acknowledged.length >= ackedAtSwitch + 100);
    await writer.stop();

    expect(result).toMatchObject({ outcome: 'promoted', mode: 'switchover', newPrimary: 'pg1', lagBytesAtPromotion: 0 });
    expect(result.choice?.receivedShutdownCheckpoint).toBe(true);
    expect(result.switchover?.pausedEndpoint).toBe(true);
    const acked = writer.acknowledged;
    const present = Number((await cluster.sql<{ n: string }>('pg1', 'SELECT count(*) AS n FROM steady WHERE id = ANY($1)', [acked]))[0].n);
    expect(present).toBe(acked.length);
    expect(await inRecovery('pg1')).toBe(false);
    console.log(
      `switchover under load: ${acked.length} acknowledged, 0 lost, longest gap between acknowledged writes ${writer.longestGap().ms} ms, ` +
        `${writer.errors.length} failed attempts; steps ${JSON.stringify(result.steps.map((s) => [s.step, s.ms]))}`,
    );
  });

  test('async replication: commits the standby never received are lost, and the failover counts them', async () => {
    // pg1 is the primary after the switchover; the old primary pg2 was stopped cleanly: rejoin it.
    const rejoin = await cluster.rejoin('pg2', 'pg1');
    expect(rejoin.receiverStatus).toBe('streaming');
    await cluster.sql('pg1', 'CREATE TABLE async_lost (id int PRIMARY KEY)');
    await waitUntil('the table to reach the standby', async () => (await cluster.sql('pg2', `SELECT to_regclass('async_lost') IS NOT NULL AS ok`))[0].ok === true);
    // Freeze the WAL sender, so these commits are acknowledged (async) but never leave pg1.
    const [{ pid: walSender }] = await cluster.sql<{ pid: number }>('pg1', 'SELECT pid FROM pg_stat_replication');
    process.kill(walSender, 'SIGSTOP');
    const ids = Array.from({ length: 10 }, (_, i) => i + 1);
    for (const id of ids) await cluster.sql('pg1', 'INSERT INTO async_lost (id) VALUES ($1)', [id]);
    process.kill(walSender, 'SIGKILL');
    cluster.signal('pg1', 'SIGKILL');

    const result = await withWorker(cluster.config('pg1'), async ({ client, taskQueue }) =>
      (await startFailover(client, { taskQueue, workflowId: `fo-async-${randomUUID()}` }, { cluster: cluster.name })).result(),
    );
    expect(result).toMatchObject({ outcome: 'promoted', newPrimary: 'pg2', lagBytesAtPromotion: 0 });
    const present = Number((await cluster.sql<{ n: string }>('pg2', 'SELECT count(*) AS n FROM async_lost'))[0].n);
    expect(present).toBe(0);
    console.log(`async loss: ${ids.length} acknowledged commits lost, workflow reports: ${result.lostCommitsDetail}`);
    expect(result.lostCommits).toBeGreaterThanOrEqual(ids.length);

    // The diverged old primary is rewound onto the new timeline.
    const back = await cluster.rejoin('pg1', 'pg2');
    expect(back).toMatchObject({ method: 'pg_rewind', receiverStatus: 'streaming' });
    expect(Number((await cluster.sql<{ n: string }>('pg1', 'SELECT count(*) AS n FROM async_lost'))[0].n)).toBe(0);
  });

  /** The worker's view of a remote old primary: no server control of it. */
  const remote = (node: NodeName) => ({ [`PGOPS_TARGET_${node.toUpperCase()}_DATA_DIR`]: '', [`PGOPS_TARGET_${node.toUpperCase()}_OS_USER`]: '' });

  test('a remote old primary is fenced by the fencing hook (an argument array with placeholders)', async () => {
    const marks = mkdtempSync(path.join(tmpdir(), 'pgops-fence-'));
    try {
      const fenceCommand = JSON.stringify(['/usr/bin/touch', `${marks}/fenced-{old_primary}-{old_port}-for-{new_primary}`]);
      cluster.signal('pg2', 'SIGKILL');
      const result = await withWorker(cluster.config('pg2', { ...remote('pg2'), PGOPS_CLUSTER_FO_GUARD_FENCE_COMMAND: fenceCommand }), async ({ client, taskQueue }) =>
        (await startFailover(client, { taskQueue, workflowId: `fo-hook-${randomUUID()}` }, { cluster: cluster.name })).result(),
      );
      expect(result).toMatchObject({ outcome: 'promoted', newPrimary: 'pg1' });
      expect(result.fence).toMatchObject({ confirmed: true });
      expect(result.fence?.actions).toEqual([
        'pg2 is unreachable and pgops has no control of its server',
        'fencing hook /usr/bin/touch exited 0',
      ]);
      expect(readdirSync(marks)).toEqual([`fenced-pg2-${cluster.ports.pg2}-for-pg1`]);
      expect(result.lostCommits).toBeUndefined(); // its WAL is not on this machine
    } finally {
      rmSync(marks, { recursive: true, force: true });
    }
  });

  test('a remote old primary with no fencing hook: the failover waits for an operator to confirm the fencing', async () => {
    const rejoin = await cluster.rejoin('pg2', 'pg1');
    expect(rejoin.receiverStatus).toBe('streaming');
    cluster.signal('pg1', 'SIGKILL');
    const result = await withWorker(cluster.config('pg1', remote('pg1')), async ({ client, taskQueue }) => {
      const handle = await startFailover(client, { taskQueue, workflowId: `fo-unfenced-${randomUUID()}` }, { cluster: cluster.name });
      await waitUntil('the fencing question', async () => (await failoverStatus(handle)).waitingFor === 'fencing-confirmation', 60_000);
      expect((await failoverStatus(handle)).refusal).toMatch(/^fencing of pg1 is not confirmed: pg1 does not answer, but nothing confirms it is fenced/);
      expect(await inRecovery('pg2')).toBe(true);
      await approveFailover(handle, { operator: 'bob', fencingConfirmed: true, note: 'pg1 powered off in the console' });
      return handle.result();
    });
    expect(result).toMatchObject({ outcome: 'promoted', newPrimary: 'pg2' });
    expect(result.fence?.confirmed).toBe(false);
    expect(result.approvals).toEqual([{ operator: 'bob', fencingConfirmed: true, note: 'pg1 powered off in the console' }]);
  });

  test('a switchover whose standby misses the shutdown checkpoint is aborted: the old primary comes back', async () => {
    const rejoin = await cluster.rejoin('pg1', 'pg2');
    expect(rejoin.receiverStatus).toBe('streaming');
    // A frozen WAL receiver: the standby cannot receive the shutdown checkpoint.
    const [{ pid: walReceiver }] = await cluster.sql<{ pid: number }>('pg1', 'SELECT pid FROM pg_stat_wal_receiver');
    process.kill(walReceiver, 'SIGSTOP');
    let failure: unknown;
    try {
      failure = await withWorker(cluster.config('pg2'), async ({ client, taskQueue }) =>
        (await startFailover(client, { taskQueue, workflowId: `fo-abort-${randomUUID()}` }, { cluster: cluster.name, mode: 'switchover' })).result().catch((e: unknown) => e),
      );
    } finally {
      process.kill(walReceiver, 'SIGCONT');
    }
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((failure as WorkflowFailedError).cause?.message).toMatch(/^switchover of fo-guard aborted: pg1 received WAL to \S+, not past the shutdown checkpoint \S+$/);
    expect(await inRecovery('pg1')).toBe(true);
    expect(await inRecovery('pg2')).toBe(false);
    // The endpoint was paused for the switchover and is resumed, still in front of pg2.
    const [{ port }] = await cluster.sql<{ port: number }>('endpoint', 'INSERT INTO async_lost (id) VALUES (100) RETURNING inet_server_port() AS port');
    expect(port).toBe(cluster.ports.pg2);
  });
});
