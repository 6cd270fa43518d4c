// Backup benchmark: in one run, on one seeded CS Arena database, compare
//   1. the logical-dump limit: pg_dump -Fc -Z0 to /dev/null
//   2. the script pgops replaces: pg_dump | gzip > file, then upload the file
//   3. pg_dump -Fc -Z zstd:1 to /dev/null: what nightlyBackup's default compression alone costs
//   4. nightlyBackup (dump + test restore on the verify server while the data uploads + prune)
//      with its defaults, with --verify list, with gzip:1 (like for like) and in directory format
// and write wall times, ratios, stored bytes, the CPU each needed and the worker's peak RSS to
// docs/benchmarks.md.
//
// Every nightlyBackup row runs unencrypted except the one marked encrypted (its own key ring):
// encryption's cost in the same run.
//
//   npx tsx bench/backup.ts [--scale 10]        (the local stack must be up: scripts/stack up)
//   npx tsx bench/backup.ts --encryption        only encryption's cost: default backups and
//                                               guardedRestores of them, unencrypted and encrypted
//                                               alternately, twice each
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
import { deletePrefix, encryptionEnv, newMasterKey, targetUrl } from '../test/support/backupFixture';
import { decideRestore, restoreStatus, startRestore } from '../src/client';
import { withTarget } from '../src/shared/postgres/connection';
import { DEFAULT_COMPRESSION, DEFAULT_FORMAT } from '../src/backup/defaults';
import { stackEnv } from '../test/support/stack';
import { startWorkerProcess } from '../test/support/workerProcess';
import { cpuCell, describeCpu, startCpuMeter, stackServers, type CpuUsage } from './cpu';
import { benchTarget, recordBenchmarkRun, seconds, stepSeconds, watchPeakRss } from './support';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '10' }, encryption: { type: 'boolean', default: false } } });
const scale = Number(values.scale);
const PREFIX = `bench-${randomUUID().slice(0, 8)}/backups`;

const SERVERS = stackServers(loadWorkerConfig(stackEnv()).targets);

