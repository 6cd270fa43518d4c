// Which node of a cluster is its primary now, read from the nodes themselves, with the last
// failover's record as the fallback while the primary is down. Configuration names the nodes;
// it is never rewritten on a failover, so backups, restores and the next failover follow the
// servers, not a stale file.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, WorkerConfig } from '../../shared/config';
import { ROLE_TARGET } from '../../shared/targets';
import type { ClusterTopology, ClusterView, RecordedPrimary, RoleResolution, StandbyPosition } from '../contract';
import { resolveTarget } from '../../shared/postgres/connection';
import { createS3Client, readObjectIfPresent, storageFailure } from '../../shared/storage/s3Client';
import { resolveCluster } from './cluster';
import { readPositions } from './walPositions';

/** Every node the configuration names, the configured primary first. */
export function clusterNodes(cluster: ClusterConfig): string[] {
  return [cluster.primary, ...cluster.standbys];
}

function topologyKey(config: WorkerConfig, cluster: string): string {
  return `${config.s3.prefix}/topology/${cluster}.json`;
}

export async function readRecordedPrimary(config: WorkerConfig, cluster: string): Promise<RecordedPrimary | undefined> {
  const s3 = createS3Client(config.s3);
  try {
    const object = await readObjectIfPresent(s3, config.s3.bucket, topologyKey(config, cluster));
    const record = object && (JSON.parse(object.body) as RecordedPrimary);
    return typeof record?.primary === 'string' ? record : undefined;
  } catch (err) {
    throw storageFailure(config.s3, err);
  } finally {
    s3.destroy();
  }
}

export async function writeRecordedPrimary(config: WorkerConfig, record: RecordedPrimary): Promise<string> {
  const s3 = createS3Client(config.s3);
  const Key = topologyKey(config, record.cluster);
  try {
    await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key, Body: JSON.stringify(record), ContentType: 'application/json' }));
    return Key;
  } catch (err) {
    throw storageFailure(config.s3, err);
  } finally {
    s3.destroy();
  }
}

/**
 * A writable node is a primary. One: that is the primary. Several (a split brain): the one on the
 * latest timeline, and the detail says so. None (the primary is down): a node answering as a
 * standby is not it, so among the silent nodes the last failover's record, else the configured
 * primary, else the only silent one.
 */
export function choosePrimary(
  cluster: ClusterConfig,
  positions: StandbyPosition[],
  recorded: RecordedPrimary | undefined,
): Pick<ClusterTopology, 'primary' | 'source' | 'detail'> {
  const writable = positions.filter((p) => p.reachable && p.inRecovery === false);
  writable.sort((a, b) => (b.timeline ?? 0) - (a.timeline ?? 0));
  if (writable.length === 1) return { primary: writable[0].node, source: 'nodes', detail: `${writable[0].node} is writable` };
  if (writable.length > 1) {
    return {
      primary: writable[0].node,
      source: 'nodes',
      detail: `several nodes are writable (${writable.map((p) => `${p.node} on timeline ${p.timeline}`).join(', ')}): ${writable[0].node} has the latest timeline`,
    };
  }
  const silent = positions.filter((p) => !p.reachable).map((p) => p.node);
  if (recorded && silent.includes(recorded.primary)) {
    return { primary: recorded.primary, source: 'record', detail: `no node is writable; ${recorded.primary} does not answer and was recorded primary by ${recorded.workflowId} at ${recorded.at}` };
  }
  if (silent.includes(cluster.primary) || silent.length === 0) {
    return { primary: cluster.primary, source: 'configuration', detail: `no node is writable: the configured primary ${cluster.primary}` };
  }
  return { primary: silent[0], source: 'nodes', detail: `no node is writable; ${silent[0]} does not answer and every other node answers as a standby` };
}

export async function readTopology(config: WorkerConfig, clusterName: string): Promise<ClusterTopology> {
  const cluster = resolveCluster(config, clusterName);
  const nodes = clusterNodes(cluster);
  const positions = await readPositions(nodes.map((n) => resolveTarget(config, n)), Math.max(cluster.policy.probeTimeoutMs, 2_000));
  const recorded = await readRecordedPrimary(config, cluster.name);
  const chosen = choosePrimary(cluster, positions, recorded);
  return { cluster: cluster.name, ...chosen, standbys: nodes.filter((n) => n !== chosen.primary), nodes: positions };
}

export async function resolveRole(config: WorkerConfig, roleTarget: string): Promise<RoleResolution> {
  const match = ROLE_TARGET.exec(roleTarget);
  if (!match) throw ApplicationFailure.nonRetryable(`"${roleTarget}" is not a cluster role such as "main:primary" or "main:standby"`, 'BadInput');
  const [, clusterName, role] = match;
  const topology = await readTopology(config, clusterName);
  const primaryUp = topology.nodes.some((p) => p.node === topology.primary && p.reachable && p.inRecovery === false);
  if (!primaryUp) {
    throw ApplicationFailure.retryable(`the primary of ${clusterName} does not answer (${topology.detail})`, 'PrimaryUnavailable');
  }
  const base = { roleTarget, cluster: clusterName, primary: topology.primary };
  if (role === 'primary') return { ...base, node: topology.primary, detail: topology.detail };
  const streaming = topology.nodes.find((p) => p.reachable && p.inRecovery && p.receiverStatus === 'streaming');
  if (streaming) return { ...base, node: streaming.node, detail: `${streaming.node} is a streaming standby of ${topology.primary}` };
  return { ...base, node: topology.primary, detail: `no standby of ${clusterName} is streaming: using the primary ${topology.primary}` };
}

export function topologyActivities(config: WorkerConfig) {
  /** The cluster as it stands now: its primary read from the nodes (see topology.ts). */
  async function describeCluster(name: string): Promise<ClusterView> {
    const cluster = resolveCluster(config, name);
    const topology = await readTopology(config, name);
    const nodes = [topology.primary, ...topology.standbys];
    return {
      cluster: cluster.name,
      primary: topology.primary,
      standbys: topology.standbys,
      endpoint: cluster.endpoint ? `${cluster.endpoint.host}:${cluster.endpoint.port}` : undefined,
      repoint: cluster.repointCommand ? 'command' : cluster.pgbouncerIni ? 'pgbouncer' : 'none',
      fenceCommand: cluster.fenceCommand !== undefined,
      controlledNodes: nodes.filter((node) => resolveTarget(config, node).server),
      policy: cluster.policy,
      topology: `${topology.detail} (from ${topology.source})`,
    };
  }

  /** After a promotion: the new primary is recorded, so a later run finds it while no node answers. */
  async function recordPrimary(record: RecordedPrimary): Promise<string> {
    resolveCluster(config, record.cluster);
    return writeRecordedPrimary(config, record);
  }

  return {
    describeCluster,
    recordPrimary,
    clusterTopology: (name: string): Promise<ClusterTopology> => readTopology(config, name),
    resolveClusterRole: (roleTarget: string): Promise<RoleResolution> => resolveRole(config, roleTarget),
    /** The clusters a target is a node of: whose watchers a restore into it pauses. */
    clustersWithNode: async (target: string): Promise<string[]> =>
      Object.values(config.clusters).filter((c) => clusterNodes(c).includes(target)).map((c) => c.name),
  };
}
