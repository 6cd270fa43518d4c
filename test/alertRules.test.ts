// The shipped alert rules, checked and unit-tested by Prometheus' own promtool on synthetic
// series (ops/prometheus/pgops-alerts.test.yml): each alert fires when, and only when, it should.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import execa from 'execa';
import { parse } from 'yaml';
import { createMetricsRegistry } from '../src/metrics';
import { promtoolPath } from './support/promtool';
import { REPO_DIR, stackConfig } from './support/stack';

const RULES_DIR = path.join(REPO_DIR, 'ops/prometheus');
let promtool: string;

beforeAll(() => {
  promtool = promtoolPath();
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

/** Metric names the physical archive and the restore drill will export; the rules already use them. */
const RESERVED = ['pgops_restore_drill_last_failure_timestamp_seconds', 'pgops_restore_drill_last_success_timestamp_seconds'];

test('the alert rules and the Grafana dashboard name only metrics the worker exports (or reserves)', async () => {
  // Registering touches no service: sources are read at scrape time only.
  const registry = createMetricsRegistry(stackConfig(), {} as Client);
  const exported = new Set([...registry.getMetricsAsArray().map((m) => m.name), ...RESERVED]);
  // A counter's samples are named with its _total; histograms add _bucket, _sum, _count.
  const known = (name: string) => exported.has(name) || exported.has(name.replace(/_(bucket|sum|count)$/, ''));
  const rules = readFileSync(path.join(RULES_DIR, 'pgops-alerts.yml'), 'utf8');
  const dashboard = JSON.stringify(JSON.parse(readFileSync(path.join(REPO_DIR, 'ops/grafana/pgops.json'), 'utf8')));
  for (const text of [rules, dashboard]) {
    // A name followed by * is a pattern (the pgops_wal_* slots), not a metric.
    const names = new Set(text.match(/\bpgops_[a-z_]+\b(?!\*)/g));
    expect(names.size).toBeGreaterThan(10);
    expect([...names].filter((n) => !known(n))).toEqual([]);
  }
});
