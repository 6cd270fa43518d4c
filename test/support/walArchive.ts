// What the WAL-archive tests and benchmark share: a worker environment with an archived cluster of
// their own on the stack's servers (own slots, own spool, own bucket prefix), the archiver's
// handle, and a way to tell whether a position is in S3 yet.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectsCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import execa from 'execa';
import type { Client as TemporalClient, WorkflowHandle } from '@temporalio/client';
import { clusterVariable, loadWorkerConfig, type TargetConfig, type WorkerConfig } from '../../src/shared/config';
import { connectTarget } from '../../src/shared/postgres/connection';
import { createS3Client, readObjectIfPresent } from '../../src/shared/storage/s3Client';
import { archiveHoldSlotName, archiveSlotName, type WalArchiveState } from '../../src/archive/contract';
import { listKeys, headMetadata } from '../../src/archive/activities/archiveStore';
import { openBuffer } from '../../src/archive/archiveCrypto';
import { parseLsn, segmentName, segmentNumber, walPartialKey, walSegmentKey, walTimelinePrefix, type WalIndexBlock } from '../../src/archive/layout';
import { pauseWalArchiver, resumeWalArchiver, startWalArchiver, walArchiveStatus } from '../../src/client/archive';
import { stackEnv, withWorker } from './stack';

export interface ArchivedCluster {
  cluster: string;
  prefix: string;
  spoolDir: string;
  env: Record<string, string>;
  config: WorkerConfig;
}

/** A cluster `name` over the stack's primary and standby, archived under a bucket prefix and spool of its own. */
export function archivedStackCluster(name: string, extra: Record<string, string> = {}): ArchivedCluster {
  const spoolDir = mkdtempSync(path.join(os.tmpdir(), `pgops-wal-${name}-`));
  const prefix = `test-wal/${name}-${randomUUID().slice(0, 8)}`;
  const base = stackEnv() as Record<string, string>;
  const env: Record<string, string> = {
    ...base,
    PGOPS_CLUSTERS: `${base.PGOPS_CLUSTERS},${name}`,
    [clusterVariable(name, 'PRIMARY')]: 'primary',
    [clusterVariable(name, 'STANDBYS')]: 'standby',
    PGOPS_WAL_SPOOL_DIR: spoolDir,
    PGOPS_S3_PREFIX: prefix,
    PGOPS_WORKER_SHUTDOWN_GRACE: '10 seconds',
    ...extra,
  };
  return { cluster: name, prefix, spoolDir, env, config: loadWorkerConfig({ ...env, PGOPS_ENV_FILE: '/dev/null' }) };
}

/** Starts the archiver and waits until its first round streams (a receiver runs). */
export async function startArchiving(client: TemporalClient, taskQueue: string, cluster: string, roundMs?: number): Promise<WorkflowHandle> {
  const handle = await startWalArchiver(client, { taskQueue, workflowId: `wal-archive-${cluster}-${randomUUID().slice(0, 8)}` }, { cluster, roundMs });
  return handle;
}

/** Stops the archiver (cancel: the round uploads what it has and stops pg_receivewal first). */
export async function stopArchiving(handle: WorkflowHandle): Promise<void> {
  await handle.cancel().catch(() => undefined);
  await Promise.race([handle.result().catch(() => undefined), new Promise((r) => setTimeout(r, 30_000))]);
  await handle.terminate('test over').catch(() => undefined);
}

/** The archiver's state; while a restarted worker has not polled yet, Temporal refuses queries, so this waits for one (up to 60 s). */
export async function archiveState(handle: WorkflowHandle): Promise<WalArchiveState> {
  for (let waited = 0; ; waited += 500) {
    try {
      return (await walArchiveStatus(handle)).state;
    } catch (err) {
      if (waited >= 60_000 || !/no poller seen/.test(String((err as { cause?: unknown }).cause ?? err))) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Drops the cluster's archive slots on the given servers (waiting for a walsender to let go). */
export async function dropArchiveSlots(cluster: string, targets: TargetConfig[]): Promise<void> {
  for (const target of targets) {
    const client = await connectTarget(target).catch(() => undefined);
    if (!client) continue;
    try {
      for (let i = 0; i < 50; i++) {
        const { rows } = await client.query('SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name = ANY($1)', [[archiveSlotName(cluster), archiveHoldSlotName(cluster)]]);
        if (rows.length === 0) break;
        for (const row of rows) {
          if (row.active_pid) await client.query('SELECT pg_terminate_backend($1)', [row.active_pid]);
          else await client.query('SELECT pg_drop_replication_slot($1)', [row.slot_name]).catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await client.end();
    }
  }
}

export async function removePrefix(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  const keys = await listKeys(s3, bucket, `${prefix}/`);
  for (let i = 0; i < keys.length; i += 500) {
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 500).map((Key) => ({ Key })) } }));
  }
}

