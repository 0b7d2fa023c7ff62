/**
 * Emptying replicated tables before a copy, on a schema with foreign keys. TRUNCATE of a
 * set of tables fails when a table outside the set references one inside it (a filtered
 * channel that withholds a child table, or a local table of the region); DELETE would
 * cascade or be restricted by the keys and fire user triggers. So: one TRUNCATE when
 * nothing outside references the set, else DELETE in one transaction with
 * `session_replication_role = replica`, as the apply worker writes (keys and triggers
 * do not act).
 */
import type pg from 'pg';
import { tableRef } from './quote.js';

/** Tables of `tables` that exist here, and whether a table outside the set references one of them. */
async function inspect(c: pg.ClientBase, tables: string[]) {
  const r = await c.query(
    `WITH s AS (SELECT t, to_regclass(t) AS oid FROM unnest($1::text[]) t)
     SELECT coalesce(array_agg(t) FILTER (WHERE oid IS NOT NULL), '{}') AS present,
            EXISTS (SELECT 1 FROM pg_constraint k
                     WHERE k.contype = 'f' AND k.confrelid IN (SELECT oid FROM s)
                       AND k.conrelid NOT IN (SELECT oid FROM s WHERE oid IS NOT NULL)
                       AND NOT EXISTS (SELECT 1 FROM pg_inherits i
                                        WHERE i.inhrelid = k.conrelid AND i.inhparent IN (SELECT oid FROM s))
                   ) AS referenced_from_outside
       FROM s`,
    [tables],
  );
  return {
    present: (r.rows[0]?.present ?? []) as string[],
    referenced: Boolean(r.rows[0]?.referenced_from_outside),
  };
}

export async function emptyTables(
  c: pg.ClientBase,
  tables: string[],
): Promise<{ method: 'truncate' | 'delete' | 'none' }> {
  const { present, referenced } = await inspect(c, tables);
  if (present.length === 0) return { method: 'none' };
  if (!referenced) {
    await c.query(`TRUNCATE ${present.map(tableRef).join(', ')}`);
    return { method: 'truncate' };
  }
  await c.query('BEGIN');
  try {
    await c.query('SET LOCAL session_replication_role = replica');
    for (const t of present) await c.query(`DELETE FROM ${tableRef(t)}`);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
  return { method: 'delete' };
}
