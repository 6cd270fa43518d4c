// WAL archive benchmark on the stack's primary, with an archived cluster of its own (own slots,
// spool and bucket prefix, removed afterwards):
//   under load: pgbench (TPC-B-like, 4 clients, rate-limited to a steady --tps) in a scratch
//        database, plus a probe committing every 200 ms: commit-to-S3 lag p50/p99 (the time until
//        the commit's WAL position is in S3, as a complete segment or the growing partial), WAL
//        generation rate against archive throughput, bytes stored.
//   quiet: the probe alone (a segment would take hours to fill): the same lag.
//
//   npx tsx bench/walArchive.ts [--seconds 30] [--tps 400]   (the local stack must be up)
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { auditWalChain } from '../src/archive/activities/walChain';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { walArchiveStatus } from '../src/client/archive';
import { connectTarget } from '../src/shared/postgres/connection';
import { createS3Client } from '../src/shared/storage/s3Client';
import { parseLsn } from '../src/archive/layout';
import { withScratchDatabase } from '../test/support/scratchDatabase';
import { withWorker } from '../test/support/stack';
import { waitUntil } from '../test/support/workerProcess';
import { archivedStackCluster, archiveState, cleanUpArchivedCluster, isArchived, percentile, startArchiving, startCommitProbe, stopArchiving } from '../test/support/walArchive';
import { recordBenchmarkRun } from './support';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' }, tps: { type: 'string', default: '400' } } });
const seconds = Number(values.seconds);
const tps = Number(values.tps);

async function lsnNow(target: Parameters<typeof connectTarget>[0]): Promise<bigint> {
  const db = await connectTarget(target);
  try {
    return parseLsn((await db.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);
  } finally {
    await db.end();
  }
}

async function main(): Promise<void> {
  const archived = archivedStackCluster('walbench');
  const s3 = createS3Client(archived.config.s3);
  const rows: string[][] = [];
  try {
    await withScratchDatabase(archived.config.targets.primary, async (_db, database) =>
      withWorker(archived.config, async ({ client, taskQueue }) => {
        const target = { ...archived.config.targets.primary, database };
        await runPgTool(archived.config, 'pgbench', ['-i', '-s', '5', '-q'], target);
        const handle = await startArchiving(client, taskQueue, archived.cluster);
        await waitUntil('the archiver to prepare', async () => (await archiveState(handle)).root !== undefined, 30_000);
        const { root, timeline } = await archiveState(handle);
        await sleep(5_000); // pgbench -i's WAL goes up first
        const where = () => ({ root: root!, timeline: timeline! });

        for (const phase of ['steady', 'full', 'quiet'] as const) {
          const startLsn = await lsnNow(target);
          const started = Date.now();
          const probe = startCommitProbe(target, s3, archived.config.s3.bucket, where, 200);
          const rate = phase === 'steady' ? ['-R', String(tps)] : [];
          const pgbench = phase === 'quiet' ? undefined : runPgTool(archived.config, 'pgbench', ['-c', '4', '-j', '2', '-T', String(seconds), ...rate, '-n'], target);
          if (pgbench) await pgbench;
          else await sleep(seconds * 1000);
          const endLsn = await lsnNow(target);
          const wal = Number(endLsn - startLsn);
          const elapsed = (Date.now() - started) / 1000;
          const end = `${(endLsn >> 32n).toString(16).toUpperCase()}/${(endLsn & 0xffffffffn).toString(16).toUpperCase()}`;
          await waitUntil('the archive to catch up', () => isArchived(s3, archived.config.s3.bucket, root!, timeline!, end), 120_000);
          const caughtUp = (Date.now() - started) / 1000;
          await probe.stop();
          const lags = probe.lags();
          const tpsDone = pgbench ? Math.round(Number(/tps = ([\d.]+)/.exec((await pgbench).stdout)?.[1] ?? NaN)) : 0;
          rows.push([
            phase === 'steady' ? `pgbench -c4 -R ${tps} (${tpsDone} tps)` : phase === 'full' ? `pgbench -c4 unthrottled (${tpsDone} tps)` : 'quiet (probe only)',
            String(lags.length),
            String(percentile(lags, 50)),
            String(percentile(lags, 99)),
            String(Math.max(...lags)),
            (wal / 1e6 / elapsed).toFixed(2),
            (wal / 1e6 / caughtUp).toFixed(2),
            (caughtUp - elapsed).toFixed(1),
          ]);
          console.error(`${phase}: ${rows.at(-1)!.join(' | ')}`);
        }
        const status = await walArchiveStatus(handle);
        await stopArchiving(handle);
        const audit = await auditWalChain(archived.config, { cluster: archived.cluster });
        const t = audit.timelines[0];
        rows.push([`archive afterwards: ${t.segments} segments, gapless ${audit.gapless}${status.state.gaps.length ? `, ${status.state.gaps.length} gap(s)` : ''}`, '', '', '', '', '', '', '']);
      }),
    );
  } finally {
    s3.destroy();
    await cleanUpArchivedCluster(archived, [archived.config.targets.primary, archived.config.targets.standby]);
  }
  const table = [
    '| run | commits probed | lag p50 ms | lag p99 ms | lag max ms | WAL generated MB/s | archived MB/s (to caught up) | caught up s after the run |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  const date = new Date().toISOString().slice(0, 10);
  recordBenchmarkRun(
    'WAL archive',
    'bench/walArchive.ts',
    `## WAL archive (${date}, ${seconds} s per run, stack primary, 2 vCPU, MinIO on loopback)\n\n` +
      'Commit-to-S3 lag: from a probe commit\'s acknowledgement to its WAL position being in S3 (complete segment, or the partial ' +
      'uploaded at most once a second). Target: p99 ≤ 5 s, also on a quiet server. Archived MB/s: the WAL of the run over the time ' +
      'from its start until all of it was in S3; a last column near 0 means the archive kept up with the primary.\n\n' +
      `${table}\n`,
  );
  console.log(table);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
