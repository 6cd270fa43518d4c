// Synchronous mode on an isolated primary + standby (ports 26345-26347): with only the archiver's
// application_name in synchronous_standby_names, every commit the primary acknowledged is in the
// archive after the primary is SIGKILLed: its COMMIT record, read by pg_waldump from the archived
// objects (complete segments, and the partial up to its valid-to-lsn only).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client as PgClient } from 'pg';
import { archiveSlotName } from '../src/archive/contract';
import { clusterVariable } from '../src/shared/config';
import { createS3Client } from '../src/shared/storage/s3Client';
import { createReplicaCluster, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';
import { archivedCommits, archiveState, removePrefix, startArchiving, stopArchiving } from './support/walArchive';

jest.setTimeout(120_000);

let cluster: ReplicaCluster;
const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'pgops-wal-sync-'));
const prefix = `test-wal/sync-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  cluster = await createReplicaCluster('walsync', 26345);
  await cluster.sql('pg1', 'CREATE TABLE acked (id int PRIMARY KEY)');
});

afterAll(async () => {
  await cluster?.down();
  const config = cluster.config('pg1', { PGOPS_S3_PREFIX: prefix });
  const s3 = createS3Client(config.s3);
  await removePrefix(s3, config.s3.bucket, prefix).finally(() => s3.destroy());
  rmSync(spoolDir, { recursive: true, force: true });
});

test('synchronous mode: after a SIGKILL of the primary, every acknowledged commit is in the archive', async () => {
  const config = cluster.config('pg1', {
    PGOPS_WAL_SPOOL_DIR: spoolDir,
    PGOPS_S3_PREFIX: prefix,
    PGOPS_WORKER_SHUTDOWN_GRACE: '10 seconds',
    [clusterVariable(cluster.name, 'WAL_ARCHIVE')]: 'sync',
  });
  const appName = archiveSlotName(cluster.name);
  await withWorker(config, async ({ client, taskQueue }) => {
    const handle = await startArchiving(client, taskQueue, cluster.name);
    await waitUntil('pg_receivewal to stream', async () => (await cluster.sql('pg1', 'SELECT 1 FROM pg_stat_replication WHERE application_name = $1', [appName])).length === 1, 30_000);
    // Only the archiver: an acknowledged commit is one the archive host has fsynced, not the standby.
    await cluster.sql('pg1', `ALTER SYSTEM SET synchronous_standby_names = '${appName}'`);
    await cluster.sql('pg1', 'SELECT pg_reload_conf()');
    await waitUntil('the archiver to be the synchronous standby', async () => {
      const rows = await cluster.sql<{ sync_state: string }>('pg1', 'SELECT sync_state FROM pg_stat_replication WHERE application_name = $1', [appName]);
      return rows[0]?.sync_state === 'sync';
    }, 10_000);
    const { root, timeline } = await archiveState(handle);

    // Two writers, each remembering the transaction id of every commit the server acknowledged.
    const acknowledged: string[] = [];
    let running = true;
    const writer = async (first: number) => {
      const db: PgClient = await cluster.connect('pg1');
      db.on('error', () => undefined);
      for (let id = first; running; id += 2) {
        const row = await db.query('INSERT INTO acked (id) VALUES ($1) RETURNING pg_current_xact_id()::text AS xid', [id]).then((r) => r.rows[0] as { xid: string }, () => undefined);
        if (!row) break;
        acknowledged.push(row.xid);
      }
      void db.end().catch(() => undefined);
    };
    const writers = [writer(1), writer(2)];
    await sleep(3_000);
    const before = acknowledged.length;
    for (const pid of cluster.processes('pg1')) process.kill(pid, 'SIGKILL');
    running = false;
    await Promise.all(writers);
    expect(before).toBeGreaterThan(50);

    // The archive host still has what pg_receivewal fsynced; the archiver puts it up without the primary.
    let commits = await archivedCommits(config, root!, timeline!);
    const deadline = Date.now() + 20_000;
    while (acknowledged.some((x) => !commits.xids.has(x)) && Date.now() < deadline) {
      await sleep(500);
      commits = await archivedCommits(config, root!, timeline!);
    }
    const missing = acknowledged.filter((x) => !commits.xids.has(x));
    console.log(`walsync: ${acknowledged.length} commits acknowledged, ${commits.xids.size} COMMIT records in ${commits.segments} archived segment(s), partial valid to ${commits.validTo}; missing ${missing.length}`);
    expect(missing).toEqual([]);
    await stopArchiving(handle);
  });
});
