// The checklist items one server answers itself: is it up and what is it, its log's last errors,
// connections, long idle transactions, blocked locks, slow statements and index/vacuum health.
import { open, stat } from 'node:fs/promises';
import type { Client } from 'pg';
import type { TargetConfig, WorkerConfig } from '../../shared/config';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import type { DoctorLine } from '../contract';

const QUERY_TIMEOUT_MS = 10_000;
const LOG_TAIL_BYTES = 256 * 1024;
const HOUR_MS = 3_600_000;

export function serverHealthActivities(config: WorkerConfig) {
  /** Every line about one target's server; a server that does not answer is one failed line. */
  async function checkServer(input: { target: string; idleInTransactionWarnMs: number }): Promise<DoctorLine[]> {
    const target = resolveTarget(config, input.target);
    const subject = `${input.target} (${target.host}:${target.port})`;
    let lines: DoctorLine[];
    try {
      // The verify server holds only scratch copies: its statements and vacuum say nothing.
      const scratch = input.target === config.verifyTarget;
      lines = await withTarget(target, (c) => serverLines(c, subject, input.idleInTransactionWarnMs, scratch), { timeoutMs: QUERY_TIMEOUT_MS });
    } catch (err) {
      return [{ check: 'server', subject, status: 'fail', saw: `not reachable: ${(err as Error).message}`, next: `is the server up? pgops check, or the server's own log${logHint(target)}` }];
    }
    const log = await logLine(target, subject);
    return log ? [lines[0], log, ...lines.slice(1)] : lines;
  }

  return { checkServer };
}

async function serverLines(c: Client, subject: string, idleWarnMs: number, scratch: boolean): Promise<DoctorLine[]> {
  const { rows: [s] } = await c.query<{ version: string; standby: boolean; uptime_s: number; connections: number; max: number; db: string }>(
    `SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS standby,
            extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_s,
            (SELECT count(*) FROM pg_stat_activity)::int AS connections, current_setting('max_connections')::int AS max,
            current_database() AS db`,
  );
  const share = s.connections / s.max;
  return [
    { check: 'server', subject, status: 'ok', saw: `${s.standby ? 'standby' : 'primary'}, PostgreSQL ${s.version}, up ${duration(s.uptime_s * 1000)}` },
    {
      check: 'connections',
      subject,
      status: share > 0.95 ? 'fail' : share > 0.8 ? 'warn' : 'ok',
      saw: `${s.connections} of ${s.max} (${Math.round(share * 100)}%)`,
      ...(share > 0.8 ? { next: 'find who holds them (pg_stat_activity by application_name); pool through PgBouncer' } : {}),
    },
    ...(await idleInTransaction(c, subject, idleWarnMs)),
    ...(await blockedLocks(c, subject)),
    ...(s.standby || scratch ? [] : await slowStatements(c, subject)),
    ...(await invalidIndexes(c, subject, s.db)),
    ...(await wraparound(c, subject)),
    ...(s.standby || scratch ? [] : await vacuumHealth(c, subject, s.db)),
  ];
}

async function idleInTransaction(c: Client, subject: string, warnMs: number): Promise<DoctorLine[]> {
  const { rows } = await c.query<{ pid: number; age_ms: number; query: string }>(
    `SELECT pid, (extract(epoch FROM now() - state_change) * 1000)::float8 AS age_ms, left(query, 80) AS query
       FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND now() - state_change > $1 * interval '1 millisecond'
      ORDER BY state_change LIMIT 5`,
    [warnMs],
  );
  if (rows.length === 0) return [{ check: 'idle in transaction', subject, status: 'ok', saw: `none older than ${duration(warnMs)}` }];
  return rows.map((r) => ({
    check: 'idle in transaction',
    subject,
    status: 'warn',
    saw: `pid ${r.pid} idle in transaction for ${duration(r.age_ms)}: ${oneLine(r.query)}`,
    next: `it holds locks and old rows: fix the client, or SELECT pg_terminate_backend(${r.pid})`,
  }));
}

async function blockedLocks(c: Client, subject: string): Promise<DoctorLine[]> {
  const { rows } = await c.query<{ pid: number; waiting_ms: number; blocked: string; blocker_pid: number; blocker: string }>(
    `SELECT a.pid, (extract(epoch FROM now() - a.query_start) * 1000)::float8 AS waiting_ms, left(a.query, 80) AS blocked,
            b.pid AS blocker_pid, left(b.query, 80) AS blocker
       FROM pg_stat_activity a
       CROSS JOIN LATERAL unnest(pg_blocking_pids(a.pid)) AS blocking(pid)
       JOIN pg_stat_activity b ON b.pid = blocking.pid
      ORDER BY a.query_start LIMIT 5`,
  );
  if (rows.length === 0) return [{ check: 'locks', subject, status: 'ok', saw: 'no session waits for a lock' }];
  return rows.map((r) => ({
    check: 'locks',
    subject,
    status: r.waiting_ms > 5 * 60_000 ? 'fail' : 'warn',
    saw: `pid ${r.pid} waits ${duration(r.waiting_ms)}: ${oneLine(r.blocked)} — blocked by pid ${r.blocker_pid}: ${oneLine(r.blocker)}`,
    next: `end the blocker's transaction, or SELECT pg_terminate_backend(${r.blocker_pid})`,
  }));
}

