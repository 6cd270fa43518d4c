// Append-only audit trail in S3: one JSON Lines object per kind and month, e.g.
// backups/audit/restores/2026-11.jsonl. S3 has no append, so each append is a conditional
// rewrite (If-Match on the ETag read, If-None-Match for a new object) retried on conflict:
// two workers appending at once cannot overwrite each other's record.
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkerConfig } from '../config';
import type { RestoreAudit } from '../../restore/contract';
import { createS3Client, readObjectIfPresent, storageFailure } from './s3Client';

const CONFLICT_RETRIES = 10;

export function auditObjectKey(config: WorkerConfig, kind: string, at: string): string {
  return `${config.s3.prefix}/audit/${kind}/${at.slice(0, 7)}.jsonl`;
}

/**
 * Appends `record` unless a record with the same `id` is already there (a retried activity
 * appends once). Returns the object's key.
 */
export async function appendAuditRecord(config: WorkerConfig, kind: string, id: string, record: object, at: string): Promise<string> {
  const Key = auditObjectKey(config, kind, at);
  const line = JSON.stringify({ id, ...record });
  const s3 = createS3Client(config.s3);
  try {
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      const current = await readObjectIfPresent(s3, config.s3.bucket, Key);
      if (current?.body.split('\n').some((l) => l.startsWith(`{"id":${JSON.stringify(id)},`))) return Key;
      const body = current ? `${current.body}${line}\n` : `${line}\n`;
      try {
        await s3.send(
          new PutObjectCommand({
            Bucket: config.s3.bucket,
            Key,
            Body: body,
            ContentType: 'application/x-ndjson',
            ...(current ? { IfMatch: current.etag } : { IfNoneMatch: '*' }),
          }),
        );
        return Key;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw ApplicationFailure.retryable(`audit object ${Key} kept changing under ${CONFLICT_RETRIES} appends`, 'AuditConflict');
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    throw storageFailure(config.s3, err);
  } finally {
    s3.destroy();
  }
}

/** The parsed lines of one audit object, remembered with the ETag they were read at. */
export type AuditObjectCache = Map<string, { etag: string; records: object[] }>;

/**
 * Every record of `kind`, oldest month first. Objects whose ETag is unchanged since the last call
 * with the same `cache` are not read again: only the current month's object usually changes.
 */
export async function readAuditRecords(config: Pick<WorkerConfig, 's3'>, kind: string, cache: AuditObjectCache = new Map()): Promise<object[]> {
  const prefix = `${config.s3.prefix}/audit/${kind}/`;
  const s3 = createS3Client(config.s3);
  try {
    const objects: { key: string; etag: string }[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key?.endsWith('.jsonl')) objects.push({ key: o.Key, etag: o.ETag ?? '' });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    objects.sort((a, b) => a.key.localeCompare(b.key));
    for (const key of [...cache.keys()]) if (!objects.some((o) => o.key === key)) cache.delete(key);
    const records: object[] = [];
    for (const { key, etag } of objects) {
      let entry = cache.get(key);
      if (!entry || entry.etag !== etag) {
        const object = await readObjectIfPresent(s3, config.s3.bucket, key);
        if (!object) continue;
        entry = { etag: object.etag, records: parseLines(object.body) };
        cache.set(key, entry);
      }
      records.push(...entry.records);
    }
    return records;
  } catch (err) {
    throw storageFailure(config.s3, err);
  } finally {
    s3.destroy();
  }
}

/** A line that is not a JSON object (a torn write by hand, say) is skipped, not fatal to the rest. */
function parseLines(body: string): object[] {
  const records: object[] = [];
  for (const line of body.split('\n')) {
    if (!line.trim()) continue;
    try {
      const record: unknown = JSON.parse(line);
      if (record && typeof record === 'object') records.push(record);
    } catch {
      // skipped
    }
  }
  return records;
}

function isConflict(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.name === 'ConditionalRequestConflict' || e.$metadata?.httpStatusCode === 412 || e.$metadata?.httpStatusCode === 409;
}

export function auditActivities(config: WorkerConfig) {
  async function recordRestoreAudit(audit: RestoreAudit): Promise<string> {
    return appendAuditRecord(config, 'restores', `${audit.workflowId}/${audit.runId}`, audit, audit.finishedAt);
  }
  return { recordRestoreAudit };
}
