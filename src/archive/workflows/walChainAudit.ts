// walChainAudit: the WAL archive's chain checked on a schedule (one per cluster). Audit the chain;
// where it has holes, ask whether any base backup still reaches the archive's head past them; if
// none does, start a fresh full base backup (the gap's own, so repeated audits start it once) and
// tell the webhook. A hole an earlier full backup already got past is reported, not acted on.
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { NAME_PATTERN } from '../../shared/targets';
import { causeMessage } from '../../shared/temporal/causeMessage';
import { chainHoles, newestHoleName } from '../chainHoles';
import { windowInputsFromAudit } from '../recoveryWindow';
import { startGapBaseBackup } from '../gapBaseBackup';
import type { WalChainAuditInput, WalChainAuditResult } from '../contract';

// The audit lists and reads the index of the whole archive: minutes for a large one.
const { auditWalChain, recoverableWindowOf } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});
const { notifyWebhook } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

export async function walChainAudit(input: WalChainAuditInput): Promise<WalChainAuditResult> {
  if (!input || typeof input.cluster !== 'string' || !NAME_PATTERN.test(input.cluster)) {
    throw ApplicationFailure.nonRetryable(`input.cluster must name a configured cluster (e.g. "main"), got ${JSON.stringify(input?.cluster)}`, 'BadInput');
  }
  const { cluster } = input;
  const audit = await auditWalChain({ cluster });
  const holes = chainHoles(audit, audit.segmentBytes);
  const result: WalChainAuditResult = {
    cluster,
    status: 'ok',
    root: audit.root,
    headTimeline: audit.headTimeline,
    headLsn: audit.headLsn,
    holes,
    recordedGaps: audit.recordedGaps.length,
    auditedAt: audit.auditedAt,
  };
  if (!audit.root || audit.timelines.length === 0) return { ...result, status: 'no-archive' };
  if (holes.length === 0) return result;

  const { chain, switches } = windowInputsFromAudit(audit);
  const window = await recoverableWindowOf({ cluster, root: audit.root, chain: { ...chain, segmentBytes: audit.segmentBytes }, switches });
  result.recoverableFrom = window.from?.backupId;
  // A base backup past every hole reaches the head: the window restarted there, nothing to do.
  if (window.from) return { ...result, status: 'gap-covered' };

  result.status = 'gap';
  const name = newestHoleName(holes);
  if (name && audit.systemIdentifier && !input.dryRun) result.baseBackup = await startGapBaseBackup(cluster, audit.systemIdentifier, name);
  const delivery = await notifyWebhook({ kind: 'wal-chain-audit', workflowId: workflowInfo().workflowId, cluster, status: 'gap', holes, headLsn: audit.headLsn, baseBackup: result.baseBackup }).then(
    (d) => ({ delivered: d.delivered, error: undefined }),
    // A dead webhook must not hide the gap: the result (and the schedule's history) still says it.
    (err) => ({ delivered: false, error: causeMessage(err) }),
  );
  result.notified = delivery.delivered;
  if (delivery.error) result.webhookError = delivery.error;
  return result;
}
