// Point-in-time restore benchmark: in one run, on the seeded CS Arena database (scale 10 ≈ 1 GB)
// plus at least --wal-mb of WAL from steady writes archived by the real walArchiver, compare the
// time until the restored instance is paused at the target (pointInTimeRestore: fetch and verify
// the base backup, replay the WAL through the wal-fetch program's read-ahead) against
//   1. the script: gunzip -c dump.sql.gz | psql into a fresh database
//   2. guardedRestore of the nightly logical backup (mode new-database, approved at once)
// and WAL replay speed against the speed the primary wrote that WAL. Results to docs/benchmarks.md.
//
// Then the same from an incremental base backup taken after the load, to a moment --after-mb of
// WAL later: how a base backup schedule bounds the replay.
//
//   npx tsx bench/pitr.ts [--scale 10] [--wal-mb 1024] [--after-mb 64]     (the local stack must be up)
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import execa from 'execa';
import { withTarget } from '../src/shared/postgres/connection';
import { libpqEnv } from '../src/shared/postgres/pgTools';
import { parseLsn } from '../src/archive/layout';
import { connectClient, decidePointInTimeRestore, decideRestore, pitrStatus, restoreStatus, startBackup, startBaseBackup, startPointInTimeRestore, startRestore } from '../src/client';
import type { TargetConfig } from '../src/shared/config';
import { targetUrl } from '../test/support/backupFixture';
import { archivedStackCluster, archiveState, cleanUpArchivedCluster, isArchived, startArchiving, stopArchiving } from '../test/support/walArchive';
import { startWorkerProcess } from '../test/support/workerProcess';
import { createS3Client } from '../src/shared/storage/s3Client';
import { describePhysicalArchive } from '../src/archive/catalog';
import { instancePaths } from '../src/pitr/activities/instance';
import type { FetchedBaseBackup } from '../src/pitr/activities/fetchBaseBackup';
import { describeCpu, stackServers } from './cpu';
import { benchTarget, intoScratch, recordBenchmarkRun, scriptRestore, seconds } from './support';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '10' }, 'wal-mb': { type: 'string', default: '1024' }, 'after-mb': { type: 'string', default: '64' } } });
const scale = Number(values.scale);
const walBytes = Number(values['wal-mb']) * 1024 * 1024;
const afterBytes = Number(values['after-mb']) * 1024 * 1024;
const INSTANCE_PORT = 26338;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Steady writes into a scratch table of the bench database until `bytes` of WAL are written; the rate the primary produced them at. */
async function writeWal(target: TargetConfig, bytes: number): Promise<{ bytes: number; seconds: number }> {
  return withTarget(target, async (c) => {
    await c.query('DROP TABLE IF EXISTS pgops_bench_pitr_load');
    await c.query('CREATE TABLE pgops_bench_pitr_load (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)');
    const lsn = async () => parseLsn((await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);
    const from = await lsn();
    const started = Date.now();
    while ((await lsn()) - from < BigInt(bytes)) {
      await c.query(`INSERT INTO pgops_bench_pitr_load (payload) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 20000) g`);
      await c.query(`UPDATE pgops_bench_pitr_load SET payload = md5(payload) WHERE id % 97 = 0`);
    }
    return { bytes: Number((await lsn()) - from), seconds: seconds(started) };
  });
}

function phasesOf(fetched: FetchedBaseBackup): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const { objects, combine, verify } = fetched.phaseMs;
  return [`download + open + extract ${s(objects)}`, ...(combine !== undefined ? [`pg_combinebackup ${s(combine)}`] : []), `pg_verifybackup ${s(verify)}`].join(', ');
}

