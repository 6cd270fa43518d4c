// Where the WAL in a spool file ends, when the server cannot say (it crashed, or a failover took
// it away): the end of the last whole record PostgreSQL's own pg_waldump reads in the file. Every
// record pg_receivewal received was flushed on the primary first, and pg_waldump checks each one's
// CRC, so a record cut off mid-write ends the valid part before it.
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { WorkerConfig } from '../../shared/config';
import { runPgTool } from '../../shared/postgres/pgTools';
import { parseLsn } from '../layout';

const RECORD = /len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-F]+\/[0-9A-F]+)/;

export async function walEndInFile(config: WorkerConfig, file: string, segment: string): Promise<bigint | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgops-waldump-'));
  try {
    // pg_waldump reads a segment by its name; a .partial is the segment still being written.
    await symlink(path.resolve(file), path.join(dir, segment));
    const child = runPgTool(config, 'pg_waldump', ['--path', dir, segment], undefined, { buffer: false, reject: false, stderr: 'ignore' });
    // Line by line, keeping only the last record: a segment holds up to ~10^5 of them.
    let rest = '';
    let last: string | undefined;
    for await (const chunk of child.stdout!) {
      const lines = (rest + String(chunk)).split('\n');
      rest = lines.pop() ?? '';
      for (let i = lines.length - 1; i >= 0; i--) {
        if (RECORD.test(lines[i])) {
          last = lines[i];
          break;
        }
      }
    }
    await child;
    const match = last && RECORD.exec(last);
    return match ? parseLsn(match[2]) + BigInt(match[1]) : undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
