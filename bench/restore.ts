// Restore benchmark: in one run, on a ≥ 1 GB backup of the seeded CS Arena database, compare
//   1. the script pgops replaces: gunzip -c dump.sql.gz | psql into a fresh database
//   2. pg_restore -j2 of a dump made like the nightly backup's (directory, zstd:1) alone: what the staging step runs, without pgops
//   3. guardedRestore of the same data (mode replace, approval sent as soon as it is asked for):
//      fetch + checksum, plan, pg_restore -j2 into staging, safety snapshot, swap
// and report wall times, ratios, the CPU each needed and the swap's downtime to docs/benchmarks.md.
//
//   npx tsx bench/restore.ts [--scale 10]        (the local stack must be up: scripts/stack up)
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import execa from 'execa';
import { withTarget } from '../src/shared/postgres/connection';
import { libpqEnv } from '../src/shared/postgres/pgTools';
import { DEFAULT_COMPRESSION, DEFAULT_JOBS } from '../src/backup/defaults';
import { connectClient, decideRestore, restoreStatus, startBackup, startRestore } from '../src/client';
import { loadWorkerConfig, type TargetConfig } from '../src/shared/config';
import { deletePrefix, targetUrl } from '../test/support/backupFixture';
import { stackEnv } from '../test/support/stack';
import { startWorkerProcess } from '../test/support/workerProcess';
import { cpuCell, describeCpu, startCpuMeter, stackServers, type CpuUsage } from './cpu';
import { benchTarget, intoScratch, recordBenchmarkRun, scriptRestore, seconds } from './support';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '10' } } });
const scale = Number(values.scale);
const PREFIX = `bench-${randomUUID().slice(0, 8)}/backups`;

/** What the staging step runs, alone: pg_restore -j2 of a custom-format dump. */
async function pgRestore(pgBinDir: string, target: TargetConfig, dump: string, scratch: string): Promise<void> {
  await execa(path.join(pgBinDir, 'pg_restore'), ['--exit-on-error', '--jobs=2', `--dbname=${scratch}`, dump], { env: libpqEnv({ ...target, database: scratch }) });
}