/** A key ring of the bench's own, and a worker with none (whatever the stack's environment holds). */
const ENCRYPTED = encryptionEnv({ bench: newMasterKey() }, 'bench');
const PLAIN = { PGOPS_ENCRYPTION_KEYS: '', PGOPS_ENCRYPTION_KEYS_FILE: '', PGOPS_ENCRYPTION_KEY_ID: '' };
let lastBackupId = '';
let lastPeakWorkerBytes = 0;

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
  encrypted = false,
): Promise<Row[]> {
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...env, ...(encrypted ? ENCRYPTED : PLAIN), PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
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
    lastBackupId = result.backupId;
    lastPeakWorkerBytes = peak.worker;
    const mb = `${(peak.worker / 1e6).toFixed(0)} MB (group with tools ${(peak.group / 1e6).toFixed(0)} MB)`;
    return [
      {
        name:
          `nightlyBackup --compression ${compression} --format ${format}${format === 'directory' ? ' --jobs 2' : ''} --verify ${verify}` +
          `${compression === DEFAULT_COMPRESSION && format === DEFAULT_FORMAT && verify === 'restore' ? ' (default)' : ''}${encrypted ? ', encrypted' : ''}`,
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

/** A guardedRestore (new-database, approved as soon as it asks) of `backupId`, by a worker with or without the key ring. */
async function restoreRun(backupId: string, env: Record<string, string>, config: ReturnType<typeof loadWorkerConfig>, target: TargetConfig, encrypted: boolean) {
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...env, ...(encrypted ? ENCRYPTED : PLAIN), PGOPS_TASK_QUEUE: taskQueue, PGOPS_RESTORE_TWO_PERSON_RULE: 'false' }, { compiled: true });
  const rss = watchPeakRss(worker.child.pid!);
  const client = await connectClient(config.temporal);
  const newDatabase = `${target.database}_bench_copy`;
  try {
    const started = Date.now();
    const handle = await startRestore(client, { taskQueue, workflowId: `bench-restore-${randomUUID()}` }, { target: 'bench', backup: backupId, mode: 'new-database', newDatabase, requestedBy: 'bench' });
    while ((await restoreStatus(client, handle.workflowId)).stage !== 'awaiting-approval') await new Promise((r) => setTimeout(r, 200));
    await decideRestore(client, handle.workflowId, 'approve', { approver: 'bench', reason: 'benchmark' });
    const result = await handle.result();
    return { seconds: seconds(started), peak: rss.stop(), fetchSeconds: (result.durationsMs.fetch ?? 0) / 1000, stagingSeconds: (result.durationsMs.stagingRestore ?? 0) / 1000 };
  } finally {
    rss.stop();
    await client.connection.close();
    await worker.kill('SIGTERM');
    await withTarget({ ...target, database: 'postgres' }, (c) => c.query(`DROP DATABASE IF EXISTS ${newDatabase} WITH (FORCE)`));
  }
}

/** Default backups, then restores of them, unencrypted and encrypted alternately (twice each): the noise of a shared machine hits both. */
async function encryptionCost(env: Record<string, string>, config: ReturnType<typeof loadWorkerConfig>, target: TargetConfig, dbBytes: number): Promise<string> {
  const backups: { encrypted: boolean; seconds: number; rss: number; id: string }[] = [];
  for (const encrypted of [false, true, false, true]) {
    const [row] = await nightly(DEFAULT_COMPRESSION, DEFAULT_FORMAT, 'restore', env, config, encrypted);
    backups.push({ encrypted, seconds: row.seconds, rss: lastPeakWorkerBytes, id: lastBackupId });
    console.error(`done: backup ${encrypted ? 'encrypted' : 'plain'} ${row.seconds.toFixed(1)} s`);
  }
  const restores: { encrypted: boolean; seconds: number; rss: number; fetch: number; staging: number }[] = [];
  for (const b of backups) {
    const r = await restoreRun(b.id, env, config, target, b.encrypted);
    restores.push({ encrypted: b.encrypted, seconds: r.seconds, rss: r.peak.worker, fetch: r.fetchSeconds, staging: r.stagingSeconds });
    console.error(`done: restore ${b.encrypted ? 'encrypted' : 'plain'} ${r.seconds.toFixed(1)} s`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const line = (what: string, runs: { encrypted: boolean; seconds: number; rss: number }[], extra: (r: never) => string) => {
    const plain = runs.filter((r) => !r.encrypted);
    const enc = runs.filter((r) => r.encrypted);
    const cost = (mean(enc.map((r) => r.seconds)) / mean(plain.map((r) => r.seconds)) - 1) * 100;
    return [
      `| ${what}, unencrypted | ${plain.map((r) => r.seconds.toFixed(1)).join(', ')} | ${mean(plain.map((r) => r.seconds)).toFixed(1)} | | ${Math.max(...plain.map((r) => r.rss / 1e6)).toFixed(0)} MB | ${plain.map((r) => extra(r as never)).filter(Boolean).join('; ')} |`,
      `| ${what}, encrypted | ${enc.map((r) => r.seconds.toFixed(1)).join(', ')} | ${mean(enc.map((r) => r.seconds)).toFixed(1)} | ${cost >= 0 ? '+' : ''}${cost.toFixed(1)} % | ${Math.max(...enc.map((r) => r.rss / 1e6)).toFixed(0)} MB | ${enc.map((r) => extra(r as never)).filter(Boolean).join('; ')} |`,
    ];
  };
  return [
    `## Backup and restore encryption (${new Date().toISOString().slice(0, 10)}, scale ${scale}, database ${(dbBytes / 1e9).toFixed(2)} GB)`,
    '',
    `Command: \`npx tsx bench/backup.ts --encryption --scale ${scale}\` (stack up; 2-core machine shared with other work: runs alternate so noise hits both). ` +
      'Backups: nightlyBackup with its defaults (directory, zstd:1, test restore). Restores: guardedRestore new-database of each, approved at once. Target: ≤ 5 % more wall time, worker peak RSS < 300 MB.',
    '',
    '| run | wall s (each) | mean s | encryption cost | worker peak RSS | notes |',
    '| --- | --- | ---: | ---: | ---: | --- |',
    ...line('nightlyBackup', backups, () => ''),
    ...line('guardedRestore', restores, (r: { fetch: number; staging: number }) => `fetch ${r.fetch.toFixed(1)} s, staging ${r.staging.toFixed(1)} s`),
    '',
  ].join('\n');
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
    const rows: Row[] = values.encryption ? [] : [await pgDumpAlone(base.pgBinDir, target, '0'), await oldScript(base.pgBinDir, target, config), await pgDumpAlone(base.pgBinDir, target, DEFAULT_COMPRESSION)];
    const runs = [
      [DEFAULT_COMPRESSION, DEFAULT_FORMAT, 'restore'],
      [DEFAULT_COMPRESSION, DEFAULT_FORMAT, 'list'],
      ['gzip:1', DEFAULT_FORMAT, 'restore'],
      [DEFAULT_COMPRESSION, 'custom', 'restore'],
      [DEFAULT_COMPRESSION, 'custom', 'list'],
    ] as const;
    if (values.encryption) {
      const section = await encryptionCost(env, config, target, dbBytes);
      console.log(section);
      recordBenchmarkRun('Backup and restore encryption', 'bench/backup.ts --encryption', section);
      return;
    }
    for (const [compression, format, verify] of runs) {
      rows.push(...(await nightly(compression, format, verify, env, config)));
      console.error(`done: nightlyBackup ${compression} ${format} --verify ${verify}`);
    }
    rows.push(...(await nightly(DEFAULT_COMPRESSION, DEFAULT_FORMAT, 'restore', env, config, true)));
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
