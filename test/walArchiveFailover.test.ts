// The WAL archive across a failover, on an isolated primary + standby + PgBouncer (ports
// 26200-26202): the primary is SIGKILLed while the archiver streams from it under a write load,
// failoverPromotion promotes the standby, and the archiver follows on its own: a new slot on the
// new primary, the new timeline's history file archived, and a chain with no gap from the first
// timeline through the switch into the second.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { auditWalChain } from '../src/archive/activities/walChain';
import { startFailover } from '../src/client';
import { createS3Client } from '../src/shared/storage/s3Client';
import { createReplicaCluster, startWriter, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';
import { archiveState, isArchived, removePrefix, startArchiving, stopArchiving } from './support/walArchive';

jest.setTimeout(180_000);

let cluster: ReplicaCluster;
const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'pgops-wal-failover-'));
const prefix = `test-wal/failover-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  cluster = await createReplicaCluster('walfo', 26200);
  await cluster.sql('pg1', 'CREATE TABLE acked (id int PRIMARY KEY)');
  const config = cluster.config('pg1');
  const s3 = createS3Client(config.s3);
  await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key: `${config.s3.prefix}/topology/${cluster.name}.json` })).finally(() => s3.destroy());
});

afterAll(async () => {
  await cluster?.down();
  const config = cluster.config('pg1', { PGOPS_S3_PREFIX: prefix });
  const s3 = createS3Client(config.s3);
  await removePrefix(s3, config.s3.bucket, prefix).finally(() => s3.destroy());
  rmSync(spoolDir, { recursive: true, force: true });
});

test('after a failover the archiver follows the new primary: the chain continues on the new timeline with no gap', async () => {
  const config = cluster.config('pg1', { PGOPS_WAL_SPOOL_DIR: spoolDir, PGOPS_S3_PREFIX: prefix, PGOPS_WORKER_SHUTDOWN_GRACE: '10 seconds' });
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startArchiving(client, taskQueue, cluster.name);
    await waitUntil('the archiver to prepare', async () => (await archiveState(handle)).root !== undefined, 30_000);
    const writer = startWriter(cluster, 'endpoint', 'acked');
    for (let i = 0; i < 3; i++) {
      await sleep(700);
      await cluster.sql('pg1', 'SELECT pg_switch_wal()');
    }
    await sleep(1_500);

    cluster.signal('pg1', 'SIGKILL');
    const failover = await (await startFailover(client, { taskQueue, workflowId: `walfo-failover-${randomUUID().slice(0, 8)}` }, { cluster: cluster.name, reason: 'archive test' })).result();
    expect(failover.outcome).toBe('promoted');
    expect(failover.newPrimary).toBe('pg2');

    await waitUntil('the archiver to follow pg2', async () => (await archiveState(handle)).primary === 'pg2', 60_000);
    for (let i = 0; i < 2; i++) {
      await sleep(700);
      await cluster.sql('pg2', 'SELECT pg_switch_wal()');
    }
    await writer.stop();
    const [{ lsn }] = await cluster.sql<{ lsn: string }>('pg2', 'SELECT pg_current_wal_lsn()::text AS lsn');
    const { root } = await archiveState(handle);
    const s3 = createS3Client(config.s3);
    await waitUntil(`the archive to reach ${lsn} on timeline 2`, () => isArchived(s3, config.s3.bucket, root!, 2, lsn), 30_000);
    s3.destroy();
    const state = await archiveState(handle);
    await stopArchiving(handle);

    const audit = await auditWalChain(config, { cluster: cluster.name });
    console.log(`walfo: ${writer.acknowledged.length} writes acknowledged; ${JSON.stringify(audit.timelines.map((t) => ({ tli: t.timeline, first: t.firstSegment, last: t.lastSegment, parent: t.parent, missing: t.missing, partial: t.partial })))}`);
    expect(state.gaps).toEqual([]);
    expect(audit.headTimeline).toBe(2);
    expect(audit.missingHistories).toEqual([]);
    const [tl1, tl2] = audit.timelines;
    expect(tl1.timeline).toBe(1);
    expect(tl2.parent).toEqual({ timeline: 1, switchLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/) });
    expect(tl1.segments).toBeGreaterThanOrEqual(3);
    expect(tl2.segments).toBeGreaterThanOrEqual(2);
    expect(audit.gapless).toBe(true);
  });
});
