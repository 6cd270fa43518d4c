// What a root worker must not do on an isolated primary + standby + PgBouncer: write through a
// link the database's OS user planted, delete a data directory set aside by an earlier rejoin,
// repoint PgBouncer entries that lead to other servers, or count an approval for a gate nobody
// was asked about. Each test continues on the cluster the previous one left.
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import execa from 'execa';
import { approveFailover, decideFailover, failoverStatus, startFailover, startRejoin } from '../src/client';
import { clusterVariable } from '../src/shared/config';
import { createReplicaCluster, type NodeName, type ReplicaCluster } from './support/replicaCluster';
import { withWorker } from './support/stack';
import { waitUntil } from './support/workerProcess';

jest.setTimeout(240_000);

/** The servers' OS user in the replica cluster (scripts/stack-lib.sh). */
const DATABASE_OS_USER = 'pgops';
const VICTIM_TEXT = 'root:belongs to root and must stay as it is\n';

let cluster: ReplicaCluster;
let victimDir: string;

beforeAll(async () => {
  cluster = await createReplicaCluster('fo-harden', 26170);
  // World-readable like /etc/passwd, so the servers still start when a link leads to it.
  victimDir = mkdtempSync(path.join(tmpdir(), 'pgops-victim-'));
  execa.sync('chmod', ['0755', victimDir]);
});

afterAll(async () => {
  await cluster?.down();
  if (victimDir) rmSync(victimDir, { recursive: true, force: true });
});

/** A root-owned file a planted link points at. */
function victim(name: string): string {
  const file = path.join(victimDir, name);
  writeFileSync(file, VICTIM_TEXT, { mode: 0o644 });
  return file;
}

function expectUntouched(file: string): void {
  expect(readFileSync(file, 'utf8')).toBe(VICTIM_TEXT);
  expect(statSync(file).uid).toBe(0);
}

/** What the database's OS user can do to files in directories it owns. */
async function asDatabaseUser(args: string[]): Promise<void> {
  await execa('runuser', ['-u', DATABASE_OS_USER, '--', ...args]);
}

async function stopNode(node: NodeName): Promise<void> {
  await cluster.asServerUser('pg_ctl', ['-D', cluster.dataDir[node], '-m', 'fast', '-w', 'stop']);
}

async function inRecovery(node: NodeName): Promise<boolean> {
  return (await cluster.sql<{ r: boolean }>(node, 'SELECT pg_is_in_recovery() AS r'))[0].r;
}

