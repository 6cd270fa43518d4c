// The cluster a failover acts on, as configured on the worker.
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, TargetConfig, WorkerConfig } from '../../shared/config';
import { resolveTarget } from '../../shared/postgres/connection';

export function resolveCluster(config: WorkerConfig, name: string): ClusterConfig {
  const cluster = config.clusters[name];
  if (!cluster) {
    throw ApplicationFailure.nonRetryable(
      `unknown cluster "${name}" (configured in PGOPS_CLUSTERS: ${Object.keys(config.clusters).join(', ') || 'none'})`,
      'UnknownCluster',
    );
  }
  return cluster;
}

/** A node of the cluster: one of its configured targets, refused when it is not a member. */
export function clusterNode(config: WorkerConfig, cluster: ClusterConfig, name: string): TargetConfig {
  if (name !== cluster.primary && !cluster.standbys.includes(name)) {
    throw ApplicationFailure.nonRetryable(
      `"${name}" is not a node of cluster ${cluster.name} (primary ${cluster.primary}, standbys ${cluster.standbys.join(', ')})`,
      'NotAClusterNode',
    );
  }
  return resolveTarget(config, name);
}

/** Placeholders a fence or repoint hook may use; values are names and addresses, never secrets. */
export function hookArguments(command: string[], values: Record<string, string>): string[] {
  return command.map((arg) => arg.replace(/\{([a-z_]+)\}/g, (whole, key: string) => values[key] ?? whole));
}
