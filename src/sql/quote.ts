/**
 * The one place SQL identifiers and literals are quoted. Every builder goes through
 * here; nothing else concatenates names into SQL.
 */

/** Quote an identifier (table, role, publication...) the way PostgreSQL does. */
export function ident(name: string): string {
  if (name.length === 0) throw new Error('empty SQL identifier');
  if (name.includes('\u0000')) throw new Error('SQL identifier contains a NUL byte');
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quote `schema.table` (already split) as a qualified name. */
export function qualified(schema: string, table: string): string {
  return `${ident(schema)}.${ident(table)}`;
}

/** Split a validated `schema.table` name and quote both parts. */
export function tableRef(name: string): string {
  const { schema, table } = splitTableName(name);
  return qualified(schema, table);
}

export function splitTableName(name: string): { schema: string; table: string } {
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) {
    throw new Error(`table name '${name}' must be schema.table`);
  }
  return { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

/** Quote a string literal (standard_conforming_strings is on in every supported server). */
export function literal(value: string): string {
  if (value.includes('\u0000')) throw new Error('SQL literal contains a NUL byte');
  return `'${value.replaceAll("'", "''")}'`;
}
