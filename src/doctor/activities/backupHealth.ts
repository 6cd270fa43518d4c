// How old the newest verified backup of each target is, read from the catalog in S3.
import type { WorkerConfig } from '../../shared/config';
import { listCatalog } from '../../backup/manifest/store';
import { createS3Client, storageFailure } from '../../shared/storage/s3Client';
import type { DoctorLine } from '../contract';
import { duration } from './serverHealth';

const HOUR_MS = 3_600_000;
/** A nightly backup a little late is a warning; a whole missed night is a failure (the alert rule's 26 h). */
const WARN_AGE_MS = 25 * HOUR_MS;
const FAIL_AGE_MS = 26 * HOUR_MS;

/** One line of the report: the newest verified backup in any of these catalogs. */
export interface BackupGroup {
  subject: string;
  catalogs: string[];
}

export function backupHealthActivities(config: WorkerConfig) {
  async function checkBackups(input: { groups: BackupGroup[] }): Promise<DoctorLine[]> {
    const s3 = createS3Client(config.s3);
    try {
      const catalog = await listCatalog(s3, config.s3, undefined, config.encryption);
      return input.groups.map(({ subject, catalogs }) => {
        const newest = catalog.find((entry) => catalogs.includes(entry.target) && entry.verified);
        if (!newest) return { check: 'backup', subject, status: 'fail', saw: `no verified backup in the catalog (looked under ${catalogs.join(', ')})`, next: `pgops backup now --target ${catalogs[0]}, and pgops schedule install --target ${catalogs[0]}` };
        const age = Date.now() - Date.parse(newest.finishedAt);
        const status = age > FAIL_AGE_MS ? 'fail' : age > WARN_AGE_MS ? 'warn' : 'ok';
        return {
          check: 'backup',
          subject,
          status,
          saw: `newest verified ${newest.backupId}, ${duration(age)} old`,
          ...(status === 'ok' ? {} : { next: `is the schedule running? pgops schedule show --target ${newest.target}; the last run's failure is in the Temporal UI` }),
        };
      });
    } catch (err) {
      return [{ check: 'backup', subject: `s3://${config.s3.bucket}`, status: 'fail', saw: `the catalog cannot be read: ${storageFailure(config.s3, err).message}`, next: 'check the S3 endpoint and credentials (pgops check)' }];
    } finally {
      s3.destroy();
    }
  }
  return { checkBackups };
}
