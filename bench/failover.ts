// Failover benchmark on an isolated primary + standby + PgBouncer (never the shared stack's servers):
//   RTO with no one starting the failover: a failoverWatcher runs; the primary is SIGKILLed, or
//        frozen with SIGSTOP (postmaster and children, never thawed), and the time is measured
//        from the fault to the first write acknowledged through PgBouncer; default probe
//        settings (6 s window, 1 s interval, 1 s timeout). The old primary is rejoined between runs.
//   false alarms: a blip (primary frozen 2.5 s) and a worker cut off from the primary (its
//        address for the primary leads nowhere) while the standby streams: promotions must be 0.
//   switchover downtime: the longest gap between acknowledged writes through PgBouncer while a
//        planned switchover runs under a steady write load, and the commits lost (must be 0).
//
//   npx tsx bench/failover.ts [--runs 5]        (Temporal and MinIO of the local stack must be up)
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { startFailover, startWatcher, watchStatus } from '../src/client';
import { clusterVariable } from '../src/shared/config';
import type { WatchState } from '../src/failover/contract';
import { createReplicaCluster, startWriter, type NodeName, type ReplicaCluster } from '../test/support/replicaCluster';
import { withWorker } from '../test/support/stack';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
// The policy defaults, restated over the test cluster's shorter window.
const DEFAULT_POLICY = { CONFIRM_WINDOW: '6s', REPLAY_CATCHUP_TIMEOUT: '10s' };
// An idle primary is heard by its standby only through keepalives (docs/failover.md).
const KEEPALIVE_CONF = 'wal_receiver_status_interval = 10s\nwal_sender_timeout = 3s';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const other = (node: NodeName): NodeName => (node === 'pg1' ? 'pg2' : 'pg1');

function policyEnv(cluster: ReplicaCluster): Record<string, string> {
  return Object.fromEntries(Object.entries(DEFAULT_POLICY).map(([k, v]) => [clusterVariable(cluster.name, k), v]));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs `work` while the cluster's watcher runs on a worker configured with pg1 as primary (never edited). */
async function withWatcher<T>(cluster: ReplicaCluster, extra: Record<string, string>, work: (client: Client, state: () => Promise<WatchState>) => Promise<T>): Promise<T> {
  return withWorker(cluster.config('pg1', { ...policyEnv(cluster), ...extra }), async ({ client, taskQueue }) => {
    const handle = await startWatcher(client, { taskQueue }, cluster.name);
    try {
      await sleep(2_000); // probing
      return await work(client, () => watchStatus(handle));
    } finally {
      await handle.terminate('bench run over').catch(() => undefined);
    }
  });
}

async function untilFailoverEnds(state: () => Promise<WatchState>, timeoutMs = 60_000): Promise<WatchState | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await state();
    if (s.lastFailover) return s;
    await sleep(100);
  }
  return undefined;
}

async function currentPrimary(cluster: ReplicaCluster): Promise<NodeName> {
  for (const node of ['pg1', 'pg2'] as const) {
    const rows = await cluster.sql<{ r: boolean }>(node, 'SELECT pg_is_in_recovery() AS r').catch(() => [{ r: true }]);
    if (!rows[0].r) return node;
  }
  throw new Error('no primary');
}

/** One unattended failover: the fault, then the first write acknowledged through PgBouncer. */
async function watchedFailover(cluster: ReplicaCluster, fault: 'SIGKILL' | 'SIGSTOP'): Promise<number> {
  const primary = await currentPrimary(cluster);
  const rto = await withWatcher(cluster, {}, async (_client, state) => {
    await cluster.sql('endpoint', 'TRUNCATE bench_writes');
    const writer = startWriter(cluster, 'endpoint', 'bench_writes');
    while (writer.acknowledged.length < 20) await sleep(20);
    const before = writer.acknowledged.length;
    const faultAt = Date.now();
    if (fault === 'SIGKILL') cluster.signal(primary, 'SIGKILL');
    else cluster.freeze(primary);
    const ended = await untilFailoverEnds(state);
    if (ended?.lastFailover?.outcome !== 'promoted') throw new Error(`no promotion after ${fault}: ${JSON.stringify(ended?.lastFailover)}`);
    while (writer.acknowledged.length <= before + 1) await sleep(5);
    await writer.stop();
    const ms = writer.longestGap(faultAt).endedAt - faultAt;
    console.error(`${fault}: RTO ${ms} ms (${ended.lastFailover.detail})`);
    return ms;
  });
  await cluster.rejoin(primary, other(primary), { extra: policyEnv(cluster), workflowIdPrefix: 'bench-rejoin' });
  return rto;
}

