// How targets and clusters are named: one pattern for the configuration, the workflows' input
// checks and the clients, so a name one of them accepts is never refused by another.

/** Targets are named, never described: connection details and secrets stay in the worker. */
export type TargetName = string;

/** A target's or a cluster's name: lowercase letters, digits, `_` and `-`, starting with a letter. */
export const NAME_PATTERN = /^[a-z][a-z0-9_-]*$/;

/** A cluster's current primary or standby ("main:primary"), resolved when a run starts. */
export const ROLE_TARGET = /^([a-z][a-z0-9_-]*):(primary|standby)$/;

export function isTargetName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}