async function slowStatements(c: Client, subject: string): Promise<DoctorLine[]> {
  const installed = await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'`);
  if (installed.rowCount === 0) {
    return [
      {
        check: 'statements',
        subject,
        status: 'warn',
        saw: 'pg_stat_statements is not installed in this database',
        next: "add pg_stat_statements to shared_preload_libraries (restart), then CREATE EXTENSION pg_stat_statements",
      },
    ];
  }
  try {
    const { rows } = await c.query<{ mean_ms: number; total_ms: number; calls: string; query: string }>(
      `SELECT mean_exec_time AS mean_ms, total_exec_time AS total_ms, calls, left(query, 80) AS query
         FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 3`,
    );
    if (rows.length === 0) return [{ check: 'statements', subject, status: 'ok', saw: 'pg_stat_statements has no statements yet' }];
    return rows.map((r) => ({
      check: 'statements',
      subject,
      status: 'ok',
      saw: `mean ${r.mean_ms.toFixed(1)} ms, total ${(r.total_ms / 1000).toFixed(1)} s, ${r.calls} calls: ${oneLine(r.query)}`,
    }));
  } catch (err) {
    return [{ check: 'statements', subject, status: 'warn', saw: `pg_stat_statements cannot be read: ${(err as Error).message}`, next: 'add it to shared_preload_libraries and restart the server' }];
  }
}

async function invalidIndexes(c: Client, subject: string, db: string): Promise<DoctorLine[]> {
  const { rows } = await c.query<{ name: string }>(`SELECT indexrelid::regclass::text AS name FROM pg_index WHERE NOT indisvalid ORDER BY 1 LIMIT 10`);
  if (rows.length === 0) return [{ check: 'indexes', subject, status: 'ok', saw: `no invalid index in ${db}` }];
  return [
    {
      check: 'indexes',
      subject,
      status: 'fail',
      saw: `invalid in ${db}: ${rows.map((r) => r.name).join(', ')}`,
      next: 'a failed CREATE INDEX CONCURRENTLY left them: REINDEX INDEX CONCURRENTLY, or drop and recreate',
    },
  ];
}

async function wraparound(c: Client, subject: string): Promise<DoctorLine[]> {
  const { rows: [r] } = await c.query<{ datname: string; xid_age: number }>(
    `SELECT datname, age(datfrozenxid)::float8 AS xid_age FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1`,
  );
  const status = r.xid_age > 1.5e9 ? 'fail' : r.xid_age > 1e9 ? 'warn' : 'ok';
  return [
    {
      check: 'xid wraparound',
      subject,
      status,
      saw: `oldest: ${r.datname} at ${(r.xid_age / 1e6).toFixed(1)} M transactions of 2,000 M`,
      ...(status === 'ok' ? {} : { next: `VACUUM (FREEZE) the oldest tables of ${r.datname}; check what blocks autovacuum (long transactions, old slots)` }),
    },
  ];
}

async function vacuumHealth(c: Client, subject: string, db: string): Promise<DoctorLine[]> {
  // A table with many dead or changed rows that autovacuum has not visited for a day.
  const { rows } = await c.query<{ name: string; dead: string; changed: string; live: string }>(
    `SELECT schemaname || '.' || relname AS name, n_dead_tup AS dead, n_mod_since_analyze AS changed, n_live_tup AS live
       FROM pg_stat_user_tables
      WHERE (n_dead_tup > 1000 + 0.2 * n_live_tup AND coalesce(greatest(last_vacuum, last_autovacuum), 'epoch') < now() - interval '1 day')
         OR (n_mod_since_analyze > 1000 + 0.2 * n_live_tup AND coalesce(greatest(last_analyze, last_autoanalyze), 'epoch') < now() - interval '1 day')
      ORDER BY n_dead_tup + n_mod_since_analyze DESC LIMIT 5`,
  );
  if (rows.length === 0) return [{ check: 'vacuum', subject, status: 'ok', saw: `every table of ${db} vacuumed and analyzed as autovacuum intends` }];
  return rows.map((r) => ({
    check: 'vacuum',
    subject,
    status: 'warn',
    saw: `${r.name}: ${r.dead} dead, ${r.changed} changed since analyze, ${r.live} live; not visited for a day`,
    next: `VACUUM (ANALYZE) ${r.name}; if autovacuum cannot keep up, lower its scale factors for this table`,
  }));
}

/** The last PANIC/FATAL/ERROR lines of the server's log within the hour, where the worker can read it. */
async function logLine(target: TargetConfig, subject: string): Promise<DoctorLine | undefined> {
  if (!target.logFile) return undefined;
  let text: string;
  try {
    const size = (await stat(target.logFile)).size;
    const handle = await open(target.logFile, 'r');
    try {
      const length = Math.min(size, LOG_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      text = buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    return { check: 'log', subject, status: 'warn', saw: `${target.logFile} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, next: 'let the worker read the log, or unset its LOG_FILE setting' };
  }
  const recent = text.split('\n').filter((line) => {
    const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (\w+)?.*\b(PANIC|FATAL|ERROR):/.exec(line);
    return m !== null && Date.now() - Date.parse(`${m[1].replace(' ', 'T')}Z`) < HOUR_MS;
  });
  const worst = recent.some((l) => /\bPANIC:/.test(l)) ? 'fail' : recent.some((l) => /\bFATAL:/.test(l)) ? 'warn' : 'ok';
  return {
    check: 'log',
    subject,
    status: worst,
    saw: recent.length === 0 ? 'no ERROR, FATAL or PANIC in the last hour' : `${recent.length} in the last hour, latest: ${oneLine(recent.at(-1)!).slice(0, 160)}`,
    ...(worst === 'ok' ? {} : { next: `read ${target.logFile} around that time` }),
  };
}

function logHint(target: TargetConfig): string {
  return target.logFile ? ` (${target.logFile})` : '';
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

export function duration(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < HOUR_MS) return `${Math.round(ms / 60_000)} min`;
  if (ms < 48 * HOUR_MS) return `${(ms / HOUR_MS).toFixed(1)} h`;
  return `${Math.round(ms / (24 * HOUR_MS))} days`;
}
