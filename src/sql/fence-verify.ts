/** Fence verification, shared by the failover's fence and the region agent's self-fence. */
import type pg from 'pg';
import { ident, tableRef } from './quote.js';

/** Verifies a fence the only way that proves it: a write as each application role must fail. */
export async function verifyFence(c: pg.ClientBase, roles: string[], tables: string[]): Promise<boolean> {
  for (const role of roles) {
    const login = await c.query('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [role]);
    if (login.rows[0]?.rolcanlogin) return false;
    for (const t of tables) {
      await c.query('BEGIN');
      try {
        await c.query(`SET LOCAL ROLE ${ident(role)}`);
        await c.query(`INSERT INTO ${tableRef(t)} DEFAULT VALUES`);
        return false; // the write went through: not fenced
      } catch (e) {
        if ((e as { code?: string }).code !== '42501') return false; // failed for another reason
      } finally {
        await c.query('ROLLBACK').catch(() => {});
      }
    }
  }
  return true;
}
