// Child processes see only what they need: a PostgreSQL tool gets libpq's settings for its target,
// an operator's hook gets its arguments; neither gets the worker's S3 secret, embeddings API key or
// target URLs, which they would otherwise pass on to everything they run (the postmaster, a shell).
import { runHook } from '../src/failover/activities/fenceAndPromote';
import { runPgTool } from '../src/shared/postgres/pgTools';
import { stackConfig } from './support/stack';

const SECRETS = {
  PGOPS_S3_SECRET_ACCESS_KEY: 'canary-s3-secret',
  PGOPS_OPENAI_API_KEY: 'sk-canary-openai',
  PGOPS_TARGET_PRIMARY_URL: 'postgres://app:canary-password@db.internal/csarena',
};
const saved: Record<string, string | undefined> = {};
// Read before the canaries go into this process's environment, as the worker reads its config at start.
const config = stackConfig();

beforeAll(() => {
  for (const [name, value] of Object.entries(SECRETS)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
});

afterAll(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

const leaked = (text: string) => Object.values(SECRETS).filter((secret) => text.includes(secret));

test('a PostgreSQL tool, and anything it runs, sees its target\'s libpq settings and none of the worker\'s secrets', async () => {
  // psql's \! runs a shell with psql's own environment: what pg_ctl's postmaster would inherit too.
  const { stdout } = await runPgTool(config, 'psql', ['-X', '-At', '-c', '\\! env'], config.targets.primary);
  expect(stdout).toContain(`PGHOST=${config.targets.primary.host}`);
  expect(stdout).toMatch(/^PATH=/m);
  expect(leaked(stdout)).toEqual([]);
});

test('a fencing or repoint hook gets its arguments and none of the worker\'s secrets', async () => {
  const hook = await runHook('fencing', ['/bin/sh', '-c', 'env | grep -c . ; env | grep -E "canary" || echo "no secrets"', 'hook', '{cluster}'], { cluster: 'main' });
  expect(hook.ok).toBe(true);
  expect(hook.line).toMatch(/no secrets/);
  expect(leaked(hook.line)).toEqual([]);
});
