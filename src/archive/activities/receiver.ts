// pg_receivewal, run the one way client tools run (runPgTool: password in the environment), and
// held to one per spool: flock -F takes <spool>/.lock and execs it, so the lock lives exactly as
// long as pg_receivewal does; setpriv --pdeathsig makes it die with the worker, which would
// otherwise leave it streaming and the slot busy (the order matters: both exec, nothing forks).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TargetConfig, WorkerConfig } from '../../shared/config';
import { runPgTool } from '../../shared/postgres/pgTools';

/** flock's exit code when another pg_receivewal holds the spool. */
const LOCK_BUSY_EXIT = 75;
const KEPT_STDERR_LINES = 40;

export type ReceiverExitKind =
  | 'stopped'
  | 'unreachable'
  | 'slotLost'
  | 'walRemoved'
  | 'forked'
  | 'slotMissing'
  | 'slotBusy'
  | 'notConfigured'
  | 'lockBusy'
  | 'failed';

export interface ReceiverExit {
  kind: ReceiverExitKind;
  code: number | null;
  /** The line that decided the kind (or the last one). */
  detail: string;
  /** For `forked`: where the server's history left the spool's timeline. */
  forkLsn?: string;
  /** For `slotBusy`: the walsender holding the slot. */
  busyPid?: number;
}

/** Reads pg_receivewal's stderr after it exited with --no-loop (every failure is exit 1). */
export function classifyReceiverExit(code: number | null, stderr: string): ReceiverExit {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const find = (pattern: RegExp) => lines.find((l) => pattern.test(l));
  const last = lines.at(-1) ?? `exit ${code}`;
  const kind = (k: ReceiverExitKind, pattern?: RegExp): ReceiverExit => ({ kind: k, code, detail: (pattern && find(pattern)) || last });
  if (code === LOCK_BUSY_EXIT) return { kind: 'lockBusy', code, detail: 'another pg_receivewal holds the spool' };
  if (find(/can no longer access replication slot|has been invalidated/)) return kind('slotLost', /can no longer access|invalidated/);
  if (find(/has already been removed/)) return kind('walRemoved', /has already been removed/);
  const forked = /forked from timeline \d+ at ([0-9A-F]+\/[0-9A-F]+)/.exec(stderr);
  if (find(/is not in this server's history/) && forked) return { ...kind('forked', /not in this server's history/), forkLsn: forked[1] };
  if (find(/replication slot ".*" does not exist/)) return kind('slotMissing', /does not exist/);
  const busy = /replication slot ".*" is active for PID (\d+)/.exec(stderr);
  if (busy) return { ...kind('slotBusy', /is active for PID/), busyPid: Number(busy[1]) };
  const misconfigured = /number of requested standby connections exceeds|wal_level|no pg_hba\.conf entry|REPLICATION attribute|permission denied to start WAL sender|role ".*" does not exist|password authentication failed/;
  if (find(misconfigured)) return kind('notConfigured', misconfigured);
  if (code === 0) return { kind: 'stopped', code, detail: 'stopped' };
  const unreachable = /Connection refused|could not connect|terminated before stop point|disconnected|server closed the connection|could not receive data|timeout expired|the database system is (starting up|shutting down|in recovery mode)/;
  if (find(unreachable)) return kind('unreachable', unreachable);
  return kind('failed');
}

export interface Receiver {
  pid: number;
  exited: Promise<ReceiverExit>;
  done: boolean;
  stop(): Promise<ReceiverExit>;
}

export function receiverPidFile(spool: string): string {
  return path.join(spool, 'receiver.pid');
}

export async function startReceiver(config: WorkerConfig, target: TargetConfig, spool: string, slot: string): Promise<Receiver> {
  const args = ['-D', spool, '-S', slot, '--synchronous', '--no-loop', '-v', '-d', `application_name=${slot}`];
  const child = runPgTool(config, 'pg_receivewal', args, target, {
    wrapper: ['setpriv', '--pdeathsig', 'KILL', '--', 'flock', '-n', '-F', '-E', String(LOCK_BUSY_EXIT), path.join(spool, '.lock')],
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'ignore',
  });
  const kept: string[] = [];
  let pending = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    kept.push(...lines);
    if (kept.length > KEPT_STDERR_LINES) kept.splice(0, kept.length - KEPT_STDERR_LINES);
  });
  const receiver: Receiver = {
    pid: child.pid!,
    done: false,
    exited: child.then(
      (result) => classifyReceiverExit(result.exitCode ?? null, [...kept, pending].join('\n')),
      (err): ReceiverExit => ({ kind: 'failed', code: null, detail: (err as Error).message.split('\n')[0] }),
    ).then((exit) => {
      receiver.done = true;
      return exit;
    }),
    async stop() {
      if (!receiver.done) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      try {
        return await receiver.exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  if (child.pid) await writeFile(receiverPidFile(spool), String(child.pid));
  return receiver;
}

/**
 * When the spool's lock is held: the holder is a pg_receivewal left by an earlier attempt in this
 * worker (an attempt that timed out but has not noticed yet). Stops it if /proc confirms it is one
 * writing into this spool. Returns whether one was stopped.
 */
export async function stopStaleReceiver(spool: string): Promise<boolean> {
  const pid = Number(await readFile(receiverPidFile(spool), 'utf8').catch(() => ''));
  if (!pid) return false;
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  if (!cmdline.some((a) => a.endsWith('pg_receivewal')) || !cmdline.includes(spool)) return false;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
  }
  process.kill(pid, 'SIGKILL');
  return true;
}
