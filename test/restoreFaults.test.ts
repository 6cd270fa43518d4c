// guardedRestore under real faults: the worker SIGKILLed during pg_restore, and an application
// writing to the target through the swap.
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { withTarget } from '../src/shared/postgres/connection';
import { connectClient, decideRestore, restoreStatus, startBackup, startRestore } from '../src/client';
import { loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../src/shared/config';
import type { GuardedRestoreInput, RestoreStatus } from '../src/restore/contract';
import { createBackupFixture, type BackupFixture } from './support/backupFixture';
import { databasesLike, dropDatabase, fingerprint } from './support/databaseFingerprint';
import { activityAttempts } from './support/histories';
import { stackEnv } from './support/stack';
import { startWorkerProcess, waitUntil, type WorkerProcess } from './support/workerProcess';

let fixture: BackupFixture;
let config: WorkerConfig;
let client: Client;
let backupId: string;
const workers: WorkerProcess[] = [];
const taskQueue = `restore-faults-${randomUUID()}`;

async function worker(): Promise<WorkerProcess> {
  const w = await startWorkerProcess({ ...fixture.env, PGOPS_TASK_QUEUE: taskQueue });
  workers.push(w);
  return w;
}

beforeAll(async () => {
  // Large enough (~100 MB) that pg_restore runs for seconds, so the kill lands inside it.
  fixture = await createBackupFixture(1);
  await withTarget(fixture.target, (c) => c.query('CREATE TABLE app_writes (id bigserial PRIMARY KEY, phase text NOT NULL, at timestamptz NOT NULL DEFAULT now())'));
  config = loadWorkerConfig({ ...stackEnv(), ...fixture.env });
  client = await connectClient(config.temporal);
  await worker();
  const backup = await startBackup(client, { taskQueue, workflowId: `restore-faults-backup-${randomUUID()}` }, { target: 'demo', verify: 'list' });
  backupId = (await backup.result()).backupId;
}, 300_000);

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await client?.connection.close();
  for (const name of await databasesLike(fixture.target, `${fixture.target.database}_pre_restore_%`)) await dropDatabase(fixture.target, name);
  await fixture?.cleanup();
});

function restore(input: Partial<GuardedRestoreInput> = {}) {
  return startRestore(
    client,
    { taskQueue, workflowId: `restore-fault-${randomUUID()}` },
    { target: 'demo', backup: backupId, mode: 'replace', requestedBy: 'alice', heartbeatTimeout: '5 seconds', ...input },
  );
}

function status(handle: WorkflowHandle): Promise<RestoreStatus> {
  return restoreStatus(client, handle.workflowId);
}

async function pgRestoreRunningOn(database: string): Promise<boolean> {
  return withTarget({ ...fixture.target, database: 'postgres' }, async (c) => {
    const { rowCount } = await c.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_restore' AND state = 'active'`, [database]);
    return (rowCount ?? 0) > 0;
  });
}

test('SIGKILL of the worker during pg_restore: a new worker restores again, the target untouched until the swap', async () => {
  const before = await fingerprint(config, fixture.target);
  const handle = await restore();
  const planned = await (async () => {
    let s: RestoreStatus | undefined;
    await waitUntil('the plan', async () => (s = await status(handle)).plan !== undefined, 120_000);
    return s!;
  })();
  const staging = planned.plan!.stagingDatabase;
  await waitUntil(`pg_restore into ${staging}`, () => pgRestoreRunningOn(staging), 120_000);
  await workers.shift()!.kill('SIGKILL');
  expect(await fingerprint(config, fixture.target)).toEqual(before);

  await worker();
  await waitUntil('the staging copy on the new worker', async () => (await status(handle)).stagingReady, 300_000);
  expect(await activityAttempts(handle, 'restoreIntoStaging')).toBeGreaterThanOrEqual(2);
  expect(await fingerprint(config, fixture.target)).toEqual(before);

  await decideRestore(client, handle.workflowId, 'approve', { approver: 'bob', reason: 'recovering from the kill' });
  const result = await handle.result();
  expect(result.outcome).toBe('restored');
  const manifestCounts = (await status(handle)).plan!.backupRowCounts;
  expect((await fingerprint(config, fixture.target)).rows).toEqual(manifestCounts);
  expect(await databasesLike(fixture.target, 'pgops_restore_%')).toEqual([]);
});