async function main(): Promise<void> {
  await execa('npm', ['run', '--silent', 'build'], { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const target = await benchTarget(scale);
  const work = mkdtempSync(path.join(tmpdir(), 'pgops-bench-pitr-'));
  const archived = archivedStackCluster(`benchpitr${randomUUID().slice(0, 4)}`, {
    PGOPS_TARGETS: 'primary,standby,verify,bench',
    PGOPS_TARGET_BENCH_URL: targetUrl(target),
    PGOPS_STAGING_DIR: path.join(work, 'staging'),
    PGOPS_RESTORE_APPROVERS: '',
  });
  const { config, cluster } = archived;
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...archived.env, PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
  const client = await connectClient(config.temporal);
  const instanceDir = `/var/lib/pgops/bench-pitr-${randomUUID().slice(0, 8)}`;
  const archiver = await startArchiving(client, taskQueue, cluster);
  const s3 = createS3Client(config.s3);
  try {
    await new Promise<void>((resolve, reject) => {
      const poll = async () => ((await archiveState(archiver)).root ? resolve() : setTimeout(() => poll().catch(reject), 500));
      void poll().catch(reject);
    });
    const base = await (await startBaseBackup(client, { taskQueue }, { cluster, mode: 'full' })).result();
    console.error(`base backup ${base.backupId}: ${(base.record.sizeBytes / 1e6).toFixed(0)} MB stored`);
    const produced = await writeWal(target, walBytes);
    console.error(`wrote ${(produced.bytes / 1e9).toFixed(2)} GB of WAL in ${produced.seconds.toFixed(1)} s`);
    /** A moment to restore to (then a row after it), once the archive holds the WAL up to there. */
    const noteTarget = async (): Promise<string> => {
      const [{ at }] = (await withTarget(target, (c) => c.query<{ at: string }>('SELECT clock_timestamp()::text AS at'))).rows;
      await withTarget(target, (c) => c.query('INSERT INTO pgops_bench_pitr_load (payload) VALUES ($1)', ['after the target']));
      const [{ lsn, walfile }] = (await withTarget(target, (c) => c.query<{ lsn: string; walfile: string }>('SELECT pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS walfile'))).rows;
      const root = (await archiveState(archiver)).root!;
      while (!(await isArchived(s3, config.s3.bucket, root, parseInt(walfile.slice(0, 8), 16), lsn))) await sleep(500);
      // The growing partial runs ahead of a backlog of complete segments after a burst: wait for the chain to close.
      for (;;) {
        const window = (await describePhysicalArchive(s3, config.s3, config.encryption, cluster)).window;
        if (window?.from && window.to && parseLsn(window.to.lsn) >= parseLsn(lsn)) break;
        await sleep(1_000);
      }
      return at;
    };
    /** pointInTimeRestore until it waits for approval at the target (then rejected: the instance goes). */
    const pitrUntilPaused = async (at: string) => {
      const begun = Date.now();
      const pitr = await startPointInTimeRestore(
        client,
        { taskQueue },
        { cluster, target: { kind: 'time', time: at }, instance: { dataDir: instanceDir, port: INSTANCE_PORT }, mode: 'side', requestedBy: 'bench', reason: 'benchmark' },
      );
      let status = await pitrStatus(client, pitr.workflowId);
      while (status.stage !== 'awaiting-approval') {
        if (status.stage === 'failed') throw new Error(`pointInTimeRestore failed: ${status.error}`);
        await sleep(100);
        status = await pitrStatus(client, pitr.workflowId);
      }
      const paused = seconds(begun);
      // The fetch step's own account of its phases, beside the instance until it is removed.
      const fetched = JSON.parse(readFileSync(instancePaths({ dataDir: instanceDir, port: INSTANCE_PORT }).restored, 'utf8')) as FetchedBaseBackup;
      await decidePointInTimeRestore(client, pitr.workflowId, 'reject', { approver: 'bench-approver', reason: 'benchmark over' });
      await pitr.result();
      return { paused, report: status.report!, chain: status.recovery?.backup.chain ?? [], phases: phasesOf(fetched) };
    };
    const at = await noteTarget();

    // What the cron job leaves behind and what nightlyBackup uploads: made first, not timed.
    const dumpGz = path.join(work, 'dump.sql.gz');
    const dump = execa(path.join(config.pgBinDir, 'pg_dump'), [], { env: libpqEnv(target), buffer: false });
    await Promise.all([dump, execa('gzip', [], { stdin: dump.stdout!, stdout: openSync(dumpGz, 'w') })]);
    const logical = await (await startBackup(client, { taskQueue }, { target: 'bench', verify: 'list' })).result();

    const servers = stackServers(config.targets);
    const scriptCpu = await intoScratch(target, servers, (scratch) => scriptRestore(config.pgBinDir, target, dumpGz, scratch));
    console.error(`gunzip | psql: ${scriptCpu.wallSeconds.toFixed(1)} s`);

    let started = Date.now();
    const restore = await startRestore(client, { taskQueue }, { target: 'bench', backup: logical.backupId, mode: 'new-database', newDatabase: 'pgops_bench_pitr_logical', requestedBy: 'bench', jobs: 2 });
    while ((await restoreStatus(client, restore.workflowId)).stage !== 'awaiting-approval') await sleep(100);
    await decideRestore(client, restore.workflowId, 'approve', { approver: 'bench-approver', reason: 'benchmark' });
    await restore.result();
    const guarded = seconds(started);
    await withTarget({ ...target, database: 'postgres' }, (c) => c.query('DROP DATABASE IF EXISTS pgops_bench_pitr_logical WITH (FORCE)'));
    console.error(`guardedRestore: ${guarded.toFixed(1)} s`);

    // The restores above wrote WAL too; the archive's catching up is not the restore's time.
    while (!(await describePhysicalArchive(s3, config.s3, config.encryption, cluster)).window?.from) await sleep(1_000);
    const { paused, report, phases } = await pitrUntilPaused(at);
    console.error(`pointInTimeRestore paused at the target after ${paused.toFixed(1)} s (fetch ${report.fetchMs} ms, replay ${report.replayMs} ms)`);

    // What a base backup schedule buys: the next incremental (taken after the load, as an hourly
    // schedule would), then --after-mb more WAL, and a restore to the end of that.
    started = Date.now();
    const incremental = await (await startBaseBackup(client, { taskQueue }, { cluster, mode: 'auto' })).result();
    const incrementalSeconds = seconds(started);
    const after = await writeWal(target, afterBytes);
    const near = await pitrUntilPaused(await noteTarget());
    console.error(`from the incremental ${incremental.backupId} (${incrementalSeconds.toFixed(1)} s): paused after ${near.paused.toFixed(1)} s`);

    const size = await withTarget(target, async (c) => Number((await c.query('SELECT pg_database_size(current_database()) AS b')).rows[0].b));
    const script = scriptCpu.wallSeconds;
    const replayRate = produced.bytes / (report.replayMs / 1000);
    const produceRate = produced.bytes / produced.seconds;
    const section = [
      `## Point-in-time restore (${new Date().toISOString().slice(0, 10)}, scale ${scale}, database ${(size / 1e9).toFixed(2)} GB, ${(produced.bytes / 1e9).toFixed(2)} GB of WAL)`,
      '',
      `Command: \`npx tsx bench/pitr.ts --scale ${scale} --wal-mb ${values['wal-mb']} --after-mb ${values['after-mb']}\` (stack up; compiled worker and wal-fetch; 2-core machine, shared and noisy: compare ratios)`,
      '',
      '| run | wall s | vs gunzip \\| psql | notes |',
      '| --- | ---: | ---: | --- |',
      `| old script: gunzip -c dump.sql.gz \\| psql into a fresh database | ${script.toFixed(1)} | 1.00× | the bench database only |`,
      `| guardedRestore --mode new-database, approved at once | ${guarded.toFixed(1)} | ${(guarded / script).toFixed(2)}× | the bench database only |`,
      `| pointInTimeRestore to "paused at the target", the full base backup before the load | ${paused.toFixed(1)} | ${(paused / script).toFixed(2)}× (${(script / paused).toFixed(1)}× faster) | the whole cluster (${(base.record.sizeBytes / 1e6).toFixed(0)} MB stored): fetch ${(report.fetchMs / 1000).toFixed(1)} s (${phases}), replay of ${(produced.bytes / 1e9).toFixed(2)} GB WAL ${(report.replayMs / 1000).toFixed(1)} s (${report.segmentsFetched} segments fetched) |`,
      `| pointInTimeRestore from the incremental taken after the load (${incremental.record.kind}, ${(incremental.record.sizeBytes / 1e6).toFixed(0)} MB stored, ${incrementalSeconds.toFixed(1)} s to take) to a moment ${(after.bytes / 1e6).toFixed(0)} MB of WAL later | ${near.paused.toFixed(1)} | ${(near.paused / script).toFixed(2)}× (${(script / near.paused).toFixed(1)}× faster) | chain ${near.chain.length} backup(s): fetch ${(near.report.fetchMs / 1000).toFixed(1)} s (${near.phases}), replay ${(near.report.replayMs / 1000).toFixed(1)} s (${near.report.segmentsFetched} segments fetched) |`,
      '',
      `WAL: the primary wrote it at ${(produceRate / 1e6).toFixed(1)} MB/s (steady INSERT/UPDATE batches, ${produced.seconds.toFixed(1)} s); replay consumed it at ${(replayRate / 1e6).toFixed(1)} MB/s (${(replayRate / produceRate).toFixed(2)}× the primary's rate; replay time includes the instance's start and the fetches).`,
      '',
      `Where the CPU went for gunzip \\| psql: ${describeCpu(scriptCpu)}.`,
      '',
    ].join('\n');
    console.log(section);
    recordBenchmarkRun('Point-in-time restore', 'bench/pitr.ts', section);
  } finally {
    await withTarget(target, (c) => c.query('DROP TABLE IF EXISTS pgops_bench_pitr_load')).catch(() => undefined);
    await stopArchiving(archiver);
    await client.connection.close();
    await worker.kill('SIGTERM');
    s3.destroy();
    await cleanUpArchivedCluster(archived, [config.targets.primary, config.targets.standby]);
    rmSync(instanceDir, { recursive: true, force: true });
    rmSync(`${instanceDir}.pitr`, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
  process.exit(0);
}

void main();
