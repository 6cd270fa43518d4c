// The shipped alert rules, checked and unit-tested by Prometheus' own promtool on synthetic
// series (ops/prometheus/pgops-alerts.test.yml): each alert fires when, and only when, it should.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import execa from 'execa';
import { parse } from 'yaml';
import { REPO_DIR } from './support/stack';

const RULES_DIR = path.join(REPO_DIR, 'ops/prometheus');
/** The promtool scripts/stack installs (pinned in scripts/lib/settings.sh). */
const promtool = execa.sync('bash', ['-c', 'source scripts/stack-lib.sh && printf %s "$PROMTOOL_BIN"'], { cwd: REPO_DIR, env: { REPO_DIR } }).stdout;

beforeAll(() => {
  if (!existsSync(promtool)) throw new Error(`${promtool} is missing: scripts/stack install (or npm test) installs it`);
});

test('promtool check rules accepts the shipped rules file', async () => {
  const check = await execa(promtool, ['check', 'rules', 'pgops-alerts.yml'], { cwd: RULES_DIR, reject: false, all: true });
  expect(check.all).toContain('SUCCESS');
  expect(check.exitCode).toBe(0);
});

test('promtool test rules: every alert fires on its synthetic series at the expected time, and not before', async () => {
  const run = await execa(promtool, ['test', 'rules', 'pgops-alerts.test.yml'], { cwd: RULES_DIR, reject: false, all: true });
  if (run.exitCode !== 0) throw new Error(`promtool test rules failed:\n${run.all}`);
  expect(run.all).toContain('SUCCESS');
});

test('every alert in the rules file has a unit test in which it fires', () => {
  const rules = parse(readFileSync(path.join(RULES_DIR, 'pgops-alerts.yml'), 'utf8')) as { groups: { rules: { alert?: string }[] }[] };
  const tests = parse(readFileSync(path.join(RULES_DIR, 'pgops-alerts.test.yml'), 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
  };
  const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter(Boolean);
  const firing = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)));
  expect(alerts.filter((a) => !firing.has(a!))).toEqual([]);
});