/** An application that inserts a row every 20 ms and reconnects whenever its connection dies. */
function startApplication(target: TargetConfig) {
  const log: { phase: string; ok: boolean; at: number }[] = [];
  let phase = 'before';
  let running = true;
  let db: PgClient | undefined;
  const loop = (async () => {
    while (running) {
      try {
        if (!db) {
          db = new PgClient({ host: target.host, port: target.port, user: target.user, password: target.password, database: target.database, connectionTimeoutMillis: 2_000 });
          db.on('error', () => undefined);
          await db.connect();
        }
        await db.query('INSERT INTO app_writes (phase) VALUES ($1)', [phase]);
        log.push({ phase, ok: true, at: Date.now() });
      } catch {
        log.push({ phase, ok: false, at: Date.now() });
        await db?.end().catch(() => undefined);
        db = undefined;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await db?.end().catch(() => undefined);
  })();
  return {
    log,
    setPhase: (p: string) => (phase = p),
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

test('an application writing through the swap is disconnected cleanly and reconnects to the restored database', async () => {
  const app = startApplication(fixture.target);
  try {
    const handle = await restore();
    await waitUntil('the staging copy', async () => (await status(handle)).stagingReady, 300_000);
    await waitUntil('the application to write', async () => app.log.filter((l) => l.ok).length > 10);
    app.setPhase('swap');
    await decideRestore(client, handle.workflowId, 'approve', { approver: 'bob', reason: 'swap under load' });
    const result = await handle.result();
    await waitUntil('the application to write after the swap', async () => app.log.filter((l) => l.ok && l.at > Date.now() - 200).length > 0, 30_000);
    app.setPhase('after');
    await waitUntil('writes after the swap', async () => app.log.filter((l) => l.ok && l.phase === 'after').length > 5, 30_000);
    await app.stop();

    const failures = app.log.filter((l) => !l.ok);
    expect(failures.length).toBeGreaterThan(0); // its session was terminated at the swap
    const firstFailure = failures[0].at;
    const lastOkBefore = Math.max(...app.log.filter((l) => l.ok && l.at < firstFailure).map((l) => l.at));
    const firstOkAfter = Math.min(...app.log.filter((l) => l.ok && l.at > firstFailure).map((l) => l.at));
    console.log(
      `swap downtime: workflow measured ${result.downtimeMs} ms (${JSON.stringify(result.durationsMs)}); ` +
        `the application saw ${firstOkAfter - lastOkBefore} ms between writes and ${failures.length} failed attempt(s)`,
    );
    // The restored database took the writes that came after; the set-aside one kept those before.
    const counts = (target: TargetConfig) =>
      withTarget(target, async (c) => Object.fromEntries((await c.query<{ phase: string; n: string }>('SELECT phase, count(*) AS n FROM app_writes GROUP BY 1')).rows.map((r) => [r.phase, Number(r.n)])));
    const restored = await counts(fixture.target);
    expect(restored.after).toBeGreaterThan(5);
    expect(restored.before).toBeUndefined(); // the backup was taken before the application wrote
    await withTarget({ ...fixture.target, database: 'postgres' }, (c) => c.query(`ALTER DATABASE ${result.preRestoreDatabase} ALLOW_CONNECTIONS true`));
    const setAside = await counts({ ...fixture.target, database: result.preRestoreDatabase! });
    expect(setAside.before).toBeGreaterThan(10);
    expect(setAside.after).toBeUndefined();
  } finally {
    await app.stop();
  }
});

/** Does the target's database take new connections? */
async function acceptsConnections(target: TargetConfig): Promise<boolean> {
  return withTarget(target, async (c) => (await c.query('SELECT 1')).rowCount === 1).catch(() => false);
}

test('SIGKILL of the worker inside the swap, with the target closed to connections: a retry finishes the swap within seconds', async () => {
  // A session on the target whose server process is stopped: the swap's termination of sessions
  // waits on it (up to ~30 s) with the target already refusing connections.
  const holder = new PgClient({ ...fixture.target, connectionTimeoutMillis: 3_000 });
  holder.on('error', () => undefined);
  await holder.connect();
  const backendPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  try {
    const handle = await restore();
    await waitUntil('the staging copy', async () => (await status(handle)).stagingReady, 300_000);
    process.kill(backendPid, 'SIGSTOP');
    await decideRestore(client, handle.workflowId, 'approve', { approver: 'bob', reason: 'swap with a stuck session' });
    const closed = () =>
      withTarget({ ...fixture.target, database: 'postgres' }, async (c) =>
        (await c.query<{ ok: boolean }>('SELECT NOT datallowconn AS ok FROM pg_database WHERE datname = $1', [fixture.target.database])).rows[0]?.ok === true,
      );
    await waitUntil('the swap to close the target', closed, 120_000);
    const killedAt = Date.now();
    await workers.shift()!.kill('SIGKILL');
    process.kill(backendPid, 'SIGCONT');
    await worker();
    await waitUntil('the target to take connections again', () => acceptsConnections(fixture.target), 120_000);
    const closedMs = Date.now() - killedAt;
    console.log(`swap interrupted by SIGKILL: the target took connections again ${closedMs} ms after the kill`);
    expect(closedMs).toBeLessThan(30_000);
    const result = await handle.result();
    expect(result.outcome).toBe('restored');
    expect(await activityAttempts(handle, 'swapIntoPlace')).toBeGreaterThanOrEqual(2);
  } finally {
    try {
      process.kill(backendPid, 'SIGCONT');
    } catch {
      // the backend is gone already
    }
    await holder.end().catch(() => undefined);
  }
});
