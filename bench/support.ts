// What the benchmarks share: the seeded database they run on, step timings from a run's history,
// and where results go.
import { readFileSync, writeFileSync } from 'node:fs';
import execa from 'execa';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { Client } from 'pg';
import { connectTarget, withTarget } from '../src/shared/postgres/connection';
import { loadWorkerConfig, type TargetConfig } from '../src/shared/config';
import { migrate } from '../src/db/migrate';
import { seed, seedCounts } from '../src/db/seed';
import { stackEnv } from '../test/support/stack';
import { libpqEnv } from '../src/shared/postgres/pgTools';
import { startCpuMeter, type CpuUsage } from './cpu';

export const seconds = (startMs: number) => (Date.now() - startMs) / 1000;

/** The name of the seeded CS Arena database of the given scale. */
const benchDatabaseName = (scale: number) => `pgops_bench_scale_${String(scale).replace('.', '_')}`;

/** `database` on the stack's primary (created if missing) as target "bench", with an open connection to it, migrated. */
export async function ensureBenchDatabase(database: string): Promise<{ target: TargetConfig; db: Client }> {
  const base = loadWorkerConfig(stackEnv());
  const admin = await connectTarget(base.targets.primary);
  const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount === 1;
  if (!exists) await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const target = { ...base.targets.primary, name: 'bench', database, source: 'PGOPS_TARGET_BENCH_URL' };
  const db = await connectTarget(target);
  await migrate(db);
  return { target, db };
}

/** The seeded CS Arena database of the given scale as target "bench", seeded the first time only. */
export async function benchTarget(scale: number): Promise<TargetConfig> {
  const database = benchDatabaseName(scale);
  const { target, db } = await ensureBenchDatabase(database);
  const users = Number((await db.query('SELECT count(*) AS n FROM users')).rows[0].n);
  if (users !== seedCounts(scale).users) {
    console.error(`seeding ${database} at scale ${scale}...`);
    await seed(db, { scale, reset: true, onProgress: (p) => console.error(`  ${p.matchesDone}/${p.matchesTotal} matches, ${(p.bytesWritten / 1e6).toFixed(0)} MB`) });
  }
  await db.query('CHECKPOINT');
  await db.end();
  return target;
}

/** Each activity's wall time, from its scheduled event to its completion in the run's history. */
export async function stepSeconds(handle: WorkflowHandle): Promise<Record<string, number>> {
  const events = (await handle.fetchHistory()).events!;
  const scheduled = new Map<string, { name: string; at: number }>();
  const result: Record<string, number> = {};
  const time = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6);
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) scheduled.set(String(e.eventId), { name, at: time(e) });
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const s = scheduled.get(String(done.scheduledEventId))!;
      result[s.name] = (time(e) - s.at) / 1000;
    }
  }
  return result;
}

/**
 * Makes `section` ("## Backup (2026-11-30, scale 10, …)" and its tables) the current run of its
 * benchmark in docs/benchmarks.md ("## Backup (bench/backup.ts)", with a "Run:" line), and moves
 * the run it replaces to the top of that benchmark's part of the History.
 */
export function recordBenchmarkRun(benchmark: string, script: string, section: string): void {
  const file = path.join(__dirname, '../docs/benchmarks.md');
  const doc = readFileSync(file, 'utf8');
  const [heading, ...body] = section.trim().split('\n');
  const run = /\((.*)\)\s*$/.exec(heading)?.[1] ?? new Date().toISOString().slice(0, 10);
  const current = `## ${benchmark} (${script})\n\nRun: ${run}\n${body.join('\n')}\n`;
  const parts = doc.split(/\n(?=## )/);
  const at = parts.findIndex((p) => p.startsWith(`## ${benchmark} (${script})`));
  if (at < 0) {
    parts.splice(1, 0, current);
  } else {
    const replaced = parts[at];
    parts[at] = current;
    const previousRun = /\nRun: (.*)\n/.exec(replaced)?.[1] ?? 'earlier';
    const history = `#### ${benchmark} (${previousRun})\n${replaced.replace(/^## .*\n\nRun: .*\n/, '').trimEnd()}\n`;
    const h = parts.findIndex((p) => p.startsWith('## History'));
    if (h < 0) parts.push(`## History\n\nOlder runs, per benchmark, newest first.\n\n### ${benchmark}\n\n${history}`);
    else {
      const group = `### ${benchmark}\n`;
      const where = parts[h].indexOf(group);
      parts[h] = where < 0 ? `${parts[h].trimEnd()}\n\n${group}\n${history}` : `${parts[h].slice(0, where + group.length)}\n${history}\n${parts[h].slice(where + group.length).replace(/^\n/, '')}`;
    }
  }
  writeFileSync(file, parts.join('\n'));
}

/**
 * Peak resident memory, sampled every 100 ms: of the worker's own Node process (the biggest node
 * in its process group; the group also holds tsx's launcher and the pg_dump/pg_restore children),
 * and of the whole group.
 */
export function watchPeakRss(pgid: number): { stop: () => { worker: number; group: number } } {
  const peak = { worker: 0, group: 0 };
  const sample = () => {
    try {
      const { stdout } = execa.sync('ps', ['-o', 'rss=,comm=', '-g', String(pgid)]);
      const rows = stdout.trim().split('\n').map((line) => line.trim().split(/\s+/));
      const kb = (row: string[]) => Number(row[0]) * 1024 || 0;
      peak.group = Math.max(peak.group, rows.reduce((sum, row) => sum + kb(row), 0));
      peak.worker = Math.max(peak.worker, ...rows.filter((row) => row[1] === 'node').map(kb));
    } catch {
      // the group may be between processes
    }
  };
  const timer = setInterval(sample, 100);
  return { stop: () => (clearInterval(timer), peak) };
}

/** Runs `load` against a fresh scratch database (restore.ts, pitr.ts), metered; the database is dropped after. */
export async function intoScratch(target: TargetConfig, servers: Record<string, RegExp>, load: (scratch: string) => Promise<unknown>): Promise<CpuUsage> {
  const scratch = `${target.database}_bench_restore`;
  const admin = { ...target, database: 'postgres' };
  await withTarget(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`).then(() => c.query(`CREATE DATABASE ${scratch}`).then(() => c.query('CHECKPOINT'))));
  const meter = startCpuMeter(servers);
  await load(scratch);
  const usage = meter.stop();
  await withTarget(admin, (c) => c.query(`DROP DATABASE ${scratch} WITH (FORCE)`));
  return usage;
}

/** restore.sh without its "y/n": the cron job's gzip piped into psql. */
export async function scriptRestore(pgBinDir: string, target: TargetConfig, dumpGz: string, scratch: string): Promise<void> {
  const gunzip = execa('gunzip', ['-c', dumpGz], { buffer: false });
  const psql = execa(path.join(pgBinDir, 'psql'), ['-q', '-X', '-v', 'ON_ERROR_STOP=1', `--dbname=${scratch}`], {
    env: libpqEnv({ ...target, database: scratch }),
    stdin: gunzip.stdout!,
    stdout: 'ignore',
  });
  await Promise.all([gunzip, psql]);
}
