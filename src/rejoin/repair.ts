/**
 * Makes rows of a table on a rejoining region equal to the primary's rows as of a
 * snapshot: by key (proportional to the divergence) or the whole table (`--full`, and
 * tables without a primary key). Rows travel as JSON through json_populate_recordset, so
 * every column type round-trips through its own text form and nothing is spliced into SQL.
 *
 * The caller runs these in one transaction with `session_replication_role = replica`
 * (setReplicaRole), as PostgreSQL's own apply worker does: user triggers do not fire
 * (no invented audit rows) and foreign keys do not act (deleting a parent to re-insert
 * it does not cascade to unchanged children, nor does RESTRICT abort the repair) — the
 * rows written are exactly the primary's. Generated columns are left to the server.
 */
import type pg from 'pg';
import { ident, tableRef } from '../sql/quote.js';

export async function primaryKeyColumns(c: pg.ClientBase, table: string): Promise<string[]> {
  const r = await c.query(
    `SELECT a.attname FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisprimary
      ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [tableRef(table)],
  );
  return r.rows.map((x) => x.attname as string);
}

/** Every column an INSERT may name: not dropped, not generated. */
export async function insertableColumns(c: pg.ClientBase, table: string): Promise<string[]> {
  const r = await c.query(
    `SELECT attname FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
      ORDER BY attnum`,
    [tableRef(table)],
  );
  return r.rows.map((x) => x.attname as string);
}

/** Inside the caller's transaction: triggers and foreign-key actions off, as the apply worker runs. */
export async function setReplicaRole(c: pg.ClientBase): Promise<void> {
  await c.query('SET LOCAL session_replication_role = replica');
}

async function insertRows(target: pg.ClientBase, table: string, rows: unknown): Promise<number> {
  const cols = (await insertableColumns(target, table)).map(ident).join(', ');
  const r = await target.query(
    `INSERT INTO ${tableRef(table)} (${cols}) OVERRIDING SYSTEM VALUE
     SELECT ${cols} FROM json_populate_recordset(NULL::${tableRef(table)}, $1::json)`,
    [JSON.stringify(rows)],
  );
  return r.rowCount ?? 0;
}

/**
 * Empties a table: TRUNCATE, unless a foreign key points at it (TRUNCATE refuses that
 * even with triggers off); then DELETE, which under the replica role does not act on
 * the referencing rows.
 */
export async function emptyTable(c: pg.ClientBase, table: string): Promise<void> {
  const referenced = await c.query(
    "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = $1::regclass AND conrelid <> confrelid LIMIT 1",
    [tableRef(table)],
  );
  await c.query(referenced.rowCount ? `DELETE FROM ${tableRef(table)}` : `TRUNCATE ${tableRef(table)}`);
}

function keyMatch(table: string, pk: string[]): string {
  const cols = pk.map(ident).join(', ');
  return `(${cols}) IN (SELECT ${cols} FROM json_populate_recordset(NULL::${tableRef(table)}, $1::json))`;
}

/**
 * Sets the rows with the given keys on `target` to what `source` holds (deleting the
 * ones `source` does not have, or that its row filter excludes).
 */
export async function repairKeys(
  source: pg.ClientBase,
  target: pg.ClientBase,
  table: string,
  keys: Record<string, unknown>[],
  rowFilter?: string,
): Promise<{ deleted: number; inserted: number }> {
  if (keys.length === 0) return { deleted: 0, inserted: 0 };
  const pk = await primaryKeyColumns(target, table);
  if (pk.length === 0) throw new Error(`table ${table} has no primary key: repair it with --full`);
  const where = rowFilter ? ` AND (${rowFilter})` : '';
  const rows = await source.query(
    `SELECT coalesce(json_agg(t), '[]'::json) AS rows FROM ${tableRef(table)} t WHERE ${keyMatch(table, pk)}${where}`,
    [JSON.stringify(keys)],
  );
  const del = await target.query(`DELETE FROM ${tableRef(table)} WHERE ${keyMatch(table, pk)}`, [
    JSON.stringify(keys),
  ]);
  const inserted = await insertRows(target, table, rows.rows[0].rows);
  return { deleted: del.rowCount ?? 0, inserted };
}

/** Replaces the whole table on `target` with `source`'s rows, in key order, chunk by chunk. */
export async function copyTableFull(
  source: pg.ClientBase,
  target: pg.ClientBase,
  table: string,
  rowFilter?: string,
  chunkRows = 5000,
): Promise<{ rows: number }> {
  const pk = await primaryKeyColumns(source, table);
  const keyType = pk.length === 1 ? await columnType(source, table, pk[0] ?? '') : 'text';
  await emptyTable(target, table);
  const filter = rowFilter ? `(${rowFilter})` : 'true';
  const key = pk.length === 1 ? ident(pk[0] ?? '') : null;
  let copied = 0;
  let last: unknown = null;
  for (let offset = 0; ; offset += chunkRows) {
    // Keyset pagination on a one-column key (constant cost per chunk); OFFSET otherwise.
    const page = key
      ? // keyType is format_type() output from the catalog, not user input.
        `SELECT * FROM ${tableRef(table)} WHERE ${filter} AND ($1::text IS NULL OR ${key} > $1::text::${keyType}) ORDER BY ${key} LIMIT ${chunkRows}`
      : // Without a key, the whole row in its text form orders the pages (every type has one).
        `SELECT * FROM ${tableRef(table)} x WHERE ${filter} ORDER BY ${pk.length > 0 ? pk.map(ident).join(', ') : 'x::text'} LIMIT ${chunkRows} OFFSET ${offset}`;
    const r = await source.query(
      `SELECT coalesce(json_agg(t), '[]'::json) AS rows, count(*)::int AS n, ${key ? `max(t.${key})::text` : 'NULL::text'} AS last FROM (${page}) t`,
      key ? [last] : [],
    );
    const n = r.rows[0].n as number;
    if (n === 0) break;
    last = r.rows[0].last;
    await insertRows(target, table, r.rows[0].rows);
    copied += n;
    if (n < chunkRows) break;
  }
  return { rows: copied };
}

async function columnType(c: pg.ClientBase, table: string, column: string): Promise<string> {
  const r = await c.query(
    'SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2',
    [tableRef(table), column],
  );
  return (r.rows[0]?.t as string | undefined) ?? 'text';
}
