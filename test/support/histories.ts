// Recorded workflow histories, checked in under test/histories/, that replay tests run the
// current workflow code against. Re-record with: npx tsx test/support/recordHistory.ts
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { historyFromJSON, historyToJSON, type History } from '@temporalio/common/lib/proto-utils';

export const HISTORIES_DIR = path.resolve(__dirname, '../histories');

export function recordedHistories(): { name: string; history: History }[] {
  return readdirSync(HISTORIES_DIR)
    .filter((file) => file.endsWith('.json'))
    .map((file) => ({ name: file, history: historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES_DIR, file), 'utf8'))) }));
}

export async function fetchHistory(client: Client, workflowId: string): Promise<History> {
  return client.workflow.getHandle(workflowId).fetchHistory();
}

export async function saveHistory(client: Client, workflowId: string, name: string): Promise<string> {
  const file = path.join(HISTORIES_DIR, `${name}.json`);
  writeFileSync(file, historyToJSON(await fetchHistory(client, workflowId)));
  return file;
}
