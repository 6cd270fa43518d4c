// What the benchmarks share: the seeded database they run on, step timings from a run's history,
// and where results go.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { Client } from 'pg';
import { connectTarget } from '../src/shared/postgres/connection';
import { loadWorkerConfig, type TargetConfig } from '../src/shared/config';
import { migrate } from '../src/db/migrate';
import { seed, seedCounts } from '../src/db/seed';
import { stackEnv } from '../test/support/stack';

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

/** Puts a results section at the top of docs/benchmarks.md, newest first. */
export function prependToBenchmarks(section: string): void {
  const file = path.join(__dirname, '../docs/benchmarks.md');
  const previous = (() => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '# Benchmarks\n\nResults of `bench/` runs, newest first. Machines are shared and noisy: read the ratios.\n\n';
    }
  })();
  const [head, ...rest] = previous.split(/\n(?=## )/);
  writeFileSync(file, [head.trimEnd() + '\n', section, ...rest].join('\n'));
}
