// The processes of one PostgreSQL data directory, read from /proc, and how to end them when
// signals a server would act on are not enough: a frozen (SIGSTOPped, hung in the kernel) or
// half-crashed server never answers pg_ctl, so fencing ends with SIGKILL and proof they are gone.
import { readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServerProcess {
  pid: number;
  /** /proc/<pid>/stat's state: R running, S sleeping, T stopped (SIGSTOP), Z zombie, … */
  state: string;
  ppid: number;
  /** Process group. */
  pgrp: number;
}

/** A process as /proc/<pid>/stat describes it, if it exists. */
export function readProcess(pid: number): ServerProcess | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so read after the last ')'.
    const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, state, ppid: Number(ppid), pgrp: Number(pgrp) };
  } catch {
    return undefined;
  }
}

function lockFilePid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The postmaster's pid from postmaster.pid, if that process still exists. */
export function postmasterPid(dataDir: string): number | undefined {
  const pid = lockFilePid(dataDir);
  return pid !== undefined && readProcess(pid) ? pid : undefined;
}

/**
 * Removes postmaster.pid when its process is a zombie: killed, but not yet reaped by whoever
 * adopted it (a container's PID 1 may take its time). pg_ctl and a new postmaster both take a
 * zombie for a running server (kill(pid, 0) succeeds), so until then the node could neither be
 * seen as stopped nor started again. A live process is never a zombie, so this never removes
 * the lock of a running server.
 */
export function removeZombieLockFile(dataDir: string): boolean {
  const pid = lockFilePid(dataDir);
  if (pid === undefined || readProcess(pid)?.state !== 'Z') return false;
  rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
  return true;
}

/**
 * Every live process of the data directory: the postmaster and each process it started, all of
 * which chdir into the data directory and run as its owner. Matching the working directory, not a pid file, means a
 * stale postmaster.pid whose pid now belongs to another program never leads to killing it.
 * Zombies are already gone.
 */
export function serverProcesses(dataDir: string): ServerProcess[] {
  let realDir: string;
  let owner: number;
  try {
    realDir = realpathSync(dataDir);
    owner = statSync(realDir).uid;
  } catch {
    return []; // no data directory: nothing can run from it
  }
  const found: ServerProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cwd: string;
    let uid: number;
    try {
      cwd = readlinkSync(`/proc/${entry}/cwd`);
      uid = statSync(`/proc/${entry}`).uid;
    } catch {
      continue; // gone, or another user's process a non-root worker could not signal anyway
    }
    // PostgreSQL runs only as its data directory's owner: an operator's shell that happens to sit
    // in the directory is someone else's process, and fencing must not kill it.
    if (cwd !== realDir || uid !== owner) continue;
    const proc = readProcess(Number(entry));
    if (proc && proc.state !== 'Z') found.push(proc);
  }
  return found;
}

/** A server whose processes are stopped (SIGSTOP) acts on no signal but SIGKILL: asking it to shut down only wastes the bound. */
export function serverFrozen(dataDir: string): boolean {
  const pid = postmasterPid(dataDir);
  const postmaster = serverProcesses(dataDir).find((p) => p.pid === pid);
  return postmaster?.state === 'T';
}

/**
 * SIGKILLs every process of the data directory until none is left (new ones a dying postmaster
 * forks are caught by the next round), within `withinMs`. Returns how many were killed; throws
 * when some survive, naming them.
 */
export async function killServerProcesses(dataDir: string, withinMs = 5_000): Promise<number> {
  const killed = new Set<number>();
  const deadline = Date.now() + withinMs;
  for (;;) {
    const alive = serverProcesses(dataDir);
    if (alive.length === 0) return killed.size;
    if (Date.now() > deadline) {
      throw new Error(`processes of ${dataDir} survived SIGKILL for ${withinMs} ms: ${alive.map((p) => `${p.pid} (${p.state})`).join(', ')}`);
    }
    for (const proc of alive) {
      try {
        process.kill(proc.pid, 'SIGKILL');
        killed.add(proc.pid);
      } catch {
        // gone already, or not ours to kill: the next round tells which
      }
    }
    await sleep(50);
  }
}
