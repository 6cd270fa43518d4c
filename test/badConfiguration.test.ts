// Each bad-configuration case ends with one clear line naming what is wrong.
import execa from 'execa';
import path from 'node:path';
import { runStackCheck } from '../src/client';
import { ConfigError, loadWorkerConfig } from '../src/shared/config';
import { REPO_DIR, stackConfig, stackEnv, withWorker } from './support/stack';

const PGOPS = path.join(REPO_DIR, 'bin/pgops');

/**
 * Runs a pgops command with the stack's environment changed by `changes` (undefined removes a
 * variable). The environment is passed whole, so no env file may fill the gaps back in.
 */
async function pgops(args: string[], changes: Record<string, string | undefined>) {
  const env: Record<string, string | undefined> = { ...stackEnv(), PGOPS_ENV_FILE: '/dev/null', ...changes };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return execa(PGOPS, args, { env: env as Record<string, string>, extendEnv: false, reject: false, timeout: 60_000 });
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

describe('bad configuration', () => {
  test('a missing variable stops the worker at start-up with one line naming it', async () => {
    const result = await pgops(['worker'], { PGOPS_S3_BUCKET: undefined });
    expect(result.exitCode).toBe(1);
    expect(lines(result.stderr)).toEqual(['pgops worker: PGOPS_S3_BUCKET is not set: the S3 bucket that holds backups']);
  });

  test('a malformed target URL names the variable', () => {
    const env = { ...stackEnv(), PGOPS_TARGET_PRIMARY_URL: 'mysql://root@localhost/app' };
    expect(() => loadWorkerConfig(env)).toThrow(new ConfigError('PGOPS_TARGET_PRIMARY_URL must start with postgres://, found mysql://'));
  });

  test('a malformed webhook URL names the variable but not the URL, which may carry its token', () => {
    const env = { ...stackEnv(), PGOPS_NOTIFY_WEBHOOK_URL: 'hooks.example.com/services/T0KEN-s3cr3t' };
    expect(() => loadWorkerConfig(env)).toThrow(new ConfigError('PGOPS_NOTIFY_WEBHOOK_URL is not an http(s) URL (http://... or https://...)'));
  });

  test('an unreachable Temporal ends pgops check with one line naming the address', async () => {
    const result = await pgops(['check'], { PGOPS_TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(result.exitCode).toBe(1);
    const output = lines(result.stderr);
    expect(output).toHaveLength(1);
    expect(output[0]).toMatch(/^pgops: cannot reach Temporal at 127\.0\.0\.1:1 \(PGOPS_TEMPORAL_ADDRESS, namespace pgops\): /);
  });

  test('an unreachable Temporal stops the worker with one line', async () => {
    const result = await pgops(['worker'], { PGOPS_TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(result.exitCode).toBe(1);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^pgops worker: cannot reach Temporal at 127\.0\.0\.1:1 /)]);
  });

  test('a wrong database password fails the check at once, naming the target and its variable', async () => {
    const config = stackConfig();
    config.targets.primary = { ...config.targets.primary, password: 'wrong-password' };
    const started = Date.now();
    const report = await withWorker(config, ({ client, taskQueue }) => runStackCheck(client, { taskQueue }));
    const primary = report.checks.find((c) => c.component === 'postgres primary');
    expect(primary).toEqual({
      component: 'postgres primary',
      ok: false,
      detail: 'target primary: authentication failed for user "postgres" at 127.0.0.1:55432; check PGOPS_TARGET_PRIMARY_URL',
    });
    // Non-retryable: no backoff rounds spent on a password that will not change.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  test('a missing bucket fails the S3 check with one line naming the bucket and the variable', async () => {
    const config = stackConfig();
    config.s3 = { ...config.s3, bucket: 'no-such-bucket-pgops' };
    const report = await withWorker(config, ({ client, taskQueue }) => runStackCheck(client, { taskQueue }));
    expect(report.checks.find((c) => c.component === 's3')).toEqual({
      component: 's3',
      ok: false,
      detail: 'bucket "no-such-bucket-pgops" does not exist at http://127.0.0.1:9000; create it or fix PGOPS_S3_BUCKET',
    });
  });
});
