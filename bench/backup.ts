// Backup benchmark: in one run, on one seeded CS Arena database, compare
//   1. the logical-dump limit: pg_dump -Fc -Z0 to /dev/null
//   2. the script pgops replaces: pg_dump | gzip > file, then upload the file
//   3. pg_dump -Fc -Z zstd:1 to /dev/null: what nightlyBackup's default compression alone costs
//   4. nightlyBackup (dump + test restore on the verify server while the data uploads + prune)
//      with its defaults, with --verify list, with gzip:1 (like for like) and in directory format
// and write wall times, ratios, stored bytes, the CPU each needed and the worker's peak RSS to
// docs/benchmarks.md.
//
//   npx tsx bench/backup.ts [--scale 10]        (the local stack must be up: scripts/stack up)
// The worker under test is the compiled one (npm run build, which this script runs first).
import { randomUUID } from 'node:crypto';
import { createReadStream, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Upload } from '@aws-sdk/lib-storage';
import execa from 'execa';
import { connectTarget } from '../src/shared/postgres/connection';
import { libpqEnv } from '../src/shared/postgres/pgTools';
import { createS3Client } from '../src/shared/storage/s3Client';
import { connectClient, startBackup } from '../src/client';
import { loadWorkerConfig, type TargetConfig } from '../src/shared/config';
import type { DumpFormat, VerifyLevel } from '../src/backup/contract';
import { deletePrefix, targetUrl } from '../test/support/backupFixture';
import { DEFAULT_COMPRESSION, DEFAULT_FORMAT } from '../src/backup/defaults';
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
  storedBytes: number;
  note?: string;
  cpu?: CpuUsage;
}

async function databaseSize(target: TargetConfig): Promise<number> {
  const db = await connectTarget(target);
  const size = Number((await db.query('SELECT pg_database_size(current_database()) AS b')).rows[0].b);
  await db.end();
  return size;
}

/** pg_dump alone to /dev/null: with -Z0 the logical-dump limit; with gzip:1 what the default compression alone costs. */
async function pgDumpAlone(pgBinDir: string, target: TargetConfig, compression: string): Promise<Row> {
  const meter = startCpuMeter(SERVERS);
  const started = Date.now();
  await execa(path.join(pgBinDir, 'pg_dump'), ['--format=custom', `--compress=${compression}`], { env: libpqEnv(target), stdout: openSync('/dev/null', 'w') });
  const [name, note] =
    compression === '0' ? ['raw dump: pg_dump -Fc -Z0 > /dev/null', 'the logical-dump limit'] : [`pg_dump -Fc -Z ${compression} > /dev/null`, "pg_dump alone with nightlyBackup's default compression"];
  return { name, seconds: seconds(started), storedBytes: 0, note, cpu: meter.stop() };
}

async function oldScript(pgBinDir: string, target: TargetConfig, config: ReturnType<typeof loadWorkerConfig>): Promise<Row> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgops-bench-'));
  const file = path.join(dir, 'dump.sql.gz');
  const meter = startCpuMeter(SERVERS);
  const started = Date.now();
  const dump = execa(path.join(pgBinDir, 'pg_dump'), [], { env: libpqEnv(target), buffer: false });
  const gzip = execa('gzip', [], { stdin: dump.stdout!, stdout: openSync(file, 'w') });
  await Promise.all([dump, gzip]);
  const dumpSeconds = seconds(started);
  const s3 = createS3Client(config.s3);
  await new Upload({ client: s3, params: { Bucket: config.s3.bucket, Key: `${PREFIX}/script/dump.sql.gz`, Body: createReadStream(file) } }).done();
  s3.destroy();
  const took = seconds(started);
  const cpu = meter.stop();
  const storedBytes = statSync(file).size;
  rmSync(dir, { recursive: true, force: true });
  return { name: 'old script: pg_dump \\| gzip > file, then upload (unverified)', seconds: took, storedBytes, note: `dump+gzip ${dumpSeconds.toFixed(1)} s`, cpu };
}

