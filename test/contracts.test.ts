// Each workflow's contract (its registered name and signature) is what the clients start it by:
// a renamed or re-typed workflow must fail here, not at a client's first start.
import * as workflows from '../src/workflows';
import { NIGHTLY_BACKUP_WORKFLOW, type NightlyBackupWorkflow } from '../src/backup/contract';
import { STACK_CHECK_WORKFLOW, type StackCheckWorkflow } from '../src/check/contract';
import { DOCTOR_WORKFLOW, type DoctorWorkflow } from '../src/doctor/contract';
import { EMBEDDING_BACKFILL_WORKFLOW, type EmbeddingBackfillWorkflow } from '../src/embeddings/contract';
import {
  FAILOVER_PROMOTION_WORKFLOW,
  FAILOVER_WATCHER_WORKFLOW,
  REJOIN_AS_STANDBY_WORKFLOW,
  type FailoverPromotionWorkflow,
  type FailoverWatcherWorkflow,
  type RejoinAsStandbyWorkflow,
} from '../src/failover/contract';
import { GUARDED_RESTORE_WORKFLOW, type GuardedRestoreWorkflow } from '../src/restore/contract';
import {
  BASE_BACKUP_WORKFLOW,
  WAL_ARCHIVER_WORKFLOW,
  WAL_CHAIN_AUDIT_WORKFLOW,
  type BaseBackupWorkflow,
  type WalArchiverWorkflow,
  type WalChainAuditWorkflow,
} from '../src/archive/contract';
import { POINT_IN_TIME_RESTORE_WORKFLOW, RESTORE_DRILL_WORKFLOW, type PointInTimeRestoreWorkflow, type RestoreDrillWorkflow } from '../src/pitr/contract';

// Checked by the compiler (ts-jest type-checks): the worker's exports have the contracts' signatures.
const registered: {
  stackCheck: StackCheckWorkflow;
  nightlyBackup: NightlyBackupWorkflow;
  guardedRestore: GuardedRestoreWorkflow;
  failoverPromotion: FailoverPromotionWorkflow;
  failoverWatcher: FailoverWatcherWorkflow;
  rejoinAsStandby: RejoinAsStandbyWorkflow;
  embeddingBackfill: EmbeddingBackfillWorkflow;
  doctor: DoctorWorkflow;
  baseBackup: BaseBackupWorkflow;
  walArchiver: WalArchiverWorkflow;
  walChainAudit: WalChainAuditWorkflow;
  pointInTimeRestore: PointInTimeRestoreWorkflow;
  restoreDrill: RestoreDrillWorkflow;
} = workflows;

test('every contract names a workflow the worker registers, and every registered workflow has a contract', () => {
  const names = [
    STACK_CHECK_WORKFLOW,
    NIGHTLY_BACKUP_WORKFLOW,
    GUARDED_RESTORE_WORKFLOW,
    FAILOVER_PROMOTION_WORKFLOW,
    FAILOVER_WATCHER_WORKFLOW,
    REJOIN_AS_STANDBY_WORKFLOW,
    EMBEDDING_BACKFILL_WORKFLOW,
    DOCTOR_WORKFLOW,
    BASE_BACKUP_WORKFLOW,
    WAL_ARCHIVER_WORKFLOW,
    WAL_CHAIN_AUDIT_WORKFLOW,
    POINT_IN_TIME_RESTORE_WORKFLOW,
    RESTORE_DRILL_WORKFLOW,
  ];
  for (const name of names) expect(typeof (registered as Record<string, unknown>)[name]).toBe('function');
  expect(Object.keys(workflows).sort()).toEqual([...names].sort());
});