describe('failover and rejoin as root in directories the database OS user owns', () => {
  test('rejoin does not write through a standby.signal link planted by the database OS user', async () => {
    const target = victim('standby-signal-target');
    await asDatabaseUser(['ln', '-sfn', target, path.join(cluster.dataDir.pg2, 'standby.signal')]);
    const rejoin = await cluster.rejoin('pg2', 'pg1');
    expect(rejoin).toMatchObject({ method: 'pg_rewind', receiverStatus: 'streaming' });
    expectUntouched(target);
    expect(lstatSync(path.join(cluster.dataDir.pg2, 'standby.signal')).isFile()).toBe(true);
    expect(await inRecovery('pg2')).toBe(true);
  });

  test('rejoin refuses to append to a postgresql.auto.conf that is a planted link, and says which file', async () => {
    const autoConf = path.join(cluster.dataDir.pg2, 'postgresql.auto.conf');
    const target = victim('auto-conf-target');
    await asDatabaseUser(['mv', autoConf, `${autoConf}.saved`]);
    await asDatabaseUser(['ln', '-s', target, autoConf]);
    try {
      const failure = await cluster.rejoin('pg2', 'pg1').catch((e: unknown) => e);
      expect(String((failure as { cause?: { cause?: Error } }).cause?.cause?.message)).toMatch(
        new RegExp(`^refusing to use ${autoConf}: it is a symbolic link`),
      );
      expectUntouched(target);
    } finally {
      await asDatabaseUser(['mv', '-f', `${autoConf}.saved`, autoConf]);
    }
    await cluster.start('pg2');
    expect(await inRecovery('pg2')).toBe(true);
  });

  test('a second rebuild of a node under the same workflow id keeps both set-aside data directories', async () => {
    const dir = cluster.dataDir.pg2;
    const workflowId = `rejoin-twice-${randomUUID()}`;
    /** Replaces pg2 with an unrelated cluster holding `marker`: pg_rewind refuses it, a base backup follows. */
    const unrelatedNode = async (marker: string) => {
      await stopNode('pg2').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      await cluster.asServerUser('initdb', ['-D', dir, '-U', 'postgres', '--auth=trust', '--no-locale', '--no-sync']);
      await asDatabaseUser(['sh', '-c', `echo ${marker} > ${dir}/${marker}`]);
    };
    const rebuild = () =>
      withWorker(cluster.config('pg1'), async ({ client, taskQueue }) =>
        (await startRejoin(client, { taskQueue, workflowId }, { cluster: cluster.name, node: 'pg2', newPrimary: 'pg1' })).result(),
      );

    await unrelatedNode('first-commits');
    const first = await rebuild();
    await unrelatedNode('second-commits');
    const second = await rebuild();

    expect(first).toMatchObject({ method: 'pg_basebackup', receiverStatus: 'streaming' });
    expect(second).toMatchObject({ method: 'pg_basebackup', receiverStatus: 'streaming' });
    expect(second.keptOldDataDir).not.toBe(first.keptOldDataDir);
    expect(existsSync(`${first.keptOldDataDir}/first-commits`)).toBe(true);
    expect(existsSync(`${second.keptOldDataDir}/second-commits`)).toBe(true);
    expect(await inRecovery('pg2')).toBe(true);
  });

  test('the PgBouncer repoint rewrites only entries of the old primary, and not through a planted link', async () => {
    const ini = cluster.config('pg1').clusters[cluster.name].pgbouncerIni!;
    const otherServer = 'elsewhere = host=127.0.0.1 port=26179 dbname=elsewhere';
    writeFileSync(ini, readFileSync(ini, 'utf8').replace('[databases]\n', `[databases]\n${otherServer}\n`));
    // The name the rewrite used for its temporary file: predictable from the worker's pid.
    const target = victim('pgbouncer-ini-target');
    await asDatabaseUser(['ln', '-s', target, `${ini}.pgops-${process.pid}`]);

    cluster.signal('pg1', 'SIGKILL');
    const result = await withWorker(cluster.config('pg1'), async ({ client, taskQueue }) =>
      (await startFailover(client, { taskQueue, workflowId: `fo-harden-repoint-${randomUUID()}` }, { cluster: cluster.name })).result(),
    );

    expect(result).toMatchObject({ outcome: 'promoted', newPrimary: 'pg2' });
    expect(result.repoint).toMatchObject({ method: 'pgbouncer', verifiedWrite: true, endpointServerPort: cluster.ports.pg2 });
    expectUntouched(target);
    expect(lstatSync(ini).isFile()).toBe(true);
    const entries = readFileSync(ini, 'utf8').split('\n');
    expect(entries).toContain(otherServer);
    expect(entries.filter((l) => l.includes(`port=${cluster.ports.pg2}`))).toHaveLength(2);
    expect(entries.filter((l) => l.includes(`port=${cluster.ports.pg1}`))).toHaveLength(0);
  });

  test('a failover approval counts only for the gate waiting when it arrives, from an allowed approver with a reason', async () => {
    // pg2 is the primary after the repoint test; pg1 (killed there) comes back as its standby.
    expect((await cluster.rejoin('pg1', 'pg2')).receiverStatus).toBe('streaming');
    cluster.signal('pg2', 'SIGKILL');
    const policy = { [clusterVariable(cluster.name, 'APPROVAL')]: 'manual', [clusterVariable(cluster.name, 'APPROVERS')]: 'carol,dave' };
    const result = await withWorker(cluster.config('pg2', policy), async ({ client, taskQueue }) => {
      const handle = await startFailover(client, { taskQueue, workflowId: `fo-harden-gates-${randomUUID()}` }, { cluster: cluster.name });
      await waitUntil('the confirmation to run', async () => (await failoverStatus(handle)).stage === 'confirming');
      // Sent before any gate waits: it must not pass the approval, lag or fencing gates later.
      await approveFailover(handle, { operator: 'carol', forcePromotion: true, fencingConfirmed: true, note: 'approving ahead' });
      await waitUntil('the approval gate', async () => (await failoverStatus(handle)).waitingFor === 'approval', 60_000);
      // The same rule as an update: refused at once, with the reason, and nothing recorded.
      await expect(decideFailover(handle, { operator: 'mallory', note: 'not on the list' })).rejects.toThrow(/not in the approvers allowed by the worker's PGOPS_CLUSTER_/);
      await approveFailover(handle, { operator: 'mallory', note: 'not on the list' });
      await approveFailover(handle, { operator: 'dave' });
      await waitUntil('the refusals', async () => (await failoverStatus(handle)).refusedApprovals.length === 3);
      expect((await failoverStatus(handle)).waitingFor).toBe('approval');
      expect(await inRecovery('pg1')).toBe(true);
      await approveFailover(handle, { operator: ' Dave', note: 'dashboards checked' });
      return handle.result();
    });
    expect(result).toMatchObject({ outcome: 'promoted', newPrimary: 'pg1', forced: false });
    expect(result.approvals).toEqual([{ operator: 'Dave', note: 'dashboards checked' }]);
    expect(result.refusedApprovals.map((r) => r.why)).toEqual([
      `approve by carol: this failover of ${cluster.name} is not waiting for a decision`,
      `approve by mallory: not in the approvers allowed by the worker's ${clusterVariable(cluster.name, 'APPROVERS')}`,
      'approve by dave: a reason is required',
    ]);
  });
});
