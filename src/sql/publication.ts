/**
 * Publications on the primary, one per secondary (its table list, row filters and column
 * lists come from src/model/desired.ts). Every publication regionctl writes carries its
 * marker in COMMENT ON PUBLICATION: that is how the planner tells its own objects from
 * hand-made ones, and a spec change (defHash) from a hand edit (catalogHash).
 */
import type { DesiredPublication, PublishedTable } from '../model/desired.js';
import { formatMarker, type PublicationMarker, parseMarker } from '../model/marker.js';
import { ident, literal, tableRef } from './quote.js';
import { type Statement, tx } from './statement.js';

export type { PublicationMarker };
export { parseMarker };

/**
 * Every DML kind, written out even though it is the default: a hand-made
 * `SET (publish = 'insert')` is undone by the next alter instead of surviving it.
 */
export const PUBLISH_ALL = 'insert, update, delete, truncate';

/**
 * The marker as written at create/alter time. catalogHash is null until apply has read
 * back how the server deparsed the filters and re-commented the publication with it.
 */
export function publicationMarker(p: DesiredPublication, catalogHash: string | null = null): string {
  return formatMarker({ managedBy: 'regionctl', defHash: p.defHash, tables: p.tables, catalogHash });
}

/**
 * One entry of a FOR TABLE / SET TABLE list. The row filter is an SQL expression from the
 * spec (the validator parsed it and checked the identifiers it names); it cannot be
 * quoted, only parenthesised, which the grammar requires anyway.
 */
export function publishedTableSql(t: PublishedTable): string {
  let s = tableRef(t.table);
  if (t.columns && t.columns.length > 0) s += ` (${t.columns.map(ident).join(', ')})`;
  if (t.rowFilter !== undefined && t.rowFilter.trim() !== '') s += ` WHERE (${t.rowFilter})`;
  return s;
}

function tableList(p: DesiredPublication): string {
  if (p.tables.length === 0) {
    // Never reached from desiredState (the heartbeat is always published); a publication
    // with no tables would silently replicate nothing.
    throw new Error(`publication ${p.name} has no tables`);
  }
  return p.tables.map(publishedTableSql).join(', ');
}

function commentSql(p: DesiredPublication): Statement {
  return tx(`COMMENT ON PUBLICATION ${ident(p.name)} IS ${literal(publicationMarker(p))}`);
}

export function createPublicationSql(p: DesiredPublication): Statement[] {
  return [
    tx(
      `CREATE PUBLICATION ${ident(p.name)} FOR TABLE ${tableList(p)} WITH (publish = ${literal(PUBLISH_ALL)})`,
    ),
    commentSql(p),
  ];
}

/**
 * SET TABLE replaces the whole list (tables, filters and column lists) atomically, so
 * the publication never passes through a state where a filtered table is published
 * unfiltered. Subscribers only pick up added tables after REFRESH PUBLICATION.
 */
export function alterPublicationSql(p: DesiredPublication): Statement[] {
  return [
    tx(`ALTER PUBLICATION ${ident(p.name)} SET TABLE ${tableList(p)}`),
    tx(`ALTER PUBLICATION ${ident(p.name)} SET (publish = ${literal(PUBLISH_ALL)})`),
    commentSql(p),
  ];
}

export function dropPublicationSql(name: string): Statement[] {
  return [tx(`DROP PUBLICATION IF EXISTS ${ident(name)}`)];
}
