// Before each round of archiving: which node is primary now, whether it can be archived, and its
// slots ready (the streaming one, and a hold slot on it and on every standby, so the WAL the
// archive lacks survives a lost spool and a failover). A slot that lost its WAL is a gap: it is
// recreated, and the gap reported, never passed over in silence.
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import { resolveTarget, withTarget } from '../../shared/postgres/connection';
import { resolveCluster } from '../../failover/activities/cluster';
import { readTopology } from '../../failover/activities/topology';
import { archiveHoldSlotName, archiveSlotName, type ArchivePreparation } from '../contract';
import { archiveRoot, formatLsn, parseSegmentName, segmentName } from '../layout';
import { checkServerForArchive, ensureSlot, readServerFacts } from './archiveServer';
import { asArchiveFailure, WalArchiveStore } from './archiveStore';
import { spoolDir } from './spool';
import path from 'node:path';

const CONNECT_TIMEOUT_MS = 10_000;

export function prepareArchiveActivities(config: WorkerConfig) {
  async function prepareArchive(input: { cluster: string }): Promise<ArchivePreparation> {
    const cluster = resolveCluster(config, input.cluster);
    if (cluster.walArchive.mode === 'off') {
      throw ApplicationFailure.nonRetryable(
        `WAL archiving is off for cluster ${cluster.name} (PGOPS_CLUSTER_${cluster.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_WAL_ARCHIVE=off); set it to async or sync and resume the archiver`,
        'ArchiveDisabled',
      );
    }
    const topology = await readTopology(config, cluster.name);
    const target = resolveTarget(config, topology.primary);
    const slot = archiveSlotName(cluster.name);
    const holdSlot = archiveHoldSlotName(cluster.name);
    const prepared = await withTarget(
      target,
      async (client) => {
        const facts = await readServerFacts(client);
        if (facts.inRecovery) {
          throw ApplicationFailure.retryable(`${topology.primary}, the primary by ${topology.detail}, is in recovery: waiting for a primary`, 'PrimaryUnavailable');
        }
        const warnings = checkServerForArchive(target, facts, { synchronous: cluster.walArchive.mode === 'sync', applicationName: slot });
        const streaming = await ensureSlot(client, slot);
        const hold = await ensureSlot(client, holdSlot);
        if (hold.recreatedLost && !streaming.recreatedLost) warnings.push(`the hold slot ${holdSlot} on ${topology.primary} had lost its WAL and was recreated; the spool still holds what the archive lacks`);
        return { facts, warnings, streaming, hold };
      },
      { timeoutMs: CONNECT_TIMEOUT_MS },
    );
    const { facts, warnings } = prepared;
    const root = archiveRoot(config.s3, cluster.name, facts.systemIdentifier);

    const store = new WalArchiveStore(config, root, topology.primary, path.join(spoolDir(config, cluster.name, facts.systemIdentifier), '.upload'));
    let head: string | undefined;
    try {
      await store.ensureDescriptor({ cluster: cluster.name, systemIdentifier: facts.systemIdentifier, segmentBytes: facts.segmentBytes, createdAt: new Date().toISOString() });
      head = await store.indexHead();
    } catch (err) {
      throw asArchiveFailure(config, err);
    } finally {
      store.destroy();
    }

    const standbysHolding: string[] = [];
    for (const standby of topology.nodes.filter((n) => n.node !== topology.primary && n.reachable && n.inRecovery)) {
      // Best effort: a standby that cannot hold WAL for the archive weakens a failover, it does not stop archiving.
      await withTarget(resolveTarget(config, standby.node), (client) => ensureSlot(client, holdSlot), { timeoutMs: CONNECT_TIMEOUT_MS }).then(
        () => standbysHolding.push(standby.node),
        (err) => warnings.push(`no hold slot on standby ${standby.node}: ${(err as Error).message.split('\n')[0]}`),
      );
    }

    const headParsed = head ? parseSegmentName(head, facts.segmentBytes) : undefined;
    const lost = prepared.streaming.recreatedLost;
    return {
      cluster: cluster.name,
      mode: cluster.walArchive.mode,
      primary: topology.primary,
      systemIdentifier: facts.systemIdentifier,
      timeline: facts.timeline,
      segmentBytes: facts.segmentBytes,
      root,
      slot,
      holdSlot,
      walStatus: prepared.streaming.slot.walStatus ?? 'unknown',
      safeWalSizeBytes: prepared.streaming.slot.safeWalSizeBytes ?? undefined,
      // Not after a lost slot: the WAL there is gone, and the archive resumes where the new slot starts.
      resumeSegment: headParsed && !lost ? segmentName(headParsed.timeline, headParsed.segno + 1n, facts.segmentBytes) : undefined,
      standbysHolding,
      warnings,
      gap: lost
        ? {
            timeline: headParsed?.timeline ?? facts.timeline,
            fromLsn: headParsed ? formatLsn((headParsed.segno + 1n) * BigInt(facts.segmentBytes)) : '0/0',
            toLsn: prepared.streaming.slot.restartLsn ?? undefined,
            reason: `slot ${slot} on ${topology.primary} had lost its WAL (wal_status ${lost.walStatus}, ${lost.invalidationReason ?? 'no restart_lsn'}): the server removed WAL the archive never received`,
            detectedAt: new Date().toISOString(),
          }
        : undefined,
    };
  }
  return { prepareArchive };
}
