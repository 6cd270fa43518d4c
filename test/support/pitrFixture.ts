// What the point-in-time restore tests share: an isolated primary + standby + PgBouncer with a
// table the tests write to and delete from, a prefix of its own in the stack's bucket, a worker
// that keeps running across tests, the cluster's WAL archived by the real walArchiver from the
// start, and base backups taken by the baseBackup workflow.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectsCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { startBaseBackup } from '../../src/client';
import type { BaseBackupResult } from '../../src/archive/contract';
import { describePhysicalArchive, listKeys } from '../../src/archive/catalog';
import { archiveRoot, walSegmentKey } from '../../src/archive/layout';
import type { WorkerConfig } from '../../src/shared/config';
import { connectClient } from '../../src/shared/temporal/connection';
import { connectTarget } from '../../src/shared/postgres/connection';
import { createS3Client } from '../../src/shared/storage/s3Client';
import { createWorker } from '../../src/worker';
import { createReplicaCluster, type ReplicaCluster } from './replicaCluster';
import { archiveState, isArchived, startArchiving, stopArchiving } from './walArchive';
import { waitUntil } from './workerProcess';
import { workflowBundle } from './stack';

export interface PitrFixture {
  cluster: ReplicaCluster;
  config: WorkerConfig;
  prefix: string;
  client: Client;
  taskQueue: string;
  systemIdentifier: string;
  root: string;
  baseBackup(mode?: 'full' | 'auto'): Promise<BaseBackupResult>;
  /** Makes every WAL position written so far archived (see above). */
  archiveWal(options?: { switchSegment?: boolean }): Promise<void>;
  /** The rows of the test table on a server (the live primary, or a restored instance's port). */
  rows(port?: number): Promise<number[]>;
  sql<T = Record<string, unknown>>(text: string, values?: unknown[]): Promise<T[]>;
  down(): Promise<void>;
}

export const TEST_TABLE = 'pitr_rows';

