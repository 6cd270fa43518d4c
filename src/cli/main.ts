// The pgops command line. Each command is a thin wrapper: workflows do the work.
import { ConfigError } from '../shared/config';
import { SeedRefused } from '../db/seed';
import { TemporalUnreachable } from '../shared/temporal/connection';
import { backfillCommand } from './commands/backfill';
import { backupNowCommand, backupsListCommand, keysCommand } from './commands/backup';
import { baseBackupCommand } from './commands/baseBackup';
import { checkCommand } from './commands/check';
import { doctorCommand } from './commands/doctor';
import { UsageError } from './commands/common';
import { migrateCommand, seedCommand } from './commands/database';
import { failoverCommand, rejoinCommand } from './commands/failover';
import { restoreCommand } from './commands/restore';
import { drillCommand, pitrCommand } from './commands/pitr';
import { scheduleCommand } from './commands/schedule';
import { walCommand } from './commands/wal';

const USAGE = `usage: pgops <command> [options]

  check                            run the stackCheck workflow and print a table
  doctor [--json] [--target NAME]  the incident checklist: servers, disks, connections, locks, slow
                                   statements, indexes, vacuum, replication, slots, backups, workers
  backup now [--target primary] [--verify restore|list] [--compression zstd:1]
             [--format directory|custom] [--jobs 2]
                                   run nightlyBackup now and follow its progress
  backups list [--target primary] [--cluster main]
                                   the backup catalog, read from S3: logical backups (encryption,
                                   whether each manifest is authentic), then each cluster's base
                                   backups and its recoverable window
  keys [--target primary]          every key id the catalog needs, present or MISSING here
  basebackup now [--cluster main] [--mode auto|full] [--full-every 24h] [--recovery-window 7d] [--prune-dry-run]
                                   run baseBackup now (an incremental where possible) and
                                   follow its progress
  basebackup schedule install|pause|resume|show [--cluster main] [--at 01:00 | --every 1h --full-every 24h]
                      [--timezone Asia/Seoul] [--mode auto|full] [--recovery-window 7d]
                                   the Temporal Schedule that runs baseBackup
  schedule install [--target primary] [--at 03:00] [--timezone Asia/Seoul]
  schedule pause|resume|show [--target primary]
                                   the Temporal Schedule that runs nightlyBackup
  restore start --mode replace|new-database [--target primary] [--backup latest|ID]
                [--from TARGET] [--new-database NAME] [--reason TEXT] [--as NAME]
                [--approval-timeout 24h] [--jobs 2]
                                   start guardedRestore and print its plan; nothing
                                   changes until someone approves
  restore status|approve|reject <workflow-id> [--reason TEXT] [--as NAME]
  restore cleanup [--target primary] [--database NAME]
                                   list (or drop one of) the databases restores set aside
  pitr start --data-dir DIR --port N --reason TEXT [--cluster main] [--mode side|replace]
             (--to "2026-11-30 14:31:07+09" | --lsn 16/B374D848 | --restore-point NAME | --latest)
             [--as NAME] [--approval-timeout 24h]
                                   start pointInTimeRestore: a new instance recovered from the
                                   base backups and the WAL archive, paused at the target; it is
                                   promoted (side) or replaces the primary only after approval
  pitr status|approve|reject <workflow-id> [--reason TEXT] [--as NAME]
  drill now --data-dir DIR --port N [--cluster main] [--within 24h]
  drill schedule install --data-dir DIR --port N [--cluster main] [--at 05:00] [--timezone UTC]
                                   restore the newest base backup + WAL to a random point of the
                                   last 24 h into a scratch instance, check it, remove it
  failover start [--cluster main] [--mode failover|switchover] [--reason TEXT] [--detach]
                                   run failoverPromotion: confirm, choose, fence, promote, repoint
  failover status [--cluster main] stage, steps and what it waits for
  failover approve [--cluster main] [--force] [--fencing-confirmed] [--as NAME] [--note TEXT]
                                   the approve signal (--force accepts a lagging candidate)
  failover watch [--cluster main] [--status | --pause [--for 1h] [--reason TEXT] | --resume [--all] | --stop]
                                   the watcher that starts a failover when the primary stops answering
  wal start|status|pause|resume|stop [--cluster main] [--reason TEXT]
                                   the cluster's continuous WAL archive (pg_receivewal to S3)
  wal audit now [--cluster main] [--dry-run]
                                   audit the archive's chain; a gap no base backup gets past
                                   starts a full base backup and tells the webhook
  wal audit schedule install|pause|resume|show [--cluster main] [--every 1h] [--dry-run]
                                   the Temporal Schedule that runs the audit
  rejoin --node OLD --new-primary NEW [--cluster main] [--no-base-backup]
                                   turn the old primary into a streaming standby (pg_rewind)
  backfill start [--target primary] [--table questions] [--column embedding] [--text content]
                 [--model text-embedding-3-small] [--dimensions 1536] [--batch-size 512]
                 [--in-flight 2] [--rpm N] [--tpm N] [--index] [--detach]
                                   embed every row of a table (or attach to the running
                                   backfill of that table) and follow its progress
  backfill status|pause|resume [--target primary] [--table questions] [--column embedding]
  migrate [--target primary]       apply the CS Arena schema migrations
  seed --scale N [--reset | --if-empty] [--target primary]
                                   deterministic demo data (scale 1 ≈ 100 MB)
  worker                           run a worker in the foreground

Commands that start workflows need a running worker (pgops worker).`;

async function main([command, ...args]: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (command) {
    case 'check':
      return checkCommand();
    case 'doctor':
      return doctorCommand(args);
    case 'backup':
      if (sub !== 'now') throw new UsageError(`backup needs "now", got ${sub ?? 'nothing'}`);
      return backupNowCommand(rest);
    case 'backups':
      if (sub !== 'list') throw new UsageError(`backups needs "list", got ${sub ?? 'nothing'}`);
      return backupsListCommand(rest);
    case 'basebackup':
      return baseBackupCommand(args);
    case 'keys':
      return keysCommand(args);
    case 'schedule':
      return scheduleCommand(args);
    case 'restore':
      return restoreCommand(args);
    case 'pitr':
      return pitrCommand(args);
    case 'drill':
      return drillCommand(args);
    case 'failover':
      return failoverCommand(args);
    case 'rejoin':
      return rejoinCommand(args);
    case 'wal':
      return walCommand(args);
    case 'backfill':
      return backfillCommand(args);
    case 'migrate':
      return migrateCommand(args);
    case 'seed':
      return seedCommand(args);
    case 'worker':
      // Loaded only here: every other command is a client and needs none of the activities.
      (await import('../worker.js')).runWorkerProcess();
      return new Promise(() => undefined); // the worker exits the process itself
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"\n${USAGE}`);
  }
}

const ONE_LINE_ERRORS = [ConfigError, TemporalUnreachable, SeedRefused, UsageError];

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    const parseError = String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    const known = parseError || err.name === 'ApplicationFailure' || ONE_LINE_ERRORS.some((kind) => err instanceof kind);
    console.error(`pgops: ${known ? err.message : err.stack}`);
    process.exit(1);
  },
);
