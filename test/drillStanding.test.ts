// What pgops doctor says of a cluster's restore drills, from their audit records (no services).
import { drillLine } from '../src/doctor/activities/archiveHealth';
import type { DrillRecord } from '../src/pitr/contract';
import { drillStandings } from '../src/pitr/drillHistory';

const HOUR = 3_600_000;
const now = Date.parse('2026-11-10T12:00:00.000Z');

function drill(workflowId: string, hoursAgo: number, ok: boolean, cluster = 'main'): DrillRecord {
  const finishedAt = new Date(now - hoursAgo * HOUR).toISOString();
  return {
    workflowId,
    cluster,
    backupId: 'b1',
    ok,
    provedAt: ok ? finishedAt : undefined,
    checks: [{ name: ok ? 'amcheck' : 'reaches the target', ok, detail: ok ? 'passed' : 'the instance stopped: FATAL' }],
    indexChecks: [],
    startedAt: finishedAt,
    finishedAt,
  };
}

const lineFor = (records: DrillRecord[], cluster = 'main') => drillLine(`cluster ${cluster}`, cluster, drillStandings(records).get(cluster), now);

test('standings per cluster: the newest drill, the newest passed and the newest failed, in any order of the trail', () => {
  const standing = drillStandings([drill('d2', 30, false), drill('d3', 5, true), drill('d1', 50, true), drill('other', 1, false, 'second')]).get('main')!;
  expect(standing.last.workflowId).toBe('d3');
  expect(standing.lastPassed!.workflowId).toBe('d3');
  expect(standing.lastFailed!.workflowId).toBe('d2');
});

test('no drill yet: a warning that points at the schedule', () => {
  expect(lineFor([drill('elsewhere', 1, true, 'second')])).toMatchObject({ check: 'restore drill', status: 'warn', saw: expect.stringMatching(/no restore drill has run/), next: expect.stringContaining('pgops drill schedule install --cluster main') });
});

test('the last drill failed: a failure naming the failed check and when one last passed', () => {
  const line = lineFor([drill('d1', 26, true), drill('d2', 2, false)]);
  expect(line.status).toBe('fail');
  expect(line.saw).toMatch(/^the last drill \(d2, .*\) failed: reaches the target: the instance stopped: FATAL; last passed 2026-11-09T10:00:00.000Z$/);
  expect(line.next).toContain('d2');
});

test('a passed drill: ok while recent, a warning once no drill has run for two days', () => {
  expect(lineFor([drill('d2', 30, false), drill('d3', 3, true)])).toMatchObject({ status: 'ok', saw: expect.stringMatching(/^proved restorable 3\.0 h ago .*base backup b1/) });
  expect(lineFor([drill('d3', 49, true)])).toMatchObject({ status: 'warn', saw: expect.stringMatching(/no drill since$/), next: expect.stringContaining('restore-drill-main') });
});
