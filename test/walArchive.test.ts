// The WAL archive on the stack's primary, under an archived cluster of each test's own (own slots,
// spool and bucket prefix): commits reach S3 within seconds under a steady write load and the
// chain is gapless; a SIGKILLed pg_receivewal and a SIGKILLed worker are caught up with no gap and
// no segment stored twice with different content; an S3 outage (20 s, through a proxy that stops
// answering, so the shared MinIO keeps serving everyone else) is caught up and the primary's WAL
// kept for the archive shrinks again; bad input and bad state end in one clear error with
// nothing deleted.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { auditWalChain } from '../src/archive/activities/walChain';
import { decompressedDigest } from '../src/archive/activities/zstd';
import { plainBody } from '../src/archive/archiveCrypto';
import { walSegmentKey, parseLsn } from '../src/archive/layout';
import { walArchiveStatus } from '../src/client/archive';
import { startWalArchiver } from '../src/client';
import { connectTarget } from '../src/shared/postgres/connection';
import { createS3Client } from '../src/shared/storage/s3Client';
import { connectClient } from '../src/shared/temporal/connection';
import { withScratchDatabase } from './support/scratchDatabase';
import { stackConfig, withWorker } from './support/stack';
import { startS3Proxy } from './support/s3Proxy';
import { startWorkerProcess, waitUntil } from './support/workerProcess';
import {
  archivedStackCluster,
  archiveState,
  cleanUpArchivedCluster,
  indexAgreesWithObjects,
  isArchived,
  percentile,
  receiverPid,
  retainedForArchive,
  startArchiving,
  startCommitProbe,
  startWalLoad,
  stopArchiving,
  type ArchivedCluster,
} from './support/walArchive';

jest.setTimeout(180_000);

const SEGMENT = 16 * 1024 * 1024;

/** Runs `work` with an archived cluster `name` over the stack's servers, cleaned up after. */
async function withArchivedCluster<T>(name: string, extra: Record<string, string>, work: (archived: ArchivedCluster) => Promise<T>): Promise<T> {
  const archived = archivedStackCluster(name, extra);
  try {
    return await work(archived);
  } finally {
    await cleanUpArchivedCluster(archived, [archived.config.targets.primary, archived.config.targets.standby]);
  }
}