/** A fault that must not promote anything; returns the promotions it caused (0 expected). */
async function falseAlarm(cluster: ReplicaCluster, kind: 'blip' | 'partition'): Promise<number> {
  const primary = await currentPrimary(cluster);
  const portVariable = `PGOPS_TARGET_${primary.toUpperCase()}_URL`;
  const extra = kind === 'partition' ? { [portVariable]: cluster.env('pg1')[portVariable].replace(`:${cluster.ports[primary]}/`, ':26149/') } : {};
  return withWatcher(cluster, extra, async (_client, state) => {
    if (kind === 'blip') {
      const frozen = cluster.freeze(primary);
      await sleep(2_500);
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
    const ended = await untilFailoverEnds(state, 30_000);
    const promoted = ended?.lastFailover?.outcome === 'promoted' || (await currentPrimary(cluster)) !== primary ? 1 : 0;
    console.error(`${kind}: ${ended?.lastFailover ? `${ended.lastFailover.outcome}: ${ended.lastFailover.detail}` : 'no failover started'}`);
    return promoted;
  });
}

async function main(): Promise<void> {
  const cluster = await createReplicaCluster('bench-fo', 26140, KEEPALIVE_CONF);
  const rto: Record<'SIGKILL' | 'SIGSTOP', number[]> = { SIGKILL: [], SIGSTOP: [] };
  const promotions = { blip: 0, partition: 0 };
  const downtime: number[] = [];
  let lost = 0;
  try {
    await cluster.sql('pg1', 'CREATE TABLE bench_writes (id int PRIMARY KEY)');
    for (let run = 0; run < runs; run++) {
      rto.SIGKILL.push(await watchedFailover(cluster, 'SIGKILL'));
      rto.SIGSTOP.push(await watchedFailover(cluster, 'SIGSTOP'));
      promotions.blip += await falseAlarm(cluster, 'blip');
      promotions.partition += await falseAlarm(cluster, 'partition');
    }
    let primary = await currentPrimary(cluster);
    for (let run = 0; run < runs; run++) {
      await withWorker(cluster.config(primary, policyEnv(cluster)), async ({ client, taskQueue }) => {
        const writer = startWriter(cluster, 'endpoint', 'bench_writes');
        while (writer.acknowledged.length < 200) await new Promise((r) => setTimeout(r, 20));
        const started = Date.now();
        await (await startFailover(client, { taskQueue, workflowId: `bench-switch-${randomUUID()}` }, { cluster: cluster.name, mode: 'switchover' })).result();
        const after = writer.acknowledged.length;
        while (writer.acknowledged.length < after + 200) await new Promise((r) => setTimeout(r, 20));
        await writer.stop();
        const gap = writer.longestGap(started).ms;
        const present = Number((await cluster.sql<{ n: string }>(other(primary), 'SELECT count(*) AS n FROM bench_writes WHERE id = ANY($1)', [writer.acknowledged]))[0].n);
        lost += writer.acknowledged.length - present;
        downtime.push(gap);
        console.error(`switchover ${run + 1}: longest write gap ${gap} ms, ${writer.acknowledged.length - present} lost, ${writer.errors.length} failed attempts`);
        await cluster.sql('endpoint', 'TRUNCATE bench_writes');
      });
      await cluster.rejoin(primary, other(primary), { extra: policyEnv(cluster), workflowIdPrefix: 'bench-rejoin' });
      primary = other(primary);
    }
  } finally {
    await cluster.down();
  }
  console.log(`| measure | runs | median | max | target |`);
  console.log(`| --- | ---: | ---: | ---: | --- |`);
  const row = (what: string, ms: number[], target: string) =>
    console.log(`| ${what} | ${ms.length} | ${(median(ms) / 1000).toFixed(1)} s | ${(Math.max(...ms) / 1000).toFixed(1)} s | ${target} |`);
  row('RTO, nobody starting it: primary SIGKILLed -> first write acknowledged through PgBouncer', rto.SIGKILL, '≤ 10 s');
  row('RTO, nobody starting it: primary frozen (SIGSTOP) -> first write acknowledged through PgBouncer', rto.SIGSTOP, '≤ 12 s');
  console.log(`| promotions after a 2.5 s blip / a worker cut off from the primary | ${runs} + ${runs} | ${promotions.blip} / ${promotions.partition} | | 0 / 0 |`);
  console.log(
    `| switchover: longest gap between acknowledged writes under load | ${downtime.length} | ${(median(downtime) / 1000).toFixed(2)} s | ${(Math.max(...downtime) / 1000).toFixed(2)} s | ≤ 2 s; lost commits: ${lost} |`,
  );
  process.exit(0);
}

main().catch((err: Error) => {
  console.error(err.stack);
  process.exit(1);
});
