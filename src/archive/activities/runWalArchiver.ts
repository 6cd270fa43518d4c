// The archiver itself: one heartbeating activity that supervises pg_receivewal for a round and
// ships what it writes. History files first, then complete segments in order, each read back
// from S3 before its local copy goes; the segment still being written goes up at most once a
// second while it grows, so a quiet server's latest commits are in S3 within seconds too.
// A killed pg_receivewal is restarted; a killed worker's successor resumes from the spool, or
// from the slots when the spool is gone. Every exit of pg_receivewal is read and acted on.
import { watch, type FSWatcher } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { CancelledFailure, Context } from '@temporalio/activity';
import { workerShutdownSignal } from '../../shared/temporal/workerShutdown';
import type { Client } from 'pg';
import type { TargetConfig, WorkerConfig } from '../../shared/config';
import { connectTarget, resolveTarget } from '../../shared/postgres/connection';
import { heartbeatWhile } from '../../shared/heartbeat';
import { readTopology } from '../../failover/activities/topology';
import type { ArchiveGap, ArchivePreparation, ArchiveProgress, ArchiveRoundResult } from '../contract';
import { formatLsn, parseLsn, parseSegmentName, segmentName } from '../layout';
import { advanceHoldSlot, ensureSlot, readSlot } from './archiveServer';
import { asArchiveFailure, WalArchiveStore } from './archiveStore';
import { startReceiver, stopStaleReceiver, type Receiver, type ReceiverExit } from './receiver';
import { clearSpool, hasWal, prepareSpool, readSpool, seedSpool, spoolDir, type SpoolContents, type SpoolSegment } from './spool';
import { walEndInFile } from './walEnd';

export interface RunWalArchiverInput {
  prep: ArchivePreparation;
  roundMs: number;
  /** Upload what the spool holds, then empty it: after a gap its position means nothing any more. */
  resetSpool?: boolean;
}

const TICK_MS = 500;
const PARTIAL_EVERY_MS = 1_000;
const HOLD_EVERY_MS = 2_000;
const QUERY_TIMEOUT_MS = 5_000;
/** A slot busy this long after our receiver died belongs to a walsender that did not notice: end it. */
const SLOT_BUSY_GRACE_MS = 10_000;
/** Unexplained exits in a row before the round gives up (Temporal retries the activity). */
const MAX_FAILED_STARTS = 8;

