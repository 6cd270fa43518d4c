// Base backup benchmark: in one run, on the stack's primary holding the seeded scale-10 database,
//   1. pg_dump -Fc -Z0 of that database to /dev/null: the logical-dump limit, for comparison
//   2. pg_basebackup alone with baseBackup's flags (-Ft -Xstream -Z client-zstd:1) into a temp dir
//   3. baseBackup --mode full (back up, pg_verifybackup, upload, retention) by the compiled worker
//   4. a write load on the database (1 % of round_answers rewritten, 100k rows copied; the copy dropped after)
//   5. baseBackup --mode auto: the incremental on (3), its size against the full one
// A base backup copies the whole cluster (every database on the server), not one database: the
// table says how big the cluster was. Results go to docs/benchmarks.md.
//
//   npx tsx bench/baseBackup.ts [--scale 10]     (the local stack must be up: scripts/stack up)
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import execa from 'execa';
import { connectClient, startBaseBackup } from '../src/client';
import type { BaseBackupResult } from '../src/archive/contract';
import { connectTarget } from '../src/shared/postgres/connection';
import { libpqEnv } from '../src/shared/postgres/pgTools';
import { loadWorkerConfig, type TargetConfig } from '../src/shared/config';
import { deletePrefix } from '../test/support/backupFixture';
import { stackEnv } from '../test/support/stack';
import { startWorkerProcess } from '../test/support/workerProcess';
import { cpuCell, describeCpu, startCpuMeter, stackServers, type CpuUsage } from './cpu';
import { benchTarget, recordBenchmarkRun, seconds, stepSeconds, watchPeakRss } from './support';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '10' } } });
const scale = Number(values.scale);
const PREFIX = `bench-${randomUUID().slice(0, 8)}/backups`;
const SERVERS = stackServers(loadWorkerConfig(stackEnv()).targets);