async function main(): Promise<void> {
  await execa('npm', ['run', '--silent', 'build'], { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
  const target = await benchTarget(scale);
  const base = loadWorkerConfig(stackEnv());
  const work = mkdtempSync(path.join(tmpdir(), 'pgops-bench-restore-'));
  const env = {
    PGOPS_TARGETS: 'primary,standby,verify,bench',
    PGOPS_TARGET_BENCH_URL: targetUrl(target),
    PGOPS_S3_PREFIX: PREFIX,
    PGOPS_STAGING_DIR: path.join(work, 'staging'),
    PGOPS_RESTORE_APPROVERS: '',
  };
  const config = loadWorkerConfig({ ...stackEnv(), ...env });
  const taskQueue = `bench-${randomUUID()}`;
  const worker = await startWorkerProcess({ ...env, PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
  const client = await connectClient(config.temporal);
  try {
    // What the cron job leaves behind, and what nightlyBackup uploads: made first, not timed.
    const dumpGz = path.join(work, 'dump.sql.gz');
    const dump = execa(path.join(base.pgBinDir, 'pg_dump'), [], { env: libpqEnv(target), buffer: false });
    await Promise.all([dump, execa('gzip', [], { stdin: dump.stdout!, stdout: openSync(dumpGz, 'w') })]);
    // Dumped like nightlyBackup's default (directory format, two jobs, zstd:1).
    const customDump = path.join(work, 'dump.dir');
    await execa(path.join(base.pgBinDir, 'pg_dump'), ['--format=directory', `--jobs=${DEFAULT_JOBS}`, `--compress=${DEFAULT_COMPRESSION}`, `--file=${customDump}`], { env: libpqEnv(target) });
    const backup = await (await startBackup(client, { taskQueue }, { target: 'bench', verify: 'list' })).result();
    console.error(`prepared: ${(statSync(dumpGz).size / 1e6).toFixed(0)} MB dump.sql.gz, backup ${backup.backupId} (${(backup.manifest.sizeBytes / 1e6).toFixed(0)} MB)`);

    const servers = stackServers(base.targets);
    const scriptCpu = await intoScratch(target, servers, (scratch) => scriptRestore(base.pgBinDir, target, dumpGz, scratch));
    const script = scriptCpu.wallSeconds;
    console.error(`gunzip | psql: ${script.toFixed(1)} s; ${describeCpu(scriptCpu)}`);
    const aloneCpu = await intoScratch(target, servers, (scratch) => pgRestore(base.pgBinDir, target, customDump, scratch));
    console.error(`pg_restore -j2 alone: ${aloneCpu.wallSeconds.toFixed(1)} s; ${describeCpu(aloneCpu)}`);

    const meter = startCpuMeter(servers);
    const started = Date.now();
    const handle = await startRestore(client, { taskQueue }, { target: 'bench', backup: backup.backupId, mode: 'replace', requestedBy: 'bench', jobs: 2 });
    while ((await restoreStatus(client, handle.workflowId)).stage !== 'awaiting-approval') await new Promise((r) => setTimeout(r, 100));
    await decideRestore(client, handle.workflowId, 'approve', { approver: 'bench-approver', reason: 'benchmark' });
    const result = await handle.result();
    const total = seconds(started);
    const restoreCpu = meter.stop();
    const step = (name: string) => (result.durationsMs[name] ?? 0) / 1000;
    console.error(`guardedRestore: ${total.toFixed(1)} s`);
    await withTarget({ ...target, database: 'postgres' }, (c) => c.query(`DROP DATABASE ${result.preRestoreDatabase} WITH (FORCE)`));

    const size = await withTarget(target, async (c) => Number((await c.query('SELECT pg_database_size(current_database()) AS b')).rows[0].b));
    const row = (name: string, s: number, note = '', cpu?: CpuUsage) =>
      `| ${name} | ${s.toFixed(1)} | ${(s / script).toFixed(2)}× | ${cpuCell(cpu)} | ${note} |`;
    const section = [
      `## Restore (${new Date().toISOString().slice(0, 10)}, scale ${scale}, database ${(size / 1e9).toFixed(2)} GB)`,
      '',
      `Command: \`npx tsx bench/restore.ts --scale ${scale}\` (stack up; compiled worker; 2-core machine, shared and noisy: compare ratios)`,
      '',
      '| run | wall s | vs gunzip \\| psql | busy CPU-s / floor on 2 cores | notes |',
      '| --- | ---: | ---: | ---: | --- |',
      row('old script: gunzip -c dump.sql.gz \\| psql into a fresh database', script, 'unverified, no way back', scriptCpu),
      row(`pg_restore -j2 of a directory-format ${DEFAULT_COMPRESSION} dump alone, into a fresh database`, aloneCpu.wallSeconds, 'what the staging step runs', aloneCpu),
      row('guardedRestore --mode replace, approved at once', total, `fetch + checksum ${step('fetch').toFixed(1)} s, plan ${step('plan').toFixed(1)} s, safety snapshot ${step('safetySnapshot').toFixed(1)} s, swap ${step('swap').toFixed(1)} s`, restoreCpu),
      row('  its restore into staging (pg_restore -j2, row counts checked)', step('stagingRestore')),
      '',
      'Where the CPU went (by process, sampled every 100 ms; a process that exited is counted through its parent):',
      '',
      `- gunzip \\| psql: ${describeCpu(scriptCpu)}`,
      `- pg_restore -j2 alone: ${describeCpu(aloneCpu)}`,
      `- guardedRestore: ${describeCpu(restoreCpu)}`,
      '',
      `Downtime (target refusing connections, from ALLOW_CONNECTIONS false to the renamed copy answering): ${result.downtimeMs} ms.`,
      '',
    ].join('\n');
    console.log(section);
    recordBenchmarkRun('Restore', 'bench/restore.ts', section);
  } finally {
    await client.connection.close();
    await worker.kill('SIGTERM');
    await deletePrefix(config, `${PREFIX.split('/')[0]}/`);
    rmSync(work, { recursive: true, force: true });
  }
  process.exit(0);
}

void main();
