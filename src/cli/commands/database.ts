// pgops migrate / seed: act on the CS Arena database directly, with the worker's target settings.
import { parseArgs } from 'node:util';
import type { Client as PgClient } from 'pg';
import { resolveTarget, withTarget as withTargetConfig } from '../../shared/postgres/connection';
import { loadTargets } from '../../shared/config';
import { migrate } from '../../db/migrate';
import { seed } from '../../db/seed';
import { UsageError } from './common';

function withTarget<T>(targetName: string, work: (client: PgClient) => Promise<T>): Promise<T> {
  return withTargetConfig(resolveTarget({ targets: loadTargets() }, targetName), work);
}

export async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { target: { type: 'string', default: 'primary' } } });
  const applied = await withTarget(values.target!, migrate);
  console.log(applied.length ? `applied ${applied.join(', ')}` : 'schema is up to date');
  return 0;
}

export async function seedCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      scale: { type: 'string' },
      reset: { type: 'boolean', default: false },
      'if-empty': { type: 'boolean', default: false },
      target: { type: 'string', default: 'primary' },
    },
  });
  if (values.scale === undefined) throw new UsageError('seed needs --scale N (1 is about 100 MB)');
  const scale = Number(values.scale);
  const rate = (bytes: number, ms: number) => `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
  const result = await withTarget(values.target!, async (client) => {
    await migrate(client);
    return seed(client, {
      scale,
      reset: values.reset,
      ifEmpty: values['if-empty'],
      onProgress: (p) =>
        process.stderr.write(
          `seed: ${p.matchesDone}/${p.matchesTotal} matches, ${(p.bytesWritten / 1e6).toFixed(0)} MB, ${rate(p.bytesWritten, p.elapsedMs)}\n`,
        ),
    });
  });
  if (!result) {
    console.log(`target ${values.target} already holds CS Arena data; left as it is (--reset replaces it)`);
    return 0;
  }
  console.log(
    `seeded scale ${scale}: ${result.users} users, ${result.questions} questions, ${result.matches} matches; ` +
      `${(result.bytes / 1e6).toFixed(0)} MB in ${(result.elapsedMs / 1000).toFixed(1)} s (${rate(result.bytes, result.elapsedMs)})`,
  );
  return 0;
}