export async function cleanUpArchivedCluster(archived: ArchivedCluster, slotTargets: TargetConfig[]): Promise<void> {
  await dropArchiveSlots(archived.cluster, slotTargets);
  const s3 = createS3Client(archived.config.s3);
  try {
    await removePrefix(s3, archived.config.s3.bucket, archived.prefix);
  } finally {
    s3.destroy();
  }
  rmSync(archived.spoolDir, { recursive: true, force: true });
}

/** True once `lsn` on `timeline` is in S3: its segment complete, or the partial copy valid past it. */
export async function isArchived(s3: S3Client, bucket: string, root: string, timeline: number, lsn: string, segmentBytes = 16 * 1024 * 1024): Promise<boolean> {
  const position = parseLsn(lsn);
  const segment = segmentName(timeline, segmentNumber(position, segmentBytes), segmentBytes);
  if (await headMetadata(s3, bucket, walSegmentKey(root, segment))) return true;
  const partial = await headMetadata(s3, bucket, walPartialKey(root, segment));
  const validTo = partial?.['valid-to-lsn'];
  return validTo !== undefined && validTo !== 'unknown' && parseLsn(validTo) >= position;
}

/**
 * Commits small transactions through `target` every `everyMs` and measures, per commit, the time
 * until its WAL position is in S3 (polled every 100 ms). `lags()` returns the measured ms.
 */
