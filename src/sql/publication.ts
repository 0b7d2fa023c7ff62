/** Publications: one per channel, on the primary, carrying the channel's tables and filters. */
import type { DesiredPublication, PublishedTable } from '../model/desired.js';
import { ident, tableRef } from './quote.js';
import { type Statement, tx } from './statement.js';

function tableClause(t: PublishedTable): string {
  const cols = t.columns ? ` (${t.columns.map(ident).join(', ')})` : '';
  // Row filters come from the validated spec (a single expression, no `;`, no comments).
  const where = t.rowFilter ? ` WHERE (${t.rowFilter})` : '';
  return `${tableRef(t.table)}${cols}${where}`;
}

function tableList(p: DesiredPublication): string {
  return p.tables.map(tableClause).join(', ');
}

export function createPublicationSql(p: DesiredPublication): Statement[] {
  const forTables = p.tables.length > 0 ? ` FOR TABLE ${tableList(p)}` : '';
  return [tx(`CREATE PUBLICATION ${ident(p.name)}${forTables} WITH (publish = 'insert, update, delete, truncate')`)];
}

export function alterPublicationSql(p: DesiredPublication): Statement[] {
  // Desired publications always carry the heartbeat table, so SET TABLE has a list.
  if (p.tables.length === 0) throw new Error(`publication ${p.name} has no tables`);
  return [tx(`ALTER PUBLICATION ${ident(p.name)} SET TABLE ${tableList(p)}`)];
}

export function dropPublicationSql(name: string): Statement[] {
  return [tx(`DROP PUBLICATION IF EXISTS ${ident(name)}`)];
}
