// What a restore drill checks on its scratch instance beyond reaching the target: the biggest
// B-tree indexes pass amcheck's bt_index_check (a physical copy carries the index files, so a
// corrupt page would come back with it), and the result is kept beside the base backup it
// proved, where `pgops backups list` reads it.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { WorkerConfig } from '../../shared/config';
import { withTarget } from '../../shared/postgres/connection';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import { appendAuditRecord } from '../../shared/storage/auditLog';
import { baseBackupObjectKey, DRILL_RECORD } from '../../archive/layout';
import { DRILL_AUDIT_KIND, type DrillRecord, type IndexCheck, type RestoreInstance } from '../contract';
import { instanceTarget } from './instance';

export function drillActivities(config: WorkerConfig) {
  /** bt_index_check on the `count` biggest B-tree indexes of the restored database (the instance is promoted: amcheck is created there). */
  async function checkBiggestIndexes(input: { cluster: string; instance: RestoreInstance; count: number }): Promise<IndexCheck[]> {
    return withTarget(instanceTarget(config, input.cluster, input.instance), async (client) => {
      await client.query('CREATE EXTENSION IF NOT EXISTS amcheck');
      const { rows } = await client.query<{ index: string; size: string; oid: number }>(
        `SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS index, pg_relation_size(c.oid) AS size
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_am am ON am.oid = c.relam
          WHERE am.amname = 'btree' AND i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          ORDER BY pg_relation_size(c.oid) DESC LIMIT $1`,
        [input.count],
      );
      const checks: IndexCheck[] = [];
      for (const row of rows) {
        try {
          await client.query('SELECT bt_index_check($1::regclass, true)', [row.oid]);
          checks.push({ index: row.index, sizeBytes: Number(row.size), ok: true });
        } catch (err) {
          checks.push({ index: row.index, sizeBytes: Number(row.size), ok: false, error: (err as Error).message });
        }
      }
      return checks;
    });
  }

  /** base/<backupId>/drill.json (the latest drill of that backup) and a line in the drills audit trail. */
  async function recordDrill(input: { root?: string; record: DrillRecord }): Promise<string> {
    const { record } = input;
    if (input.root && record.backupId) {
      const s3 = createS3Client(config.s3);
      const Key = baseBackupObjectKey(input.root, record.backupId, DRILL_RECORD);
      try {
        await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key, Body: JSON.stringify(record, null, 2), ContentType: 'application/json' }));
      } catch (err) {
        throw storageFailure(config.s3, err, Key);
      } finally {
        s3.destroy();
      }
    }
    return appendAuditRecord(config, DRILL_AUDIT_KIND, record.workflowId, record, record.finishedAt);
  }

  return { checkBiggestIndexes, recordDrill };
}
