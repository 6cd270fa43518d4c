// CPU accounting for benchmarks. On a machine whose cores are all busy, wall time stops saying
// much: the question becomes how much CPU the work needs. This meter reads the machine-wide busy
// time from /proc/stat (exact) and splits it by kind of process: sampled from /proc/<pid>/stat,
// with the CPU of processes that exited taken from their parent's reaped-children counters (a
// PostgreSQL backend lives one connection; pg_dump one step). Busy CPU-seconds divided by the
// number of cores is the shortest wall time the same work could take here: the floor a target is
// checked against.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { WorkerConfig } from '../src/shared/config';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Node runs on.
const SAMPLE_MS = 100;

export interface CpuUsage {
  wallSeconds: number;
  cores: number;
  /** Machine-wide CPU-seconds spent in user, system, irq and softirq: everything but idle, iowait and steal. */
  busySeconds: number;
  stealSeconds: number;
  /** busySeconds / cores: no schedule of this work on this machine finishes sooner. */
  floorSeconds: number;
  /** CPU-seconds by kind of process, largest first (sampled). */
  byProcess: [string, number][];
}

interface Stat {
  ppid: string;
  /** utime + stime */
  ticks: number;
  /** cutime + cstime: children that exited and were reaped. */
  childTicks: number;
  startTicks: number;
}

interface Proc {
  pid: string;
  ppid: string;
  kind: string;
  base: Stat;
  last: Stat;
  alive: boolean;
}

function readStat(pid: string): Stat | undefined {
  try {
    // The command name in parentheses may hold spaces: split after its last closing parenthesis.
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(') ') + 2).split(' ');
    const n = (i: number) => Number(fields[i]);
    return { ppid: fields[1], ticks: n(11) + n(12), childTicks: n(13) + n(14), startTicks: n(19) };
  } catch {
    return undefined; // it exited between readdir and read
  }
}

function commandLine(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** What a process is, from its own command line or its parent's (PostgreSQL backends and auxiliaries). */
function processKind(command: string, parentCommand: string, named: Record<string, RegExp>): string {
  for (const [kind, pattern] of Object.entries(named)) if (pattern.test(command) || pattern.test(parentCommand)) return kind;
  if (/\btemporal server\b/.test(command)) return 'Temporal server';
  if (/\bcli\.[jt]s worker\b|bin\/pgops worker\b|dist\/src\/worker\.js/.test(command)) return 'pgops worker';
  if (/\bminio\b/.test(command)) return 'MinIO';
  if (/(^|\/)(pg_dump|pg_dumpall|pg_restore|psql|gzip|gunzip)\b/.test(command)) return 'pg_dump/pg_restore/psql/gzip';
  if (/(^|\/)(pg_basebackup|pg_verifybackup|pg_combinebackup|zstd)\b/.test(command)) return 'pg_basebackup/pg_verifybackup/zstd';
  return 'other';
}

function machineTicks(): { busy: number; steal: number } {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return { busy: user + nice + system + irq + softirq, steal };
}

function uptimeTicks(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * TICKS_PER_SECOND;
}

/**
 * Starts metering. `named` maps a kind to a pattern of its command line (or its parent's), e.g.
 * { 'PostgreSQL primary': /-D \S+\/primary\b/ }; this process is metered as "benchmark process".
 */
export function startCpuMeter(named: Record<string, RegExp> = {}): { stop(): CpuUsage } {
  const startedAt = Date.now();
  const startedTicks = uptimeTicks();
  const machineAtStart = machineTicks();
  const procs = new Map<string, Proc>();
  const self = String(process.pid);
  const sample = () => {
    for (const p of procs.values()) p.alive = false;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const stat = readStat(pid);
      if (!stat) continue;
      const key = `${pid}@${stat.startTicks}`;
      let proc = procs.get(key);
      if (!proc) {
        const kind = pid === self ? 'benchmark process' : processKind(commandLine(pid), commandLine(stat.ppid), named);
        // A process born after the meter started counts from zero, one already running from now.
        const base = stat.startTicks >= startedTicks ? { ...stat, ticks: 0, childTicks: 0 } : stat;
        proc = { pid, ppid: stat.ppid, kind, base, last: stat, alive: true };
        procs.set(key, proc);
      }
      proc.last = stat;
      proc.alive = true;
    }
  };
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    stop(): CpuUsage {
      clearInterval(timer);
      sample();
      const machine = machineTicks();
      const cores = cpus().length;
      const busySeconds = (machine.busy - machineAtStart.busy) / TICKS_PER_SECOND;
      const byKind = new Map<string, number>();
      const add = (kind: string, ticks: number) => byKind.set(kind, (byKind.get(kind) ?? 0) + ticks / TICKS_PER_SECOND);
      const exited = [...procs.values()].filter((p) => !p.alive);
      for (const p of procs.values()) {
        if (!p.alive) continue;
        add(p.kind, p.last.ticks - p.base.ticks);
        // What its children that exited meanwhile used (seen or too short-lived to be seen), less
        // what they had used before the meter started; under their kind when they share one.
        const children = exited.filter((c) => c.ppid === p.pid);
        const before = children.reduce((sum, c) => sum + c.base.ticks + c.base.childTicks, 0);
        const kinds = new Set(children.map((c) => c.kind));
        add(kinds.size === 1 ? [...kinds][0] : p.kind, p.last.childTicks - p.base.childTicks - before);
      }
      return {
        wallSeconds: (Date.now() - startedAt) / 1000,
        cores,
        busySeconds,
        stealSeconds: (machine.steal - machineAtStart.steal) / TICKS_PER_SECOND,
        floorSeconds: busySeconds / cores,
        byProcess: [...byKind].filter(([, s]) => s >= 0.1).sort((a, b) => b[1] - a[1]),
      };
    },
  };
}

/** "28.1 CPU-s busy (floor 14.1 s on 2 cores): PostgreSQL primary 17.9, standby 2.7, ..." */
export function describeCpu(usage: CpuUsage): string {
  const parts = usage.byProcess.map(([kind, s]) => `${kind} ${s.toFixed(1)}`).join(', ');
  return `${usage.busySeconds.toFixed(1)} CPU-s busy (floor ${usage.floorSeconds.toFixed(1)} s on ${usage.cores} cores${usage.stealSeconds >= 0.5 ? `, ${usage.stealSeconds.toFixed(1)} s stolen` : ''}): ${parts}`;
}

/** The table cell "busy CPU-s / floor": '' when there is no usage. */
export function cpuCell(usage?: CpuUsage): string {
  return usage ? `${usage.busySeconds.toFixed(1)} / ${usage.floorSeconds.toFixed(1)} s` : '';
}

/** The PostgreSQL servers of the local stack, told apart by their data directories. */
export function stackServers(targets: WorkerConfig['targets']): Record<string, RegExp> {
  const primaryDataDir = targets.primary.server!.dataDir;
  const standbyDataDir = targets.standby?.server?.dataDir;
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const named: Record<string, RegExp> = { 'PostgreSQL primary': new RegExp(`postgres -D ${escape(primaryDataDir)}\\b`) };
  if (standbyDataDir) named['PostgreSQL standby'] = new RegExp(`postgres -D ${escape(standbyDataDir)}\\b`);
  const verifyDataDir = targets.verify?.server?.dataDir;
  if (verifyDataDir) named['PostgreSQL verify server'] = new RegExp(`postgres -D ${escape(verifyDataDir)}\\b`);
  return named;
}
