// pgops basebackup now|schedule, and the physical half of pgops backups list.
import { parseArgs } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from '../../shared/config';
import type { KeyRing } from '../../shared/crypto/keyRing';
import { describeStatus } from '../../shared/crypto/manifestAuth';
import { baseBackupScheduleId, type BaseBackupMode, type BaseBackupProgress } from '../../archive/contract';
import { describePhysicalArchive, listPhysicalClusters, type PhysicalArchiveView } from '../../archive/catalog';
import { baseBackupProgress, installBaseBackupSchedule, startBaseBackup } from '../../client/baseBackups';
import { formatTable } from '../format';
import { followRun, megabytes, UsageError, warnWhenNoWorker, withTemporal } from './common';
import { manageSchedule } from './schedule';

function progressLine(p: BaseBackupProgress): string {
  const bytes = p.stage === 'upload' ? `uploaded ${megabytes(p.uploadedBytes)}` : `staged ${megabytes(p.stagedBytes)}`;
  return `base backup ${p.backupId}: ${p.stage.padEnd(7)} ${p.kind ?? ''} ${bytes}`;
}

export async function baseBackupCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'now') return baseBackupNow(rest);
  if (sub === 'schedule') return baseBackupSchedule(rest);
  throw new UsageError(`basebackup needs "now" or "schedule", got ${sub ?? 'nothing'}`);
}

const inputOptions = {
  cluster: { type: 'string', default: 'main' },
  mode: { type: 'string', default: 'auto' },
  'recovery-window': { type: 'string' },
  'prune-dry-run': { type: 'boolean', default: false },
  'full-every': { type: 'string' },
} as const;

/** The workflow input the options ask for. */
function inputOf(values: { mode?: string; 'recovery-window'?: string; 'prune-dry-run'?: boolean; 'full-every'?: string }) {
  return { mode: modeOf(values.mode), recoveryWindow: values['recovery-window'], pruneDryRun: values['prune-dry-run'], ...(values['full-every'] ? { fullEvery: values['full-every'] } : {}) };
}

function modeOf(value: string | undefined): BaseBackupMode {
  if (value !== 'auto' && value !== 'full') throw new UsageError(`--mode must be auto or full, got ${value}`);
  return value;
}

async function baseBackupNow(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: inputOptions });
  return withTemporal(async (client, config) => {
    const handle = await startBaseBackup(
      client,
      { taskQueue: config.taskQueue },
      { cluster: values.cluster!, ...inputOf(values) },
    );
    console.error(`started workflow ${handle.workflowId} on task queue ${config.taskQueue}`);
    await warnWhenNoWorker(client, config.taskQueue);
    const result = await followRun(handle, async () => progressLine(await baseBackupProgress(handle)));
    if (!result) return 1;
    const r = result.record;
    const prune = result.prune;
    console.log(
      [
        `${r.kind} base backup ${r.backupId} of ${r.cluster} (node ${r.node}, PostgreSQL ${r.serverVersion})` +
          `${r.parentBackupId ? ` on ${r.parentBackupId}` : ''} verified by pg_verifybackup`,
        ...(result.fullBecause ? [`full because ${result.fullBecause}`] : []),
        `WAL ${r.startLsn} (timeline ${r.startTimeline}) to ${r.stopLsn} (timeline ${r.stopTimeline})`,
        `stored at ${result.location} (${megabytes(r.sizeBytes)} in ${r.files.length} objects)`,
        `retention (${prune.recoveryWindow}${prune.dryRun ? ', dry run' : ''}): kept ${prune.kept.length} base backup(s), ` +
          `${prune.dryRun ? 'would delete' : 'deleted'} ${prune.deletedBackups.length} and ${prune.deletedWalObjects} WAL object(s)` +
          `${prune.deletedBackups.length ? `: ${prune.deletedBackups.join(', ')}` : ''}`,
      ].join('\n'),
    );
    return 0;
  });
}

async function baseBackupSchedule(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: { ...inputOptions, at: { type: 'string', default: '01:00' }, timezone: { type: 'string', default: 'Asia/Seoul' }, every: { type: 'string' } },
  });
  const cluster = values.cluster!;
  return withTemporal((client, config) =>
    manageSchedule(client, action, baseBackupScheduleId(cluster), async () => {
      const input = inputOf(values);
      const outcome = await installBaseBackupSchedule(client, { taskQueue: config.taskQueue, cluster, at: values.at!, timezone: values.timezone!, every: values.every, input });
      const when = values.every ? `every ${values.every}` : `daily at ${values.at} ${values.timezone}`;
      return `${outcome} schedule ${baseBackupScheduleId(cluster)}: baseBackup (${input.mode}${input.fullEvery ? `, full every ${input.fullEvery}` : ''}) of ${cluster} ${when}`;
    }),
  );
}

/** The physical backups of each cluster (or one), and its recoverable window. */
export async function physicalListing(s3: S3Client, config: S3Config, ring: KeyRing | undefined, cluster?: string): Promise<string> {
  const clusters = cluster ? [cluster] : await listPhysicalClusters(s3, config);
  if (clusters.length === 0) return 'no base backups or WAL archive in the bucket';
  const parts: string[] = [];
  for (const name of clusters) parts.push(describeView(await describePhysicalArchive(s3, config, ring, name)));
  return parts.join('\n\n');
}

function describeView(view: PhysicalArchiveView): string {
  const reach = new Map(view.window?.backups.map((b) => [b.backupId, b]) ?? []);
  const table = view.backups.length
    ? formatTable(
        ['base backup', 'kind', 'parent', 'stopped', 'start LSN (TLI)', 'stop LSN (TLI)', 'size', 'encryption', 'WAL chain', 'proved restorable'],
        [...view.backups].reverse().map((b) => {
          const r = reach.get(b.backupId);
          return [
            b.backupId,
            b.kind,
            b.parentBackupId ?? '-',
            b.stoppedAt,
            `${b.startLsn} (${b.startTimeline})`,
            `${b.stopLsn} (${b.stopTimeline})`,
            megabytes(b.sizeBytes),
            b.encryption ? `key ${b.encryption.keyId}` : 'none',
            !view.window ? '-' : r?.complete ? 'complete' : `broken: ${r?.reason ?? 'unknown'}`,
            b.lastProvedAt ?? 'never',
          ];
        }),
      )
    : 'no base backups';
  const window = !view.window
    ? `no WAL archive found for cluster ${view.cluster}: each base backup restores to its own stop point only (it carries its WAL)`
    : view.window.from && view.window.to
      ? `recoverable window: ${view.window.from.at} (${view.window.from.lsn}, base backup ${view.window.from.backupId}) to ${view.window.to.lsn} on timeline ${view.window.to.timeline}${view.window.to.at ? ` (${view.window.to.at})` : ''}`
      : `no recoverable window: ${view.window.problem}`;
  // Listed so an operator sees them, and why nothing uses them (a planted record, or one from before keys were configured).
  const untrusted = view.untrusted.map(
    (u) => `ignored: base backup record s3://…/${u.key.split('/').slice(-3).join('/')} (${u.backupId}) is ${describeStatus(u.status, u.keyId)}; pgops plans, restores, counts and prunes nothing because of it`,
  );
  return [`physical backups of cluster ${view.cluster}${view.root ? ` (${view.root})` : ''}`, table, window, ...untrusted].join('\n');
}