interface Row {
  name: string;
  seconds: number;
  storedBytes?: number;
  note?: string;
  cpu?: CpuUsage;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

async function sizes(target: TargetConfig): Promise<{ database: number; cluster: number }> {
  const db = await connectTarget(target);
  const { rows } = await db.query('SELECT pg_database_size(current_database()) AS d, (SELECT sum(pg_database_size(datname)) FROM pg_database) AS c');
  await db.end();
  return { database: Number(rows[0].d), cluster: Number(rows[0].c) };
}

async function pgDumpRaw(pgBinDir: string, target: TargetConfig): Promise<Row> {
  const meter = startCpuMeter(SERVERS);
  const started = Date.now();
  await execa(path.join(pgBinDir, 'pg_dump'), ['--format=custom', '--compress=0'], { env: libpqEnv(target), stdout: openSync('/dev/null', 'w') });
  return { name: `pg_dump -Fc -Z0 ${target.database} > /dev/null`, seconds: seconds(started), note: 'one database, the logical-dump limit', cpu: meter.stop() };
}

async function pgBasebackupAlone(pgBinDir: string, primary: TargetConfig): Promise<Row> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgops-bench-basebackup-'));
  const meter = startCpuMeter(SERVERS);
  const started = Date.now();
  try {
    await execa(
      path.join(pgBinDir, 'pg_basebackup'),
      [`--pgdata=${dir}/b`, '--format=tar', '--wal-method=stream', '--compress=client-zstd:1', '--manifest-checksums=SHA256', '--checkpoint=fast', '--no-sync'],
      { env: libpqEnv(primary) },
    );
    const took = seconds(started);
    const stored = readdirSync(`${dir}/b`).reduce((sum, name) => sum + statSync(path.join(dir, 'b', name)).size, 0);
    return { name: 'pg_basebackup -Ft -Xstream -Z client-zstd:1 alone (staging only)', seconds: took, storedBytes: stored, note: 'the whole cluster, the tool limit', cpu: meter.stop() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function baseBackupRun(mode: 'full' | 'auto', env: Record<string, string>, config: ReturnType<typeof loadWorkerConfig>): Promise<{ row: Row; result: BaseBackupResult }> {
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...env, PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
  const rss = watchPeakRss(worker.child.pid!);
  const client = await connectClient(config.temporal);
  try {
    const meter = startCpuMeter(SERVERS);
    const started = Date.now();
    const handle = await startBaseBackup(client, { taskQueue }, { cluster: 'main', mode });
    const result = await handle.result();
    const total = seconds(started);
    const cpu = meter.stop();
    const peak = rss.stop();
    const steps = await stepSeconds(handle);
    const r = result.record;
    return {
      result,
      row: {
        name: `baseBackup --mode ${mode} → ${r.kind}${r.parentBackupId ? ' on the full one' : ''}`,
        seconds: total,
        storedBytes: r.sizeBytes,
        note:
          `pg_basebackup ${steps.takeBaseBackup.toFixed(1)} s, pg_verifybackup ${steps.verifyBaseBackup.toFixed(1)} s, upload ${steps.uploadBaseBackup.toFixed(1)} s, ` +
          `retention ${steps.pruneBaseBackups.toFixed(1)} s; worker peak RSS ${mb(peak.worker)} (group with tools ${mb(peak.group)})`,
        cpu,
      },
    };
  } finally {
    rss.stop();
    await client.connection.close();
    await worker.kill('SIGTERM');
  }
}

/**
 * Some of a day's writes: 1 % of the answers rewritten (same values, new row versions) and 100k
 * rows copied into a new table. Returns how to drop the copy, so the seeded database stays as seeded.
 */
async function writeLoad(target: TargetConfig): Promise<{ row: Row; undo: () => Promise<void> }> {
  const db = await connectTarget(target);
  const started = Date.now();
  await db.query('UPDATE round_answers SET score = score WHERE id % 100 = 7');
  await db.query('CREATE TABLE bench_base_backup_load AS SELECT * FROM round_answers WHERE id <= 100000');
  await db.end();
  return {
    row: { name: 'write load: UPDATE 1 % of round_answers, 100k of its rows copied to a new table', seconds: seconds(started) },
    undo: async () => {
      const again = await connectTarget(target);
      await again.query('DROP TABLE IF EXISTS bench_base_backup_load');
      await again.query('VACUUM round_answers');
      await again.end();
    },
  };
}

function report(rows: Row[], size: { database: number; cluster: number }, full: BaseBackupResult, incremental: BaseBackupResult): string {
  const dump = rows[0].seconds;
  const lines = rows.map(
    (r) => `| ${r.name} | ${r.seconds.toFixed(1)} | ${(r.seconds / dump).toFixed(2)}× | ${r.storedBytes ? mb(r.storedBytes) : '-'} | ${cpuCell(r.cpu)} | ${r.note ?? ''} |`,
  );
  return [
    `## Base backup (${new Date().toISOString().slice(0, 10)}, scale ${scale}: database ${(size.database / 1e9).toFixed(2)} GB in a cluster of ${(size.cluster / 1e9).toFixed(2)} GB)`,
    '',
    `Command: \`npx tsx bench/baseBackup.ts --scale ${scale}\` (stack up; 2-core machine, shared and noisy: compare ratios, not seconds)`,
    '',
    `A base backup copies the **whole cluster** (${(size.cluster / 1e9).toFixed(2)} GB: every database on the stack's primary), pg_dump **one database** ` +
      `(${(size.database / 1e9).toFixed(2)} GB, and no index data): the comparison is of wall time, not of like with like.`,
    '',
    '| run | wall s | vs pg_dump -Z0 | stored | busy CPU-s / floor on 2 cores | notes |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
    ...lines,
    '',
    `Incremental against full: ${mb(incremental.record.sizeBytes)} against ${mb(full.record.sizeBytes)} ` +
      `(${((100 * incremental.record.sizeBytes) / full.record.sizeBytes).toFixed(1)} %) after the write load.`,
    '',
    'Where the CPU went (by process, sampled every 100 ms):',
    '',
    ...rows.filter((r) => r.cpu).map((r) => `- ${r.name}: ${describeCpu(r.cpu!)}`),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  // Measure the worker a deployment runs: compiled, with the workflow bundle built ahead.
  await execa('npm', ['run', '--silent', 'build'], { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const target = await benchTarget(scale);
  const base = loadWorkerConfig(stackEnv());
  const stagingDir = mkdtempSync(path.join(tmpdir(), 'pgops-bench-staging-'));
  const env = { PGOPS_S3_PREFIX: PREFIX, PGOPS_STAGING_DIR: stagingDir };
  const config = loadWorkerConfig({ ...stackEnv(), ...env });
  const size = await sizes(target);
  try {
    const rows: Row[] = [await pgDumpRaw(base.pgBinDir, target), await pgBasebackupAlone(base.pgBinDir, base.targets.primary)];
    const full = await baseBackupRun('full', env, config);
    const load = await writeLoad(target);
    rows.push(full.row, load.row);
    const incremental = await baseBackupRun('auto', env, config).finally(load.undo);
    rows.push(incremental.row);
    const section = report(rows, size, full.result, incremental.result);
    console.log(section);
    recordBenchmarkRun('Base backup', 'bench/baseBackup.ts', section);
  } finally {
    await deletePrefix(config, `${PREFIX.split('/')[0]}/`);
    rmSync(stagingDir, { recursive: true, force: true });
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