export function startCommitProbe(target: TargetConfig, s3: S3Client, bucket: string, where: () => { root: string; timeline: number } | undefined, everyMs = 250) {
  const pending: { lsn: string; at: number }[] = [];
  const lags: number[] = [];
  let committed = 0;
  let running = true;
  let stopAt = 0;
  const writer = (async () => {
    const db = await connectTarget(target);
    await db.query('CREATE TABLE IF NOT EXISTS pgops_wal_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())');
    while (running) {
      await db.query('INSERT INTO pgops_wal_probe DEFAULT VALUES');
      const at = Date.now();
      const { rows } = await db.query('SELECT pg_current_wal_lsn()::text AS lsn');
      pending.push({ lsn: rows[0].lsn, at });
      committed += 1;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    await db.end();
  })();
  const completeSegments = new Set<string>();
  /** Up to where `segment` is in S3: all of it once complete, else its partial copy's valid end. */
  async function archivedIn(root: string, segment: string): Promise<bigint> {
    if (completeSegments.has(segment)) return BigInt('0xFFFFFFFFFFFFFFFF');
    if (await headMetadata(s3, bucket, walSegmentKey(root, segment))) {
      completeSegments.add(segment);
      return BigInt('0xFFFFFFFFFFFFFFFF');
    }
    const validTo = (await headMetadata(s3, bucket, walPartialKey(root, segment)))?.['valid-to-lsn'];
    return validTo && validTo !== 'unknown' ? parseLsn(validTo) : -1n;
  }
  const poller = (async () => {
    while (running || pending.length) {
      const place = where();
      if (place && pending.length) {
        const now = Date.now();
        const ends = new Map<string, bigint>();
        const still: typeof pending = [];
        for (const p of pending) {
          const position = parseLsn(p.lsn);
          const segment = segmentName(place.timeline, segmentNumber(position));
          if (!ends.has(segment)) ends.set(segment, await archivedIn(place.root, segment).catch(() => -1n));
          if (ends.get(segment)! >= position) lags.push(now - p.at);
          else still.push(p);
        }
        pending.splice(0, pending.length, ...still);
      }
      if (!running && Date.now() > stopAt + 30_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    lags: () => [...lags],
    committed: () => committed,
    unarchived: () => pending.length,
    async stop() {
      running = false;
      stopAt = Date.now();
      await writer;
      await poller;
    },
  };
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** A steady write load: one transaction of about `bytesPerCommit` every `everyMs`, until stopped. */
export function startWalLoad(target: TargetConfig, bytesPerCommit = 64 * 1024, everyMs = 20) {
  let running = true;
  let commits = 0;
  const rows = Math.max(1, Math.round(bytesPerCommit / 1024));
  const done = (async () => {
    const db = await connectTarget(target);
    await db.query('CREATE TABLE IF NOT EXISTS pgops_wal_load (payload text)');
    while (running) {
      // md5 text does not compress away in the WAL: the load is what it says.
      await db.query(`INSERT INTO pgops_wal_load SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 32), generate_series(1, $1) g GROUP BY g`, [rows]).catch(() => undefined);
      commits += 1;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    await db.end();
  })();
  return {
    commits: () => commits,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The pid of the pg_receivewal writing into `spool`, if one runs. */
export function receiverPid(spool: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('pg_receivewal')) && argv.some((a) => a.startsWith(spool))) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** Bytes of WAL the primary keeps for the archive: its position minus the hold slot's. */
export async function retainedForArchive(target: TargetConfig, cluster: string): Promise<number> {
  const db = await connectTarget(target);
  try {
    const { rows } = await db.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS bytes FROM pg_replication_slots WHERE slot_name = $1', [archiveHoldSlotName(cluster)]);
    return Number(rows[0]?.bytes ?? 0);
  } finally {
    await db.end();
  }
}

/** Every indexed segment's SHA-256 equals the one on its object (no segment stored twice with different content). */
export async function indexAgreesWithObjects(s3: S3Client, bucket: string, root: string): Promise<string[]> {
  const disagreements: string[] = [];
  for (const key of (await listKeys(s3, bucket, `${root}/wal-index/`)).filter((k) => k.endsWith('.json'))) {
    const block = JSON.parse((await readObjectIfPresent(s3, bucket, key))!.body) as WalIndexBlock;
    for (const entry of block.segments) {
      const meta = await headMetadata(s3, bucket, walSegmentKey(root, entry.segment));
      if (meta?.sha256 !== entry.sha256) disagreements.push(`${entry.segment}: index ${entry.sha256}, object ${meta?.sha256 ?? 'absent'}`);
    }
  }
  return disagreements;
}

/**
 * For the history recorder: the archiver of a cluster of its own over the stack's servers runs
 * two 5-second rounds, is paused and resumed, runs one more, and is stopped (cancelled).
 */
export async function recordWalArchiver(client: TemporalClient, workflowId: string): Promise<void> {
  const archived = archivedStackCluster('walrecord');
  try {
    await withWorker(archived.config, async ({ taskQueue }) => {
      const handle = await startWalArchiver(client, { taskQueue, workflowId }, { cluster: archived.cluster, roundMs: 5_000 });
      const rounds = async (n: number) => {
        while ((await walArchiveStatus(handle)).state.rounds < n) await new Promise((r) => setTimeout(r, 250));
      };
      await rounds(2);
      await pauseWalArchiver(handle, { by: 'recorder', reason: 'recording a replay history' });
      await new Promise((r) => setTimeout(r, 1_000));
      await resumeWalArchiver(handle);
      await rounds(3);
      await handle.cancel();
      await handle.result().catch(() => undefined);
    });
  } finally {
    await cleanUpArchivedCluster(archived, [archived.config.targets.primary, archived.config.targets.standby]);
  }
}

/**
 * The commits the archive of `root` holds on `timeline`, by transaction id: every complete segment
 * and the newest partial (up to its valid-to-lsn only) downloaded, decompressed and read by
 * PostgreSQL's own pg_waldump.
 */
export async function archivedCommits(config: WorkerConfig, root: string, timeline: number): Promise<{ xids: Set<string>; validTo?: string; segments: number }> {
  const s3 = createS3Client(config.s3);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgops-waldump-'));
  try {
    const keys = await listKeys(s3, config.s3.bucket, walTimelinePrefix(root, timeline));
    const complete = keys.map((k) => /\/([0-9A-F]{24})\.zst$/.exec(k)?.[1]).filter((s): s is string => !!s);
    const partial = keys.map((k) => /\/([0-9A-F]{24})\.partial\.zst$/.exec(k)?.[1]).filter((s): s is string => !!s).sort().at(-1);
    const fetch = async (key: string, name: string) => {
      const object = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }));
      const stored = Buffer.from(await object.Body!.transformToByteArray());
      writeFileSync(path.join(dir, `${name}.zst`), config.encryption ? await openBuffer(config.encryption, root, key, stored) : stored);
      await execa('zstd', ['-d', '-q', '-f', '--rm', path.join(dir, `${name}.zst`), '-o', path.join(dir, name)]);
    };
    for (const segment of complete) await fetch(walSegmentKey(root, segment), segment);
    let validTo: string | undefined;
    if (partial && !complete.includes(partial)) {
      validTo = (await headMetadata(s3, config.s3.bucket, walPartialKey(root, partial)))?.['valid-to-lsn'];
      await fetch(walPartialKey(root, partial), partial);
    }
    const names = readdirSync(dir).sort();
    const dump = await execa(path.join(config.pgBinDir, 'pg_waldump'), ['--path', dir, '--rmgr', 'Transaction', names[0], names.at(-1)!], { reject: false });
    const limit = validTo && validTo !== 'unknown' ? parseLsn(validTo) : undefined;
    const xids = new Set<string>();
    for (const line of dump.stdout.split('\n')) {
      const m = /tx:\s+(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: COMMIT/.exec(line);
      // A commit past the partial's valid-to-lsn is bytes in the file, not yet WAL the archive vouches for.
      if (m && (limit === undefined || parseLsn(m[2]) < limit)) xids.add(m[1]);
    }
    return { xids, validTo, segments: names.length };
  } finally {
    s3.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