async function currentLsn(archived: ArchivedCluster): Promise<string> {
  const db = await connectTarget(archived.config.targets.primary);
  try {
    return (await db.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  } finally {
    await db.end();
  }
}

test('under a steady write load every commit is in S3 within seconds, and the chain is gapless and byte-identical to the server\'s', async () => {
  await withArchivedCluster('walload', {}, (archived) =>
    withScratchDatabase(archived.config.targets.primary, async (_db, database) =>
      withWorker(archived.config, async ({ client, taskQueue }) => {
        const target = { ...archived.config.targets.primary, database };
        const s3 = createS3Client(archived.config.s3);
        const handle = await startArchiving(client, taskQueue, archived.cluster);
        await waitUntil('the archiver to prepare', async () => (await archiveState(handle)).root !== undefined, 30_000);
        const { root, timeline } = await archiveState(handle);
        const started = parseLsn(await currentLsn(archived));
        const load = startWalLoad(target);
        const probe = startCommitProbe(target, s3, archived.config.s3.bucket, () => ({ root: root!, timeline: timeline! }), 200);
        await sleep(12_000);
        // At least three segments' worth, however busy the machine (a slow one writes less in 12 s).
        await waitUntil('three segments of WAL', async () => parseLsn(await currentLsn(archived)) - started >= 3n * BigInt(SEGMENT), 60_000);
        await load.stop();
        await probe.stop();
        const lags = probe.lags();
        console.log(`walload: ${probe.committed()} probe commits, ${load.commits()} load commits; commit-to-S3 lag p50 ${percentile(lags, 50)} ms, p99 ${percentile(lags, 99)} ms, max ${Math.max(...lags)} ms`);
        expect(probe.unarchived()).toBe(0);
        expect(lags.length).toBe(probe.committed());
        expect(percentile(lags, 99)).toBeLessThan(5_000);

        await stopArchiving(handle);
        const audit = await auditWalChain(archived.config, { cluster: archived.cluster });
        expect(audit.gapless).toBe(true);
        expect(audit.timelines).toHaveLength(1);
        expect(audit.timelines[0].segments).toBeGreaterThanOrEqual(3);
        expect(await indexAgreesWithObjects(s3, archived.config.s3.bucket, root!)).toEqual([]);
        // The newest archived segment, decompressed, is the server's own file.
        const last = audit.timelines[0].lastSegment!;
        const onServer = path.join(archived.config.targets.primary.server!.dataDir, 'pg_wal', last);
        if (existsSync(onServer)) {
          const object = await s3.send(new GetObjectCommand({ Bucket: archived.config.s3.bucket, Key: walSegmentKey(root!, last) }));
          const archivedDigest = await decompressedDigest(plainBody(object.Body as Readable, archived.config.encryption, root!, walSegmentKey(root!, last)));
          expect(archivedDigest).toEqual({ sha256: createHash('sha256').update(readFileSync(onServer)).digest('hex'), rawBytes: SEGMENT });
        }
        s3.destroy();
      }),
    ),
  );
});

test('a SIGKILLed pg_receivewal and a SIGKILLed worker are caught up: no gap, no segment stored twice with different content; a SIGTERMed worker stops at once', async () => {
  await withArchivedCluster('walkill', { PGOPS_TASK_QUEUE: `test-walkill-${randomUUID()}` }, (archived) =>
    withScratchDatabase(archived.config.targets.primary, async (_db, database) => {
      const target = { ...archived.config.targets.primary, database };
      const env = { ...archived.env, PGOPS_ENV_FILE: '/dev/null' };
      let worker = await startWorkerProcess(env);
      const client = await connectClient(archived.config.temporal);
      const s3 = createS3Client(archived.config.s3);
      const load = startWalLoad(target, 64 * 1024, 40);
      try {
        const handle = await startWalArchiver(client, { taskQueue: archived.config.temporal.taskQueue, workflowId: `wal-archive-walkill-${randomUUID().slice(0, 8)}` }, { cluster: archived.cluster });
        await waitUntil('pg_receivewal to run', async () => receiverPid(archived.spoolDir) !== undefined, 60_000);
        await sleep(3_000);

        const first = receiverPid(archived.spoolDir)!;
        process.kill(first, 'SIGKILL');
        await waitUntil('a new pg_receivewal', async () => (receiverPid(archived.spoolDir) ?? first) !== first, 20_000);
        await sleep(3_000);

        // The worker's node process alone (pg_receivewal's parent, not the group): pg_receivewal must die
        // with it (setpriv --pdeathsig), or it would keep streaming and the slot busy.
        const second = receiverPid(archived.spoolDir)!;
        const workerNode = Number(readFileSync(`/proc/${second}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
        process.kill(workerNode, 'SIGKILL');
        await waitUntil('pg_receivewal to die with its worker', async () => receiverPid(archived.spoolDir) !== second, 5_000);
        await worker.kill('SIGKILL');
        await sleep(3_000); // WAL piles up on the server meanwhile
        worker = await startWorkerProcess(env);
        await waitUntil('the next worker\'s pg_receivewal (after the heartbeat timeout)', async () => receiverPid(archived.spoolDir) !== undefined, 60_000);

        await load.stop();
        const end = await currentLsn(archived);
        const { root, timeline } = await archiveState(handle);
        await waitUntil(`the archive to reach ${end}`, () => isArchived(s3, archived.config.s3.bucket, root!, timeline!, end), 30_000);
        const state = await walArchiveStatus(handle);
        expect(state.state.paused).toBeUndefined();
        // SIGTERM (a deploy): the endless archiving round ends at once, not after the worker's
        // 15-minute grace for finite work; pg_receivewal stops with it.
        const stoppingAt = Date.now();
        await worker.kill('SIGTERM');
        expect(Date.now() - stoppingAt).toBeLessThan(30_000);
        expect(receiverPid(archived.spoolDir)).toBeUndefined();
        worker = await startWorkerProcess(env);
        await stopArchiving(handle);

        const audit = await auditWalChain(archived.config, { cluster: archived.cluster });
        expect(audit.timelines[0].missing).toEqual([]);
        expect(audit.gapless).toBe(true);
        expect(await indexAgreesWithObjects(s3, archived.config.s3.bucket, root!)).toEqual([]);
      } finally {
        await load.stop();
        await worker.kill('SIGKILL');
        await client.connection.close();
        s3.destroy();
      }
    }),
  );
});

test('an S3 outage (20 s) is caught up with no gap, and the WAL the primary kept for the archive shrinks again', async () => {
  const proxy = await startS3Proxy(stackConfig().s3.endpoint!);
  try {
    await withArchivedCluster('walminio', { PGOPS_S3_ENDPOINT: proxy.endpoint }, (archived) =>
      withScratchDatabase(archived.config.targets.primary, async (_db, database) =>
        withWorker(archived.config, async ({ client, taskQueue }) => {
          const target = { ...archived.config.targets.primary, database };
          const handle = await startArchiving(client, taskQueue, archived.cluster);
          await waitUntil('the archiver to stream', async () => (await walArchiveStatus(handle)).live?.partialSegment !== undefined, 30_000);
          const load = startWalLoad(target, 64 * 1024, 20);
          await sleep(2_000);
          const before = await retainedForArchive(archived.config.targets.primary, archived.cluster);

          await proxy.down();
          await sleep(20_000);
          const during = await retainedForArchive(archived.config.targets.primary, archived.cluster);
          const live = (await walArchiveStatus(handle)).live;
          await proxy.up();
          await load.stop();
          console.log(`walminio: kept for the archive ${(before / 1e6).toFixed(1)} MB before, ${(during / 1e6).toFixed(1)} MB after 20 s without S3; last error: ${live?.lastError}`);
          expect(during).toBeGreaterThan(before + 2 * SEGMENT);
          expect(live?.lastError).toMatch(/S3 at/);

          const upAt = Date.now();
          await waitUntil('the primary\'s WAL kept for the archive to shrink', async () => (await retainedForArchive(archived.config.targets.primary, archived.cluster)) < 2 * SEGMENT, 60_000);
          const end = await currentLsn(archived);
          const { root, timeline } = await archiveState(handle);
          const s3 = createS3Client(archived.config.s3);
          await waitUntil(`the archive to reach ${end}`, () => isArchived(s3, archived.config.s3.bucket, root!, timeline!, end), 30_000);
          console.log(`walminio: caught up ${Date.now() - upAt} ms after S3 came back`);
          s3.destroy();
          await stopArchiving(handle);
          const audit = await auditWalChain(archived.config, { cluster: archived.cluster });
          expect(audit.gapless).toBe(true);
          expect(audit.timelines[0].segments).toBeGreaterThan(2);
        }),
      ),
    );
  } finally {
    await proxy.close().catch(() => undefined);
  }
});

test('bad input and bad state: an unknown cluster, a server without wal_level=replica, a bucket that refuses writes: one clear error, nothing deleted', async () => {
  const proxy = await startS3Proxy(stackConfig().s3.endpoint!);
  proxy.setMode('refuse-writes');
  try {
    // verify (wal_level=minimal) as the writable node of a cluster.
    await withArchivedCluster('walminimal', { PGOPS_CLUSTER_WALMINIMAL_PRIMARY: 'verify' }, (archived) =>
      withWorker(archived.config, async ({ client, taskQueue }) => {
        const unknown = await startWalArchiver(client, { taskQueue, workflowId: `wal-archive-nosuch-${randomUUID().slice(0, 8)}` }, { cluster: 'nosuchcluster' });
        await expect(unknown.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/unknown cluster "nosuchcluster" \(configured in PGOPS_CLUSTERS: main, walminimal\)/) } });

        const handle = await startArchiving(client, taskQueue, archived.cluster);
        await waitUntil('the archiver to pause', async () => (await archiveState(handle)).paused !== undefined, 30_000);
        const state = await archiveState(handle);
        expect(state.paused!.reason).toMatch(/server verify \(127\.0\.0\.1:\d+\) runs with wal_level=minimal; the WAL archive needs wal_level=replica/);
        expect(state.paused!.reason).toMatch(/pgops wal resume --cluster walminimal/);
        await stopArchiving(handle);
      }),
    );

    await withArchivedCluster('walrefused', { PGOPS_S3_ENDPOINT: proxy.endpoint }, (archived) =>
      withWorker(archived.config, async ({ client, taskQueue }) => {
        // WAL waiting in the spool from an earlier run must survive a bucket that refuses it.
        const db = await connectTarget(archived.config.targets.primary);
        const systemId = (await db.query('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0].id;
        await db.end();
        const spool = path.join(archived.spoolDir, archived.cluster, systemId);
        mkdirSync(spool, { recursive: true });
        writeFileSync(path.join(spool, '000000010000000000000001'), Buffer.alloc(SEGMENT));

        const handle = await startArchiving(client, taskQueue, archived.cluster);
        await waitUntil('the archiver to pause', async () => (await archiveState(handle)).paused !== undefined, 60_000);
        const state = await archiveState(handle);
        expect(state.paused!.reason).toMatch(/refused .*AccessDenied/);
        expect(existsSync(path.join(spool, '000000010000000000000001'))).toBe(true);
        const slots = await connectTarget(archived.config.targets.primary);
        const { rows } = await slots.query("SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name LIKE 'pgops_wal_walrefused%'");
        await slots.end();
        expect(rows[0].n).toBe(2); // still holding the WAL for when the bucket is fixed
        await stopArchiving(handle);
      }),
    );
  } finally {
    await proxy.close().catch(() => undefined);
  }
});
