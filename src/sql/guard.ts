/**
 * The guard keeps application roles from writing on a secondary while replication —
 * which applies as the subscription owner — keeps applying. The privilege REVOKE is the
 * real guard; default_transaction_read_only is only there so that a misrouted
 * application gets a clear "read-only transaction" error (a session can override it).
 */
import type { DesiredGuard } from '../model/desired.js';
import { ident, tableRef } from './quote.js';
import { type Statement, tx } from './statement.js';

const WRITE_PRIVILEGES = 'INSERT, UPDATE, DELETE, TRUNCATE';

export function guardSql(g: DesiredGuard, tables: string[], database: string): Statement[] {
  const out: Statement[] = [];
  const roles = g.roles.map(ident).join(', ');
  if (roles.length === 0) return out;
  for (const t of tables) {
    out.push(
      tx(
        g.mode === 'read-only'
          ? `REVOKE ${WRITE_PRIVILEGES} ON ${tableRef(t)} FROM ${roles}`
          : `GRANT SELECT, ${WRITE_PRIVILEGES} ON ${tableRef(t)} TO ${roles}`,
      ),
    );
  }
  for (const r of g.roles) {
    out.push(
      tx(
        g.mode === 'read-only'
          ? `ALTER ROLE ${ident(r)} IN DATABASE ${ident(database)} SET default_transaction_read_only = on`
          : `ALTER ROLE ${ident(r)} IN DATABASE ${ident(database)} RESET default_transaction_read_only`,
      ),
    );
  }
  return out;
}
