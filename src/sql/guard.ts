/**
 * Who may write where. On a secondary the application roles must not write (their rows
 * would diverge from the primary and be overwritten, or block the apply worker), yet
 * replication must keep applying: the apply worker runs as the subscription owner (a
 * superuser), which neither the privileges nor the GUC below restrict.
 *
 * Two layers, because one is not enough:
 *  - REVOKE INSERT, UPDATE, DELETE, TRUNCATE is the real guard: privileges are checked
 *    on every statement, including in sessions opened before the REVOKE.
 *  - `ALTER ROLE .. IN DATABASE .. SET default_transaction_read_only = on` only makes
 *    the mistake visible early with a clear error; any session can undo it with
 *    `SET default_transaction_read_only = off`, so it never guards anything alone.
 * A REVOKE cannot take away what a role has as the table's owner, through membership
 * of a role that holds the privilege, or through PUBLIC; the observer checks with
 * has_table_privilege (which sees all three), so the planner reports such a role.
 */
import type { DesiredGuard, GuardMode } from '../model/desired.js';
import { ident, literal, tableRef } from './quote.js';
import { type Statement, standalone, tx } from './statement.js';

/** Privileges an application role holds on a writable primary. TRUNCATE is never handed out. */
export const WRITE_GRANTS = 'SELECT, INSERT, UPDATE, DELETE';
/** Everything that changes rows; revoked on secondaries and on a fenced primary. */
export const WRITE_REVOKES = 'INSERT, UPDATE, DELETE, TRUNCATE';

/** How long terminateSessionsSql waits for each session to exit (ms). */
export const TERMINATE_WAIT_MS = 5000;

function roleList(roles: string[]): string {
  return roles.map(ident).join(', ');
}

function tableList(tables: string[]): string {
  return [...new Set(tables)].sort().map(tableRef).join(', ');
}

/**
 * `tables` must exist in the database (REVOKE and GRANT fail on a missing table): pass
 * the application tables present there. All statements share one transaction, so a
 * region is never half-guarded.
 */
export function guardSql(g: DesiredGuard, tables: string[], database: string): Statement[] {
  return guardModeSql(g.mode, g.roles, tables, database);
}

function guardModeSql(mode: GuardMode, roles: string[], tables: string[], database: string): Statement[] {
  if (roles.length === 0) return [];
  const out: Statement[] = [];
  if (tables.length > 0) {
    const on = `ON TABLE ${tableList(tables)}`;
    if (mode === 'read-only') {
      out.push(tx(`REVOKE ${WRITE_REVOKES} ${on} FROM ${roleList(roles)}`));
      // A read replica is for reading: keep SELECT even where the role never had it.
      out.push(tx(`GRANT SELECT ${on} TO ${roleList(roles)}`));
    } else {
      out.push(tx(`GRANT ${WRITE_GRANTS} ${on} TO ${roleList(roles)}`));
    }
  }
  for (const r of [...roles].sort()) {
    const alter = `ALTER ROLE ${ident(r)} IN DATABASE ${ident(database)}`;
    out.push(
      tx(
        mode === 'read-only'
          ? `${alter} SET default_transaction_read_only = on`
          : `${alter} RESET default_transaction_read_only`,
      ),
    );
  }
  return out;
}

/**
 * Ends every session of the given roles on the server (all databases), waiting up to
 * TERMINATE_WAIT_MS for each to exit, so an open transaction that wrote before the fence
 * is rolled back instead of committed. One row per session: pid, usename, datname,
 * terminated (false when it did not exit in time).
 */
export function terminateSessionsSql(roles: string[]): Statement[] {
  if (roles.length === 0) return [];
  return [
    standalone(`SELECT pid, usename, datname, pg_terminate_backend(pid, ${TERMINATE_WAIT_MS}) AS terminated
FROM pg_stat_activity
WHERE usename IN (${[...roles].sort().map(literal).join(', ')}) AND pid <> pg_backend_pid()`),
  ];
}

/**
 * Stops every application write on a region (an old primary before another is
 * promoted). In one transaction: NOLOGIN (no new sessions), the read-only guard (no new
 * writes in existing sessions); then, once that has committed, the existing sessions
 * are terminated, which aborts transactions that wrote before the fence. Verify it by
 * attempting a write as an application role (issue 5): only that proves it.
 * NOLOGIN is cluster-wide: the roles cannot log in to any database of that server.
 */
export function fenceSql(roles: string[], tables: string[], database: string): Statement[] {
  if (roles.length === 0) return [];
  return [
    ...[...roles].sort().map((r) => tx(`ALTER ROLE ${ident(r)} NOLOGIN`)),
    ...guardModeSql('read-only', roles, tables, database),
    ...terminateSessionsSql(roles),
  ];
}

/**
 * Lets application roles log in again, in `mode`: 'read-only' for an old primary that
 * rejoins as a secondary, 'read-write' when it becomes the primary again.
 */
export function unfenceSql(
  roles: string[],
  tables: string[],
  database: string,
  mode: GuardMode = 'read-only',
): Statement[] {
  if (roles.length === 0) return [];
  return [
    ...guardModeSql(mode, roles, tables, database),
    ...[...roles].sort().map((r) => tx(`ALTER ROLE ${ident(r)} LOGIN`)),
  ];
}
