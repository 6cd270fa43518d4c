import type { TargetName } from '../shared/targets';

export interface StackCheckInput {
  primary?: TargetName;
  standby?: TargetName;
}

export interface CheckRow {
  component: string;
  ok: boolean;
  detail: string;
}

export interface StackCheckReport {
  ok: boolean;
  checks: CheckRow[];
}

export interface TargetProbe {
  target: TargetName;
  serverVersion: string;
  inRecovery: boolean;
  database: string;
  extensions: Record<string, string>;
  /** The pgvector version the server could install, whether or not this database has it. */
  pgvectorAvailable?: string;
  pgDumpVersion: string;
}

export interface ReplicationProbe {
  primary: TargetName;
  standby: TargetName;
  /** How long the marker row written on the primary took to appear on the standby. */
  replayedAfterMs: number;
  replicationState: string;
  replayLagBytes: number;
}

export interface StorageProbe {
  bucket: string;
  key: string;
  bytes: number;
  roundTripMs: number;
  /** How this worker stores backups: "encrypted with key …", or why not (absent in runs older than the field). */
  encryption?: string;
}

// ---------------------------------------------------------------- workflow types
// The names the worker registers (src/workflows.ts exports a function of each name with this
// signature; test/contracts.test.ts holds them together) and the clients start.

export const STACK_CHECK_WORKFLOW = 'stackCheck';
export type StackCheckWorkflow = (input?: StackCheckInput) => Promise<StackCheckReport>;
