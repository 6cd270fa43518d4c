// pgops doctor against a primary + standby of its own: a healthy cluster is all ok, and each
// trouble the checklist exists for shows on its line with what was seen.
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { runDoctor } from '../src/client/doctor';
import { startBackup } from '../src/client';
import type { DoctorReport } from '../src/doctor/contract';
import { createReplicaCluster, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';

jest.setTimeout(180_000);

describe('pgops doctor', () => {
  let cluster: ReplicaCluster;
  let extra: Record<string, string>;

  beforeAll(async () => {
    cluster = await createReplicaCluster('doctor', 26280);
    // No WAL archive for this cluster: the recoverable-window line says so (ok by configuration).
    extra = { PGOPS_TARGET_PG1_LOG_FILE: path.join(path.dirname(cluster.dataDir.pg1), 'primary.log'), PGOPS_CLUSTER_DOCTOR_WAL_ARCHIVE: 'off' };
  });
  afterAll(() => cluster?.down());

  const doctor = (): Promise<DoctorReport> =>
    withWorker(cluster.config('pg1', extra), async ({ client, taskQueue }) => runDoctor(client, { taskQueue }, { taskQueues: [taskQueue] }));
  const linesOf = (report: DoctorReport, check: string) => report.lines.filter((l) => l.check === check);

  test('a healthy cluster with a fresh backup: every line ok', async () => {
    await cluster.sql('pg1', 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await withWorker(cluster.config('pg1', extra), async ({ client, taskQueue }) => {
      await (await startBackup(client, { taskQueue }, { target: 'pg1', verify: 'list' })).result();
    });
    const report = await doctor();
    const checks = new Set(report.lines.map((l) => l.check));
    for (const check of ['server', 'log', 'connections', 'idle in transaction', 'locks', 'statements', 'indexes', 'xid wraparound', 'vacuum', 'disk', 'replication', 'slot', 'backup', 'recoverable window', 'workers']) {
      expect(checks).toContain(check);
    }
    // Runs of other tests waiting for approval in the same namespace may show, but only as warnings.
    const notOk = report.lines.filter((l) => l.status !== 'ok' && !(l.check === 'approval' && l.status === 'warn'));
    expect(notOk).toEqual([]);
    expect(linesOf(report, 'replication')[0].saw).toMatch(/^streaming, replay \d+ kB behind/);
  });

  test('a session blocked by a lock shows both queries; a missing pg_stat_statements gives the hint', async () => {
    await cluster.sql('pg1', 'DROP EXTENSION pg_stat_statements');
    await cluster.sql('pg1', 'CREATE TABLE IF NOT EXISTS doctor_locked (id int)');
    const holder = await cluster.connect('pg1');
    const waiter = await cluster.connect('pg1');
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE doctor_locked IN ACCESS EXCLUSIVE MODE');
      const blocked = waiter.query('SELECT count(*) FROM doctor_locked /* the blocked one */').catch(() => undefined);
      await sleep(500);
      const report = await doctor();
      const locks = linesOf(report, 'locks').filter((l) => l.status !== 'ok');
      expect(locks).toHaveLength(1);
      expect(locks[0].saw).toMatch(/SELECT count\(\*\) FROM doctor_locked \/\* the blocked one \*\/ — blocked by pid \d+: LOCK TABLE doctor_locked IN ACCESS EXCLUSIVE MODE/);
      expect(locks[0].status).toBe('warn');
      const [statements] = linesOf(report, 'statements').filter((l) => l.subject.startsWith('pg1'));
      expect(statements).toMatchObject({ status: 'warn', saw: 'pg_stat_statements is not installed in this database', next: expect.stringContaining('CREATE EXTENSION pg_stat_statements') });
      await holder.query('ROLLBACK');
      await blocked;
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  test('a stopped standby fails the replication line, and the report fails', async () => {
    await cluster.asServerUser('pg_ctl', ['-D', cluster.dataDir.pg2, '-m', 'fast', '-w', 'stop']);
    const report = await doctor();
    expect(report.status).toBe('fail');
    const [replication] = linesOf(report, 'replication');
    expect(replication).toMatchObject({ status: 'fail', saw: expect.stringMatching(/^the standby does not answer/), next: expect.stringContaining('pgops rejoin --node pg2 --new-primary pg1') });
    expect(linesOf(report, 'server').find((l) => l.subject.startsWith('pg2'))).toMatchObject({ status: 'fail' });
  });
});
