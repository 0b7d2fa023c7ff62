/**
 * Never destroy the only copy. A rejoin that overwrites whole tables on a former primary
 * (`--full`, or the evidence slot is gone so its lost writes cannot be decoded) first
 * compares every replicated table with the new primary and saves the old primary's
 * version of each row that differs — in a quarantine schema on that server
 * (`regionctl_quarantine_<event>`, one table per source table) and in a report file
 * (`rejoin-<event>-comparison.json`, method `comparison`).
 *
 * What a comparison cannot see, and the report says so: rows deleted on the old primary
 * after the cut that the new primary still has look like "missing here", not like a lost
 * delete; intermediate versions of a row are gone; a row changed identically on both
 * sides is not reported. A table without a key is saved whole when it differs.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import type { PublishedTable } from '../model/desired.js';
import { ident, literal, tableRef } from '../sql/quote.js';
import { diffTable } from '../verify/diff.js';

export const COMPARISON_LIMITS =
  'built by comparing tables, not from the WAL: a row deleted on the old primary after the cut shows as missing there; intermediate versions of a row are not seen; a row changed the same way on both sides is not reported';

export interface QuarantinedTable {
  table: string;
  /** Rows of the old primary saved (they differ from, or are absent on, the new primary). */
  saved: number;
  /** Rows the new primary has that the old one lacks (nothing to save). */
  missingHere: number;
  /** No key, or more differences than listed: the whole table was saved. */
  wholeTable: boolean;
  quarantineTable: string | null;
}

export interface ComparisonReport {
  method: 'comparison';
  limits: string;
  eventId: number;
  region: string;
  primary: string;
  schema: string;
  tables: QuarantinedTable[];
  savedRows: number;
  generatedAt: string;
}

export function quarantineSchema(eventId: number): string {
  return `regionctl_quarantine_${eventId}`;
}

/** `schema.table` for a source table `s.t`: `s__t`, so tables of two schemas never collide. */
function targetName(schema: string, table: string): string {
  return `${ident(schema)}.${ident(table.replace('.', '__'))}`;
}

export async function quarantineDifferences(o: {
  old: pg.ClientBase;
  primary: pg.ClientBase;
  tables: PublishedTable[];
  eventId: number;
  region: string;
  primaryRegion: string;
  reportDir: string;
  log: (line: string) => void;
}): Promise<{ report: ComparisonReport; file: string }> {
  const schema = quarantineSchema(o.eventId);
  await o.old.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
  const out: QuarantinedTable[] = [];
  for (const t of o.tables) {
    const d = await diffTable(o.primary, o.old, t.table, {
      ...(t.rowFilter ? { rowFilter: t.rowFilter } : {}),
      maxRows: 100_000,
    });
    if (d.equal) continue;
    const target = targetName(schema, t.table);
    // A re-run (resumed rejoin) replaces what an interrupted one saved.
    await o.old.query(`DROP TABLE IF EXISTS ${target}`);
    const wholeTable = d.keyColumns.length === 0 || d.truncated;
    let saved: number;
    if (wholeTable) {
      const r = await o.old.query(`CREATE TABLE ${target} AS SELECT * FROM ${tableRef(t.table)}`);
      saved = r.rowCount ?? 0;
    } else {
      const here = d.rows.filter((r) => r.kind !== 'only-a').map((r) => r.key);
      const cols = d.keyColumns.map(ident).join(', ');
      const r = await o.old.query(
        `CREATE TABLE ${target} AS SELECT * FROM ${tableRef(t.table)}
          WHERE (${cols})::text IN (SELECT (${d.keyColumns.map((k) => `k->>${literal(k)}`).join(', ')})::text
                                      FROM json_array_elements($1::json) k)`,
        [JSON.stringify(here)],
      );
      saved = r.rowCount ?? 0;
    }
    out.push({
      table: t.table,
      saved,
      missingHere: d.rows.filter((r) => r.kind === 'only-a').length,
      wholeTable,
      quarantineTable: `${schema}.${t.table.replace('.', '__')}`,
    });
    o.log(`  quarantined ${saved} row(s) of ${t.table} in ${schema}${wholeTable ? ' (whole table)' : ''}`);
  }
  const report: ComparisonReport = {
    method: 'comparison',
    limits: COMPARISON_LIMITS,
    eventId: o.eventId,
    region: o.region,
    primary: o.primaryRegion,
    schema,
    tables: out,
    savedRows: out.reduce((a, t) => a + t.saved, 0),
    generatedAt: new Date().toISOString(),
  };
  mkdirSync(o.reportDir, { recursive: true });
  const file = join(o.reportDir, `rejoin-${o.eventId}-comparison.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(tmp, file);
  return { report, file };
}
