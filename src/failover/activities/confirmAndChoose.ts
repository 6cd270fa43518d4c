// Steps 1 and 2 of a failover: is the primary really gone, and which standby holds the most WAL?
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../../shared/config';
import type { CandidateChoice, FailureConfirmation, PrimaryProbe } from '../contract';
import { clusterNode, resolveCluster } from './cluster';
import { furthest, lsnDiff, lsnToBigInt, probePrimary, readPosition, readPositions } from './walPositions';

export function confirmAndChooseActivities(config: WorkerConfig) {
  /**
   * Probes the primary every interval across the window. Any answer cancels: a blip is not a
   * failure. So does a standby whose WAL receiver still hears the primary (the worker may be the
   * one cut off). Safe to repeat: a retry starts a new window. `failingSinceMs` is when a
   * watcher's probe first failed: the window counts from there (never from earlier than one
   * window ago), and every probe of this run must fail too.
   */
  async function confirmPrimaryFailure(input: { cluster: string; primary: string; standbys: string[]; failingSinceMs?: number }): Promise<FailureConfirmation> {
    const cluster = resolveCluster(config, input.cluster);
    const { confirmWindowMs, probeIntervalMs, probeTimeoutMs } = cluster.policy;
    const primary = clusterNode(config, cluster, input.primary);
    const standbys = input.standbys.map((name) => clusterNode(config, cluster, name));
    const probes: PrimaryProbe[] = [];
    const started = Math.max(input.failingSinceMs ?? Date.now(), Date.now() - confirmWindowMs);
    for (;;) {
      const probe = await probePrimary(primary, probeTimeoutMs);
      probes.push(probe);
      Context.current().heartbeat({ probes: probes.length });
      if (probe.ok) {
        const failures = probes.filter((p) => !p.ok).length;
        return {
          failed: false,
          reason: failures ? `primary ${primary.name} answered again after ${failures} failed probe(s)` : `primary ${primary.name} answers`,
          probes,
          standbys: await readPositions(standbys, probeTimeoutMs),
        };
      }
      const windowLeft = started + confirmWindowMs - Date.now();
      if (windowLeft <= 0) break;
      await sleep(Math.min(probeIntervalMs, windowLeft));
    }
    const positions = await readPositions(standbys, probeTimeoutMs);
    const stillHearing = positions.find(
      (p) => p.receiverStatus === 'streaming' && p.receiverSilentMs !== undefined && p.receiverSilentMs < confirmWindowMs,
    );
    if (stillHearing) {
      return {
        failed: false,
        reason: `standby ${stillHearing.node} still hears the primary (last message ${stillHearing.receiverSilentMs} ms ago): not a failure of the primary`,
        probes,
        standbys: positions,
      };
    }
    return {
      failed: true,
      reason: `primary ${primary.name} failed ${probes.length} probe(s) over ${Date.now() - started} ms: ${probes[probes.length - 1].error}`,
      probes,
      standbys: positions,
    };
  }

  /**
   * Reads every standby in one bounded round (the primary is down or cleanly stopped, so no
   * receiver is moving), picks the one holding the most WAL, and waits a bounded time for its
   * replay to reach what it received. `mustHaveReceived` (switchover) is the old primary's
   * shutdown checkpoint: the candidate must have received past it.
   */
  async function chooseCandidate(input: { cluster: string; standbys: string[]; mustHaveReceived?: string }): Promise<CandidateChoice> {
    const cluster = resolveCluster(config, input.cluster);
    const { probeTimeoutMs, replayCatchUpMs } = cluster.policy;
    const targets = input.standbys.map((name) => clusterNode(config, cluster, name));
    const positions = await readPositions(targets, Math.max(probeTimeoutMs, 2_000));
    const eligible = positions.filter((p) => p.reachable && p.inRecovery && furthest(p) !== undefined);
    if (eligible.length === 0) {
      throw ApplicationFailure.retryable(
        `no standby of cluster ${cluster.name} can be promoted: ${positions.map((p) => `${p.node}: ${p.error ?? (p.inRecovery ? 'no WAL position' : 'not in recovery')}`).join('; ')}`,
        'NoCandidate',
      );
    }
    eligible.sort((a, b) => (lsnToBigInt(furthest(b)!) > lsnToBigInt(furthest(a)!) ? 1 : -1));
    const candidate = targets.find((t) => t.name === eligible[0].node)!;
    const started = Date.now();
    let position = eligible[0];
    const caughtUp = () =>
      position.replayLsn !== undefined &&
      lsnDiff(furthest(position)!, position.replayLsn) <= 0 &&
      (input.mustHaveReceived === undefined || lsnDiff(furthest(position)!, input.mustHaveReceived) > 0);
    while (!caughtUp() && Date.now() - started < replayCatchUpMs) {
      Context.current().heartbeat({ candidate: candidate.name, position });
      await sleep(200);
      const next = await readPosition(candidate, Math.max(probeTimeoutMs, 2_000));
      if (next.reachable) position = next;
    }
    const receivedTo = furthest(position)!;
    let lagBytes = Math.max(0, lsnDiff(receivedTo, position.replayLsn ?? receivedTo));
    if (input.mustHaveReceived !== undefined && lsnDiff(receivedTo, input.mustHaveReceived) <= 0) {
      lagBytes += lsnDiff(input.mustHaveReceived, receivedTo) + 1;
    }
    return {
      candidate: candidate.name,
      receiveLsn: receivedTo,
      replayLsn: position.replayLsn ?? receivedTo,
      lagBytes,
      waitedMs: Date.now() - started,
      ...(input.mustHaveReceived === undefined ? {} : { receivedShutdownCheckpoint: lsnDiff(receivedTo, input.mustHaveReceived) > 0 }),
      standbys: positions.map((p) => (p.node === position.node ? position : p)),
    };
  }

  return { confirmPrimaryFailure, chooseCandidate };
}
