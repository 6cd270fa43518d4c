// The pgops command line. Each command is a thin wrapper: workflows do the work.
import { parseArgs } from 'node:util';
import type { Client as PgClient } from 'pg';
import { ConfigError, loadTemporalConfig, loadWorkerConfig } from '../config';
import { migrate } from '../db/migrate';
import { seed, SeedRefused } from '../db/seed';
import { connectTarget, resolveTarget } from '../activities/postgres/connection';
import { connectClient, runStackCheck, TemporalUnreachable } from './index';
import { formatTable } from './format';
import { runWorkerProcess } from '../worker';

const USAGE = `usage: pgops <command> [options]

  check                          run the stackCheck workflow and print a table (needs a running worker)
  migrate [--target primary]     apply the CS Arena schema migrations
  seed --scale N [--reset] [--target primary]
                                 fill the CS Arena database with deterministic demo data (scale 1 ~ 100 MB)
  worker                         run a worker in the foreground`;

/** An error the CLI prints as one line, without a stack trace. */
class UsageError extends Error {}

async function checkCommand(): Promise<number> {
  const config = loadTemporalConfig();
  const client = await connectClient(config);
  try {
    const report = await runStackCheck(client, { taskQueue: config.taskQueue });
    console.log(formatTable(['component', 'status', 'detail'], report.checks.map((c) => [c.component, c.ok ? 'ok' : 'FAILED', c.detail])));
    return report.ok ? 0 : 1;
  } finally {
    await client.connection.close();
  }
}

async function withTarget<T>(targetName: string, work: (client: PgClient) => Promise<T>): Promise<T> {
  const target = resolveTarget(loadWorkerConfig(), targetName);
  const client = await connectTarget(target);
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { target: { type: 'string', default: 'primary' } } });
  const applied = await withTarget(values.target!, migrate);
  console.log(applied.length ? `applied ${applied.join(', ')}` : 'schema is up to date');
  return 0;
}

async function seedCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { scale: { type: 'string' }, reset: { type: 'boolean', default: false }, target: { type: 'string', default: 'primary' } },
  });
  if (values.scale === undefined) throw new UsageError('seed needs --scale N (1 is about 100 MB)');
  const scale = Number(values.scale);
  const result = await withTarget(values.target!, async (client) => {
    await migrate(client);
    return seed(client, {
      scale,
      reset: values.reset,
      onProgress: (p) => {
        const mb = p.bytesWritten / 1e6;
        process.stderr.write(
          `seed: ${p.matchesDone}/${p.matchesTotal} matches, ${mb.toFixed(0)} MB, ${(mb / (p.elapsedMs / 1000)).toFixed(1)} MB/s\n`,
        );
      },
    });
  });
  const mb = result.bytes / 1e6;
  console.log(
    `seeded scale ${scale}: ${result.users} users, ${result.questions} questions, ${result.matches} matches; ` +
      `${mb.toFixed(0)} MB in ${(result.elapsedMs / 1000).toFixed(1)} s (${(mb / (result.elapsedMs / 1000)).toFixed(1)} MB/s)`,
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'check':
      return checkCommand();
    case 'migrate':
      return migrateCommand(rest);
    case 'seed':
      return seedCommand(rest);
    case 'worker':
      runWorkerProcess();
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
  (err: Error & { type?: string }) => {
    const known = ONE_LINE_ERRORS.some((kind) => err instanceof kind) || err.name === 'ApplicationFailure';
    console.error(`pgops: ${known ? err.message : err.stack}`);
    process.exit(1);
  },
);
