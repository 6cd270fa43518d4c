// stackCheck against the real stack: Temporal dev server, primary + standby, MinIO.
import { randomUUID } from 'node:crypto';
import execa from 'execa';
import { connectClient, runStackCheck } from '../src/client';
import type { StackCheckReport } from '../src/check/contract';
import { loadKeyRing } from '../src/shared/config';
import { REPO_DIR, stackConfig, withWorker } from './support/stack';
import { startWorkerProcess } from './support/workerProcess';

function row(report: StackCheckReport, prefix: string) {
  const found = report.checks.find((c) => c.component.startsWith(prefix));
  if (!found) throw new Error(`no ${prefix} row in ${JSON.stringify(report)}`);
  return found;
}

describe('stackCheck', () => {
  test('reaches the primary, sees the standby replay its writes and round-trips an S3 object', async () => {
    const report = await withWorker(stackConfig(), ({ client, taskQueue }) => runStackCheck(client, { taskQueue }));
    expect(report.checks.map((c) => [c.component, c.ok, c.detail])).toEqual([
      ['postgres primary', true, expect.stringMatching(/^PostgreSQL 18\.\d+ \(read-write\), db csarena, pgvector \d/)],
      ['replication primary -> standby', true, expect.stringMatching(/^streaming, marker row replayed after \d+ ms/)],
      ['s3', true, expect.stringMatching(/^bucket pgops-backups: put\/get\/delete/)],
    ]);
    expect(report.ok).toBe(true);
    // The s3 row says how backups are stored: encrypted with the stack's development key, or that nothing is.
    expect(row(report, 's3').detail).toMatch(/; backups (encrypted and manifests authenticated with key \S+|NOT encrypted or authenticated: no key configured)/);
  });

  test('without a key, the s3 row says backups are not encrypted (and stays ok); with one, it names it', async () => {
    const plain = { ...stackConfig(), encryption: undefined };
    expect(row(await withWorker(plain, ({ client, taskQueue }) => runStackCheck(client, { taskQueue })), 's3')).toMatchObject({
      ok: true,
      detail: expect.stringContaining('backups NOT encrypted or authenticated: no key configured (PGOPS_ENCRYPTION_KEYS or PGOPS_ENCRYPTION_KEYS_FILE)'),
    });
    const keyed = { ...stackConfig(), encryption: loadKeyRing({ PGOPS_ENCRYPTION_KEYS: `now:${'A'.repeat(43)}=,before:${'B'.repeat(43)}=`, PGOPS_ENCRYPTION_KEY_ID: 'now' }) };
    expect(row(await withWorker(keyed, ({ client, taskQueue }) => runStackCheck(client, { taskQueue })), 's3').detail).toContain(
      'backups encrypted and manifests authenticated with key now (retired keys: before)',
    );
  });

  test('a standby that does not answer fails its row and leaves the others ok', async () => {
    const config = stackConfig();
    config.targets.standby = { ...config.targets.standby, port: 1 };
    const report = await withWorker(config, ({ client, taskQueue }) => runStackCheck(client, { taskQueue }));
    expect(report.ok).toBe(false);
    expect(row(report, 'replication').detail).toMatch(/target standby: cannot connect to 127\.0\.0\.1:1 \(ECONNREFUSED/);
    expect(row(report, 'postgres primary').ok).toBe(true);
    expect(row(report, 's3').ok).toBe(true);
  });

  test('an S3 server that does not answer fails the s3 row', async () => {
    const config = stackConfig();
    config.s3 = { ...config.s3, endpoint: 'http://127.0.0.1:1' };
    const report = await withWorker(config, ({ client, taskQueue }) => runStackCheck(client, { taskQueue }));
    expect(report.ok).toBe(false);
    expect(row(report, 's3')).toMatchObject({ ok: false, detail: expect.stringContaining('S3 at http://127.0.0.1:1') });
  });

  test('a target that is a primary, not a standby, is reported as such', async () => {
    const config = stackConfig();
    config.targets.standby = { ...config.targets.primary, name: 'standby' };
    const report = await withWorker(config, ({ client, taskQueue }) => runStackCheck(client, { taskQueue }));
    expect(row(report, 'replication').detail).toBe('target standby is not a standby: pg_is_in_recovery() is false');
  });

  test('the compiled worker a deployment runs (npm run build, prebuilt workflow bundle) answers it too', async () => {
    await execa('npm', ['run', '--silent', 'build'], { cwd: REPO_DIR });
    const taskQueue = `compiled-${randomUUID()}`;
    const worker = await startWorkerProcess({ PGOPS_TASK_QUEUE: taskQueue }, { compiled: true });
    const client = await connectClient(stackConfig().temporal);
    try {
      expect((await runStackCheck(client, { taskQueue })).ok).toBe(true);
    } finally {
      await client.connection.close();
      await worker.kill('SIGTERM');
    }
  });
});