/** A connection to a node that is reopened on the next use after any error. */
class NodeConnection {
  private client?: Client;
  constructor(readonly target: TargetConfig) {}
  async query<T>(work: (client: Client) => Promise<T>): Promise<T> {
    this.client ??= await connectTarget(this.target, { timeoutMs: QUERY_TIMEOUT_MS });
    try {
      return await work(this.client);
    } catch (err) {
      void this.client.end().catch(() => undefined);
      this.client = undefined;
      throw err;
    }
  }
  close(): void {
    void this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}

export function runWalArchiverActivities(config: WorkerConfig) {
  async function runWalArchiver(input: RunWalArchiverInput): Promise<ArchiveRoundResult> {
    const { prep } = input;
    const context = Context.current();
    const segmentBytes = prep.segmentBytes;
    const spool = spoolDir(config, prep.cluster, prep.systemIdentifier);
    await prepareSpool(spool);
    const store = new WalArchiveStore(config, prep.root, prep.primary, path.join(spool, '.upload'));
    const primary = new NodeConnection(resolveTarget(config, prep.primary));
    const holders = [primary, ...prep.standbysHolding.map((n) => new NodeConnection(resolveTarget(config, n)))];
    const progress: ArchiveProgress = { receiverStarts: 0, segmentsUploaded: 0, historiesUploaded: 0, bytesUploaded: 0, spoolBytes: 0, at: new Date().toISOString() };
    const heartbeats = heartbeatWhile(() => ({ ...progress, at: new Date().toISOString() }));

    let receiver: Receiver | undefined;
    let wake: (() => void) | undefined;
    const watcher: FSWatcher | undefined = (() => {
      try {
        return watch(spool, () => wake?.());
      } catch {
        return undefined; // polling alone still works
      }
    })();
    const uploadedHistories = new Set<number>();
    let partialUploadedAt = 0;
    let partialValidTo = -1n;
    let partialSegment: string | undefined;
    /** End of the contiguous archived prefix: the hold slots may move up to here. */
    let archivedTo: bigint | undefined;
    let holdAdvancedTo: bigint | undefined;
    let holdAdvancedAt = 0;

    const noteError = (what: string, err: unknown) => {
      progress.lastError = `${new Date().toISOString()} ${what}: ${(err as Error).message.split('\n')[0]}`;
    };

    /** Non-retryable failures (a conflict, a bucket that refuses) end the round; the rest wait for the next pass. */
    const guarded = async (what: string, work: () => Promise<void>): Promise<boolean> => {
      try {
        await work();
        return true;
      } catch (err) {
        const failure = asArchiveFailure(config, err);
        if (failure instanceof ApplicationFailure && failure.nonRetryable) throw failure;
        noteError(what, failure);
        return false;
      }
    };

    async function uploadComplete(contents: SpoolContents): Promise<void> {
      for (const history of contents.histories) {
        if (uploadedHistories.has(history.timeline)) continue;
        if (!(await guarded(`history file of timeline ${history.timeline}`, () => store.uploadHistory(history.file, history.timeline)))) return;
        uploadedHistories.add(history.timeline);
        progress.historiesUploaded += 1;
      }
      for (const segment of contents.complete) {
        if (context.cancellationSignal.aborted && !stopping) return;
        const ok = await guarded(`segment ${segment.name}`, async () => {
          const entry = await store.uploadSegment(segment.file, segment.name);
          await store.recordInIndex(entry, segmentBytes);
          await store.deletePartial(segment.name);
          progress.bytesUploaded += entry.storedBytes;
        });
        if (!ok) return; // in order: nothing after a segment that is not up yet
        await rm(segment.file, { force: true });
        progress.segmentsUploaded += 1;
        progress.lastSegment = segment.name;
        archivedTo = (segment.segno + 1n) * BigInt(segmentBytes);
        if (partialSegment === segment.name) {
          partialSegment = undefined;
          partialValidTo = -1n;
        }
        heartbeats.progressed();
      }
    }

    /** Where a segment abandoned at a timeline switch stops being valid: the switch point, from the next timeline's history file. */
    async function abandonedValidTo(segment: SpoolSegment, contents: SpoolContents): Promise<string | undefined> {
      for (const history of contents.histories.filter((h) => h.timeline > segment.timeline)) {
        const switchLsn = (await readFile(history.file, 'utf8').catch(() => ''))
          .split('\n')
          .map((line) => line.trim().split(/\s+/))
          .find(([tli]) => Number(tli) === segment.timeline)?.[1];
        if (switchLsn && parseLsn(switchLsn) / BigInt(segmentBytes) === segment.segno) return switchLsn;
      }
      return undefined;
    }

    /**
     * The newest .partial's valid end: what pg_receivewal has fsynced (the slot's restart_lsn, with
     * --synchronous), if inside it; with the primary unreachable and pg_receivewal stopped, the end
     * of the last whole record in the file (so a synchronously acknowledged commit reaches S3 even
     * when the primary died before the last once-a-second upload).
     */
    async function newestValidTo(segment: SpoolSegment): Promise<bigint | undefined> {
      const flushed = await primary.query((c) => readSlot(c, prep.slot)).then(
        (slot) => slot?.restartLsn ?? undefined,
        // The primary is gone and pg_receivewal with it: what it wrote is all the archive will get.
        () => (receiver && !receiver.done ? undefined : validToWithoutServer(segment)),
      );
      if (!flushed) return undefined;
      const start = segment.segno * BigInt(segmentBytes);
      const validTo = typeof flushed === 'bigint' ? flushed : parseLsn(flushed);
      // Nothing of it yet (a seed), or complete and about to be renamed.
      return validTo > start && validTo < start + BigInt(segmentBytes) ? validTo : undefined;
    }

    /** pg_waldump's reading of the file, once per version of it (the server may stay away a while). */
    let readWithoutServer: { name: string; bytes: number; mtimeMs: number; end?: bigint } | undefined;
    async function validToWithoutServer(segment: SpoolSegment): Promise<bigint | undefined> {
      const { mtimeMs } = await stat(segment.file).catch(() => ({ mtimeMs: -1 }));
      if (readWithoutServer?.name === segment.name && readWithoutServer.bytes === segment.bytes && readWithoutServer.mtimeMs === mtimeMs) return readWithoutServer.end;
      const end = await walEndInFile(config, segment.file, segmentName(segment.timeline, segment.segno, segmentBytes)).catch(() => undefined);
      readWithoutServer = { name: segment.name, bytes: segment.bytes, mtimeMs, end };
      return end;
    }

    /** Abandoned partials (not the newest) go up as final and leave the spool; the newest goes up at most once a second while it grows. */
    async function uploadPartials(contents: SpoolContents, force: boolean): Promise<void> {
      const newest = contents.partials.at(-1);
      for (const abandoned of contents.partials.slice(0, -1)) {
        const validTo = await abandonedValidTo(abandoned, contents);
        const ok = await guarded(`abandoned partial ${abandoned.name}`, async () => {
          progress.bytesUploaded += await store.uploadPartial(abandoned.file, abandoned.name, validTo ?? 'unknown', true);
        });
        if (!ok) return;
        await rm(abandoned.file, { force: true });
      }
      if (!newest || (!force && Date.now() - partialUploadedAt < PARTIAL_EVERY_MS)) return;
      const validTo = await newestValidTo(newest);
      if (validTo === undefined || (newest.name === partialSegment && validTo <= partialValidTo)) return;
      const ok = await guarded(`partial ${newest.name}`, async () => {
        progress.bytesUploaded += await store.uploadPartial(newest.file, newest.name, formatLsn(validTo), false);
      });
      if (!ok) return;
      partialUploadedAt = Date.now();
      partialSegment = newest.name;
      partialValidTo = validTo;
      progress.partialSegment = newest.name;
      progress.partialValidToLsn = formatLsn(validTo);
      heartbeats.progressed();
    }

    async function advanceHolds(): Promise<void> {
      if (archivedTo === undefined || archivedTo === holdAdvancedTo || Date.now() - holdAdvancedAt < HOLD_EVERY_MS) return;
      holdAdvancedAt = Date.now();
      const to = formatLsn(archivedTo);
      for (const node of holders) await node.query((c) => advanceHoldSlot(c, prep.holdSlot, to)).catch((err) => noteError(`advancing ${prep.holdSlot} on ${node.target.name}`, err));
      holdAdvancedTo = archivedTo;
    }

    async function readStatus(): Promise<void> {
      await primary
        .query(async (c) => {
          const { rows } = await c.query('SELECT pg_current_wal_lsn()::text AS lsn');
          const slot = await readSlot(c, prep.slot);
          const current = parseLsn(rows[0].lsn);
          const head = partialValidTo > (archivedTo ?? 0n) ? partialValidTo : archivedTo;
          progress.lagBytes = head === undefined ? undefined : Math.max(0, Number(current - head));
          progress.safeWalSizeBytes = slot?.safeWalSizeBytes ?? undefined;
        })
        .catch(() => undefined);
    }

    let stopping = false;
    async function pass(force = false): Promise<SpoolContents> {
      const contents = await readSpool(spool, segmentBytes);
      await uploadComplete(contents);
      const after = await readSpool(spool, segmentBytes);
      await uploadPartials(after, force);
      progress.spoolBytes = after.complete.length * segmentBytes;
      await advanceHolds();
      return after;
    }

    /** Everything up, then an empty spool (after a gap or a fork, where its position is no use). */
    async function drainAndClear(): Promise<void> {
      const contents = await pass(true);
      if (contents.complete.length > 0) throw ApplicationFailure.retryable(`${contents.complete.length} segment(s) could not be uploaded: ${progress.lastError}`, 'ArchiveUploadPending');
      const newest = contents.partials.at(-1);
      const validTo = newest && (await newestValidTo(newest));
      if (newest && validTo !== undefined) {
        await store.uploadPartial(newest.file, newest.name, formatLsn(validTo), true).catch((err) => {
          throw asArchiveFailure(config, err);
        });
      }
      await clearSpool(spool);
      partialSegment = undefined;
      partialValidTo = -1n;
    }

    /** The end of what the archive holds on this round's timeline, as far as this round knows. */
    const archiveEnd = (): string | undefined => {
      if (archivedTo !== undefined) return formatLsn(archivedTo);
      const resume = prep.resumeSegment && parseSegmentName(prep.resumeSegment, segmentBytes);
      return resume ? formatLsn(resume.segno * BigInt(segmentBytes)) : undefined;
    };

    /**
     * The server no longer has WAL the archive needs. Whatever the spool holds goes up first; then a
     * lost slot is made anew (a slot that is only behind keeps what it still holds), and the spool
     * starts empty, at the slot.
     */
    async function gapAfterLostWal(exit: ReceiverExit): Promise<ArchiveGap> {
      const from = archiveEnd();
      await drainAndClear();
      const slot = await primary.query(async (c) => {
        if (exit.kind === 'slotLost') await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NULL', [prep.slot]);
        await ensureSlot(c, prep.holdSlot);
        return (await ensureSlot(c, prep.slot)).slot;
      });
      return {
        timeline: prep.timeline,
        fromLsn: from ?? 'unknown',
        toLsn: slot.restartLsn ?? undefined,
        reason: `pg_receivewal on ${prep.primary}: ${exit.detail}`,
        detectedAt: new Date().toISOString(),
      };
    }

    const deadline = Date.now() + input.roundMs;
    let failedStarts = 0;
    let nextStartAt = 0;
    let slotBusySince: number | undefined;
    let receiverStartedAt = 0;
    let result: ArchiveRoundResult | undefined;
    const end = (reason: ArchiveRoundResult['reason'], detail: string, gap?: ArchiveGap) => {
      result = { reason, detail, progress: { ...progress, receiverPid: undefined, at: new Date().toISOString() }, gap };
    };

    try {
      if (input.resetSpool) await drainAndClear();
      while (!result) {
        if (context.cancellationSignal.aborted) throw new CancelledFailure('archiver round cancelled');
        if (Date.now() >= deadline || workerShutdownSignal.aborted) {
          end('round', workerShutdownSignal.aborted ? 'the worker is stopping: the next round goes to a worker that polls' : 'round over');
          break;
        }
        if (!receiver && Date.now() >= nextStartAt) {
          const contents = await readSpool(spool, segmentBytes);
          if (!hasWal(contents) && prep.resumeSegment) await seedSpool(spool, prep.resumeSegment, segmentBytes);
          receiver = await startReceiver(config, primary.target, spool, prep.slot);
          receiverStartedAt = Date.now();
          void receiver.exited.then(() => wake?.());
          progress.receiverPid = receiver.pid;
          progress.receiverStarts += 1;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, TICK_MS);
          wake = () => {
            clearTimeout(timer);
            setTimeout(resolve, 50); // let a burst of writes settle
          };
        });
        wake = undefined;
        await pass();
        await readStatus();

        if (!receiver?.done) continue;
        const exit = await receiver.exited;
        receiver = undefined;
        progress.receiverPid = undefined;
        if (exit.kind !== 'slotBusy') slotBusySince = undefined;
        switch (exit.kind) {
          case 'lockBusy':
            if (!(await stopStaleReceiver(spool))) nextStartAt = Date.now() + 1_000;
            break;
          case 'slotBusy':
            slotBusySince ??= Date.now();
            if (Date.now() - slotBusySince > SLOT_BUSY_GRACE_MS && exit.busyPid) {
              await primary.query((c) => c.query('SELECT pg_terminate_backend($1)', [exit.busyPid])).catch(() => undefined);
            }
            nextStartAt = Date.now() + 1_000;
            break;
          case 'slotLost':
          case 'walRemoved': {
            const gap = await gapAfterLostWal(exit);
            end('gap', gap.reason, gap);
            break;
          }
          case 'forked': {
            // The spool ran past where the new primary's timeline branched off: put it all in S3 and
            // start again at the branch point on the primary's timeline.
            await drainAndClear();
            const forkSegno = parseLsn(exit.forkLsn!) / BigInt(segmentBytes);
            await seedSpool(spool, segmentName(prep.timeline, forkSegno, segmentBytes), segmentBytes);
            noteError('timeline fork', new Error(exit.detail));
            break;
          }
          case 'slotMissing':
            end('prepareAgain', `pg_receivewal: ${exit.detail}`);
            break;
          case 'notConfigured':
            throw ApplicationFailure.nonRetryable(`ServerNotConfigured: pg_receivewal cannot stream from ${prep.primary}: ${exit.detail}`, 'ServerNotConfigured');
          case 'unreachable':
          case 'failed':
          case 'stopped': {
            noteError('pg_receivewal', new Error(exit.detail));
            // A receiver that ran a while before it failed is a new story, not one more failed start.
            if (Date.now() - receiverStartedAt > 30_000) failedStarts = 0;
            failedStarts += 1;
            nextStartAt = Date.now() + Math.min(10_000, 1_000 * 2 ** Math.min(failedStarts - 1, 4));
            const topology = await readTopology(config, prep.cluster).catch(() => undefined);
            const moved = topology && topology.primary !== prep.primary && topology.nodes.some((n) => n.node === topology.primary && n.reachable && n.inRecovery === false);
            if (moved) end('primaryChanged', `the primary is now ${topology!.primary} (${topology!.detail})`);
            else if (exit.kind === 'failed' && failedStarts >= MAX_FAILED_STARTS) {
              throw ApplicationFailure.retryable(`pg_receivewal keeps failing against ${prep.primary}: ${exit.detail}`, 'ReceiverFailing');
            }
            break;
          }
        }
      }
      return result!;
    } finally {
      stopping = true;
      watcher?.close();
      if (receiver) await receiver.stop();
      // What pg_receivewal flushed before it stopped: up now, unless the store is what failed.
      await pass(true).catch(() => undefined);
      heartbeats.stop();
      store.destroy();
      for (const node of holders) node.close();
    }
  }

  return { runWalArchiver };
}
