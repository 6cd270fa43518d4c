// Failover benchmark on an isolated primary + standby + PgBouncer (never the shared stack's servers):
//   RTO: SIGKILL the primary, start failoverPromotion at once (as a health check would), and
//        measure from the kill to the first write acknowledged through PgBouncer; default probe
//        settings (6 s window, 1 s interval, 1 s timeout). The old primary is rejoined between runs.
//   switchover downtime: the longest gap between acknowledged writes through PgBouncer while a
//        planned switchover runs under a steady write load, and the commits lost (must be 0).
//
//   npx tsx bench/failover.ts [--runs 5]        (Temporal and MinIO of the local stack must be up)
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { startFailover } from '../src/client';
import { clusterVariable } from '../src/config';
import { createReplicaCluster, startWriter, type NodeName, type ReplicaCluster } from '../test/support/replicaCluster';
import { withWorker } from '../test/support/stack';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
// The policy defaults, restated over the test cluster's shorter window.
const DEFAULT_POLICY = { CONFIRM_WINDOW: '6s', REPLAY_CATCHUP_TIMEOUT: '10s' };

const other = (node: NodeName): NodeName => (node === 'pg1' ? 'pg2' : 'pg1');

function policyEnv(cluster: ReplicaCluster): Record<string, string> {
  return Object.fromEntries(Object.entries(DEFAULT_POLICY).map(([k, v]) => [clusterVariable(cluster.name, k), v]));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const cluster = await createReplicaCluster('bench-fo', 26140);
  const rto: number[] = [];
  const downtime: number[] = [];
  let lost = 0;
  try {
    let primary: NodeName = 'pg1';
    await cluster.sql(primary, 'CREATE TABLE bench_writes (id int PRIMARY KEY)');
    for (let run = 0; run < runs; run++) {
      await withWorker(cluster.config(primary, policyEnv(cluster)), async ({ client, taskQueue }) => {
        await cluster.sql('endpoint', 'TRUNCATE bench_writes');
        const writer = startWriter(cluster, 'endpoint', 'bench_writes');
        while (writer.acknowledged.length < 20) await new Promise((r) => setTimeout(r, 20));
        const before = writer.acknowledged.length;
        const killedAt = Date.now();
        cluster.signal(primary, 'SIGKILL');
        const handle = await startFailover(client, { taskQueue, workflowId: `bench-fo-${randomUUID()}` }, { cluster: cluster.name });
        const result = await handle.result();
        while (writer.acknowledged.length <= before + 1) await new Promise((r) => setTimeout(r, 5));
        await writer.stop();
        // The first write acknowledged after the outage the kill caused, on the writer's clock.
        const recoveredAt = writer.longestGap(killedAt).endedAt;
        rto.push(recoveredAt - killedAt);
        console.error(`run ${run + 1}: RTO ${recoveredAt - killedAt} ms (${result.steps.map((s) => `${s.step} ${s.ms}`).join(', ')})`);
      });
      await cluster.rejoin(primary, other(primary), { extra: policyEnv(cluster), workflowIdPrefix: 'bench-rejoin' });
      primary = other(primary);
    }
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
  console.log(`| RTO: primary SIGKILLed -> first write acknowledged through PgBouncer | ${rto.length} | ${(median(rto) / 1000).toFixed(1)} s | ${(Math.max(...rto) / 1000).toFixed(1)} s | ≤ 10 s |`);
  console.log(
    `| switchover: longest gap between acknowledged writes under load | ${downtime.length} | ${(median(downtime) / 1000).toFixed(2)} s | ${(Math.max(...downtime) / 1000).toFixed(2)} s | ≤ 2 s; lost commits: ${lost} |`,
  );
  process.exit(0);
}

main().catch((err: Error) => {
  console.error(err.stack);
  process.exit(1);
});
