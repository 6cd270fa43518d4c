// Roles a backup refers to that the target's server lacks, created from the backup's own
// globals (pg_dumpall --globals-only): only the missing ones, and nothing about any other role.
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from 'pg';
import { inOneTransaction } from '../../shared/postgres/connection';
import { IDENT, splitStatements, unquote } from '../../shared/postgres/dumpedSql';

/** Statements about one role, with that role's identifier as capture group 1. */
const ABOUT_ROLE = [
  new RegExp(String.raw`^CREATE ROLE ${IDENT}$`, 's'),
  new RegExp(String.raw`^ALTER ROLE ${IDENT} (WITH|SET) `, 's'),
  new RegExp(String.raw`^COMMENT ON ROLE ${IDENT} IS `, 's'),
];
/** A membership: GRANT granted TO member …; carried when the member is one of the new roles. */
const MEMBERSHIP = new RegExp(String.raw`^GRANT ${IDENT} TO ${IDENT}( |$)`, 's');

/** The statements of `globalsSql` that create and configure the `missing` roles, in the file's order. */
export function roleStatements(globalsSql: string, missing: string[]): string[] {
  const wanted = new Set(missing);
  const statements = splitStatements(globalsSql);
  const created = new Set<string>();
  const chosen: string[] = [];
  for (const statement of statements) {
    const aboutRole = ABOUT_ROLE.map((p) => p.exec(statement)).find((m) => m !== null);
    const role = aboutRole ? unquote(aboutRole[1]) : undefined;
    if (role !== undefined && wanted.has(role)) {
      if (statement.startsWith('CREATE ROLE ')) created.add(role);
      chosen.push(statement);
      continue;
    }
    const membership = MEMBERSHIP.exec(statement);
    if (membership && wanted.has(unquote(membership[2]))) chosen.push(statement);
  }
  const absent = missing.filter((role) => !created.has(role));
  if (absent.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `the backup refers to role(s) ${absent.map((r) => JSON.stringify(r)).join(', ')} that neither the target's server nor the backup's globals define; create them by hand first`,
      'RolesMissing',
    );
  }
  return chosen;
}

/** Runs `statements` in one transaction: all the roles appear, or none. */
export async function createRoles(client: Client, statements: string[]): Promise<void> {
  await inOneTransaction(client, statements).catch((err: Error) => {
    throw ApplicationFailure.nonRetryable(`creating the backup's missing roles failed, none was created: ${err.message}`, 'RolesNotCreated');
  });
}