async function nightly(
  compression: string,
  format: DumpFormat,
  verify: VerifyLevel,
  env: Record<string, string>,
  config: ReturnType<typeof loadWorkerConfig>,
): Promise<Row[]> {
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...env, PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
  const rss = watchPeakRss(worker.child.pid!);
  const client = await connectClient(config.temporal);
  try {
    const meter = startCpuMeter(SERVERS);
    const started = Date.now();
    const handle = await startBackup(client, { taskQueue }, { target: 'bench', compression, format, jobs: 2, verify });
    const result = await handle.result();
    const total = seconds(started);
    const cpu = meter.stop();
    const peak = rss.stop();
    const steps = await stepSeconds(handle);
    rmSync(path.join(env.PGOPS_STAGING_DIR, result.backupId), { recursive: true, force: true });
    const mb = `${(peak.worker / 1e6).toFixed(0)} MB (group with tools ${(peak.group / 1e6).toFixed(0)} MB)`;
    return [
      {
        name:
          `nightlyBackup --compression ${compression} --format ${format}${format === 'directory' ? ' --jobs 2' : ''} --verify ${verify}` +
          `${compression === DEFAULT_COMPRESSION && format === DEFAULT_FORMAT && verify === 'restore' ? ' (default)' : ''}`,
        seconds: total,
        storedBytes: result.manifest.sizeBytes,
        note:
          `dump ${steps.dumpDatabase.toFixed(1)} s, ${verify === 'restore' ? `test restore on ${result.manifest.verification?.restoreServer}` : 'pg_restore --list'} ` +
          `${steps.verifyByTestRestore.toFixed(1)} s while the data uploaded (${steps.uploadBackupData.toFixed(1)} s), manifest ${steps.publishManifest.toFixed(1)} s; worker peak RSS ${mb}`,
        cpu,
      },
      { name: `  its dump stage (${compression}, ${format})`, seconds: steps.dumpDatabase, storedBytes: result.manifest.sizeBytes },
    ];
  } finally {
    rss.stop();
    await client.connection.close();
    await worker.kill('SIGTERM');
  }
}

function report(rows: Row[], dbBytes: number): string {
  const raw = rows[0].seconds;
  const script = rows[1].seconds;
  const lines = rows.map(
    (r) =>
      `| ${r.name} | ${r.seconds.toFixed(1)} | ${(r.seconds / raw).toFixed(2)}× | ${(r.seconds / script).toFixed(2)}× | ${r.storedBytes ? `${(r.storedBytes / 1e6).toFixed(0)} MB` : '-'} | ${cpuCell(r.cpu)} | ${r.note ?? ''} |`,
  );
  const cpuLines = rows.filter((r) => r.cpu).map((r) => `- ${r.name}: ${describeCpu(r.cpu!)}`);
  return [
    `## Backup (${new Date().toISOString().slice(0, 10)}, scale ${scale}, database ${(dbBytes / 1e9).toFixed(2)} GB)`,
    '',
    `Command: \`npx tsx bench/backup.ts --scale ${scale}\` (stack up; 2-core machine, shared and noisy: compare ratios, not seconds)`,
    '',
    '| run | wall s | vs raw dump | vs old script | stored | busy CPU-s / floor on 2 cores | notes |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...lines,
    '',
    'Where the CPU went (by process, sampled every 100 ms; a process that exited is counted through its parent):',
    '',
    ...cpuLines,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  // Measure the worker a deployment runs: compiled, with the workflow bundle built ahead.
  await execa('npm', ['run', '--silent', 'build'], { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const target = await benchTarget(scale);
  const base = loadWorkerConfig(stackEnv());
  const stagingDir = mkdtempSync(path.join(tmpdir(), 'pgops-bench-staging-'));
  const env = { PGOPS_TARGETS: 'primary,standby,verify,bench', PGOPS_TARGET_BENCH_URL: targetUrl(target), PGOPS_S3_PREFIX: PREFIX, PGOPS_STAGING_DIR: stagingDir };
  const config = loadWorkerConfig({ ...stackEnv(), ...env });
  const dbBytes = await databaseSize(target);
  try {
    const rows: Row[] = [await pgDumpAlone(base.pgBinDir, target, '0'), await oldScript(base.pgBinDir, target, config), await pgDumpAlone(base.pgBinDir, target, DEFAULT_COMPRESSION)];
    const runs = [
      [DEFAULT_COMPRESSION, DEFAULT_FORMAT, 'restore'],
      [DEFAULT_COMPRESSION, DEFAULT_FORMAT, 'list'],
      ['gzip:1', DEFAULT_FORMAT, 'restore'],
      [DEFAULT_COMPRESSION, 'custom', 'restore'],
      [DEFAULT_COMPRESSION, 'custom', 'list'],
    ] as const;
    for (const [compression, format, verify] of runs) {
      rows.push(...(await nightly(compression, format, verify, env, config)));
      console.error(`done: nightlyBackup ${compression} ${format} --verify ${verify}`);
    }
    const section = report(rows, dbBytes);
    console.log(section);
    recordBenchmarkRun('Backup', 'bench/backup.ts', section);
  } finally {
    await deletePrefix(config, `${PREFIX.split('/')[0]}/`);
    rmSync(stagingDir, { recursive: true, force: true });
  }
  process.exit(0);
}

void main();
