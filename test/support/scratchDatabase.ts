// Throwaway databases on the stack's primary, for tests that must not touch csarena.
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { TargetConfig } from '../../src/shared/config';
import { connectTarget } from '../../src/shared/postgres/connection';

export async function withScratchDatabase<T>(primary: TargetConfig, work: (db: Client, name: string) => Promise<T>): Promise<T> {
  const name = `pgops_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = await connectTarget(primary);
  await admin.query(`CREATE DATABASE ${name}`);
  const db = await connectTarget({ ...primary, database: name });
  try {
    return await work(db, name);
  } finally {
    await db.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}