export async function createPitrFixture(name: string, basePort: number, extraEnv: Record<string, string> = {}): Promise<PitrFixture> {
  const cluster = await createReplicaCluster(name, basePort);
  const scratch = await mkdtemp(path.join(tmpdir(), `pgops-${name}-`));
  const prefix = `test-pitr/${name}-${randomUUID().slice(0, 8)}`;
  const config = cluster.config('pg1', {
    PGOPS_S3_PREFIX: prefix,
    PGOPS_STAGING_DIR: path.join(scratch, 'staging'),
    PGOPS_WAL_SPOOL_DIR: path.join(scratch, 'spool'),
    PGOPS_WORKER_SHUTDOWN_GRACE: '5 seconds',
    ...extraEnv,
  });
  const taskQueue = `test-${name}-${randomUUID()}`;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  let client: Client | undefined;
  try {
    ({ worker } = await createWorker(config, { taskQueue, workflowBundle: await workflowBundle() }));
    running = worker.run();
    client = await connectClient(config.temporal);
  } catch (err) {
    await cluster.down();
    throw err;
  }
  await cluster.sql('pg1', `CREATE TABLE ${TEST_TABLE} (id int PRIMARY KEY, note text NOT NULL)`);
  await cluster.sql('pg1', `CREATE TABLE pitr_filler (id bigint PRIMARY KEY, payload text NOT NULL)`);
  await cluster.sql('pg1', `INSERT INTO pitr_filler SELECT g, md5(g::text) FROM generate_series(1, 20000) g`);
  const [{ system_identifier: systemIdentifier }] = await cluster.sql<{ system_identifier: string }>('pg1', 'SELECT system_identifier::text FROM pg_control_system()');
  const root = archiveRoot(config.s3, cluster.name, systemIdentifier);

  const archiver = await startArchiving(client, taskQueue, cluster.name);
  await waitUntil('the WAL archiver to stream', async () => (await archiveState(archiver)).root !== undefined, 60_000);

  /** Waits until the WAL written so far is in the archive (the growing partial, unless `switchSegment` completes it). */
  async function archiveWal(options: { switchSegment?: boolean } = {}): Promise<void> {
    if (options.switchSegment) await cluster.sql('pg1', 'SELECT pg_switch_wal()');
    const [{ lsn, timeline }] = await cluster.sql<{ lsn: string; timeline: string }>('pg1', `SELECT pg_current_wal_lsn()::text AS lsn, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS timeline`);
    const s3 = createS3Client(config.s3);
    try {
      const complete = (await cluster.sql<{ segment: string }>('pg1', `SELECT pg_walfile_name(pg_current_wal_lsn() - 1) AS segment`))[0].segment;
      await waitUntil(`WAL up to ${lsn} to be archived`, async () =>
        options.switchSegment
          ? (await listKeys(s3, config.s3.bucket, walSegmentKey(root, complete))).length === 1
          : isArchived(s3, config.s3.bucket, root, parseInt(timeline, 16), lsn), 60_000);
      // After a burst the growing partial runs ahead of complete segments still on their way up.
      await waitUntil('the archive to have no hole up to its head', async () => {
        const window = (await describePhysicalArchive(s3, config.s3, config.encryption, cluster.name)).window;
        return window?.from !== undefined || window?.backups.length === 0;
      }, 60_000);
    } finally {
      s3.destroy();
    }
  }

  return {
    cluster,
    config,
    prefix,
    client,
    taskQueue,
    systemIdentifier,
    root,
    async baseBackup(mode: 'full' | 'auto' = 'full') {
      const handle = await startBaseBackup(client!, { taskQueue, workflowId: `test-${name}-base-${randomUUID()}` }, { cluster: cluster.name, mode });
      return handle.result();
    },
    archiveWal,
    async rows(port?: number): Promise<number[]> {
      const target = port ? { ...cluster.target('pg1'), port } : cluster.target('pg1');
      const db = await connectTarget(target, { timeoutMs: 5_000 });
      try {
        const { rows } = await db.query<{ id: number }>(`SELECT id FROM ${TEST_TABLE} ORDER BY id`);
        return rows.map((r) => r.id);
      } finally {
        await db.end();
      }
    },
    sql: (text, values) => cluster.sql('pg1', text, values),
    async down() {
      await stopArchiving(archiver);
      worker?.shutdown();
      await running?.catch(() => undefined);
      await client?.connection.close();
      const s3 = createS3Client(config.s3);
      const keys = await listKeys(s3, config.s3.bucket, `${prefix}/`);
      for (let i = 0; i < keys.length; i += 500) {
        await s3.send(new DeleteObjectsCommand({ Bucket: config.s3.bucket, Delete: { Objects: keys.slice(i, i + 500).map((Key) => ({ Key })) } }));
      }
      s3.destroy();
      await cluster.down();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

/** The archived segment objects of the root, for the corruption test. */
export async function archivedSegmentKeys(fixture: PitrFixture): Promise<string[]> {
  const s3 = createS3Client(fixture.config.s3);
  try {
    return (await listKeys(s3, fixture.config.s3.bucket, `${fixture.root}/wal/`)).filter((k) => /\/[0-9A-F]{24}\.zst$/.test(k)).sort();
  } finally {
    s3.destroy();
  }
}

export async function objectMetadata(fixture: PitrFixture, key: string): Promise<Record<string, string>> {
  const s3 = createS3Client(fixture.config.s3);
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket: fixture.config.s3.bucket, Key: key }))).Metadata ?? {};
  } finally {
    s3.destroy();
  }
}

/** Where restored instances live in the tests: beside the cluster's own data directories (removed with them). */
export function instanceDir(fixture: PitrFixture, name: string): string {
  return path.join(path.dirname(fixture.cluster.dataDir.pg1), `restored-${name}`);
}

export function instanceExists(dir: string): boolean {
  return existsSync(dir) || existsSync(`${dir}.pitr`);
}
