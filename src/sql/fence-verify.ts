/** Fence verification, shared by the failover's fence and the region agent's self-fence. */
import type pg from 'pg';
import { literal, tableRef } from './quote.js';

/**
 * Verifies a fence the only way that proves it: a write as each application role must
 * fail with insufficient_privilege (and no role may log in). All attempts run in one
 * DO block — one round trip however many roles and tables, which matters when the old
 * primary is a region away — each in its own subtransaction that the failure rolls
 * back (SET LOCAL ROLE included). A write that goes through raises, which aborts the
 * block and so undoes that write; any other failure (a NOT NULL column without default,
 * a missing table) also makes the fence unverified, as before.
 */
export async function verifyFence(c: pg.ClientBase, roles: string[], tables: string[]): Promise<boolean> {
  if (roles.length === 0) return true;
  const login = await c.query(
    'SELECT count(*)::int AS n FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin',
    [roles],
  );
  if ((login.rows[0]?.n ?? 0) > 0) return false;
  if (tables.length === 0) return true;
  const arr = (xs: string[]) => `ARRAY[${xs.map(literal).join(', ')}]::text[]`;
  const body = `
DECLARE r text; t text;
BEGIN
  FOREACH r IN ARRAY ${arr(roles)} LOOP
    FOREACH t IN ARRAY ${arr(tables.map(tableRef))} LOOP
      BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE format('INSERT INTO %s DEFAULT VALUES', t);
        RAISE EXCEPTION 'regionctl fence broken: % could write to %', r, t USING ERRCODE = 'P0001';
      EXCEPTION WHEN insufficient_privilege THEN
        NULL;
      END;
    END LOOP;
  END LOOP;
END`;
  try {
    await c.query(`DO $regionctl_fence$${body}$regionctl_fence$`);
    return true;
  } catch {
    return false;
  }
}
