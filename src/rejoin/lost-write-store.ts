/**
 * Keeps the lost-write report before anything is consumed: in the failover event (the
 * exact loss replaces the estimate) and on disk, as JSON and as a replayable SQL file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ident, literal, tableRef } from '../sql/quote.js';
import type { Store } from '../store/store.js';
import type { DecodedSlot } from './decode.js';

function sqlValue(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'object') return literal(JSON.stringify(v));
  return literal(String(v));
}

function where(key: Record<string, unknown>): string {
  return Object.entries(key)
    .map(([k, v]) => (v === null ? `${ident(k)} IS NULL` : `${ident(k)} = ${sqlValue(v)}`))
    .join(' AND ');
}

/** Statements that replay the lost transactions on the current primary, each guarded. */
export function replaySql(report: DecodedSlot, header: string): string {
  const out = [
    `-- ${header}`,
    '-- Review before running: these writes were never shipped before the failover.',
    'BEGIN;',
  ];
  for (const t of report.transactions) {
    out.push(`-- xid ${t.xid}, committed ${t.commitTime} at ${t.commitLsn}`);
    for (const c of t.changes) {
      const cols = c.values ? Object.keys(c.values) : [];
      switch (c.op) {
        case 'insert':
          out.push(
            `INSERT INTO ${tableRef(c.table)} (${cols.map(ident).join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${cols.map((k) => sqlValue(c.values?.[k])).join(', ')}) ON CONFLICT DO NOTHING;`,
          );
          break;
        case 'update':
          if (c.key && c.values) {
            out.push(
              `UPDATE ${tableRef(c.table)} SET ${cols.map((k) => `${ident(k)} = ${sqlValue(c.values?.[k])}`).join(', ')} WHERE ${where(c.key)};`,
            );
          }
          break;
        case 'delete':
          if (c.key) out.push(`DELETE FROM ${tableRef(c.table)} WHERE ${where(c.key)};`);
          break;
        case 'truncate':
          out.push(`-- TRUNCATE ${tableRef(c.table)} (not replayed automatically)`);
          break;
      }
    }
  }
  out.push('COMMIT;');
  return `${out.join('\n')}\n`;
}

export async function storeLostWrites(
  store: Store,
  eventId: number,
  report: DecodedSlot,
  opts: { reportDir: string; cutLsn: string },
): Promise<{ files: string[] }> {
  mkdirSync(opts.reportDir, { recursive: true });
  const base = join(opts.reportDir, `failover-${eventId}-lost-writes`);
  const doc = {
    eventId,
    cutLsn: opts.cutLsn,
    transactions: report.transactions,
    totalBytes: report.totalBytes,
  };
  writeFileSync(`${base}.json`, `${JSON.stringify(doc, null, 2)}\n`);
  writeFileSync(
    `${base}.sql`,
    replaySql(report, `failover event ${eventId}: writes committed after cut ${opts.cutLsn}`),
  );
  await store.updateFailoverEvent(eventId, {
    dataLossBytes: report.totalBytes,
    lostTransactions: report.transactions.length,
    evidence: { lostWrites: doc },
  });
  return { files: [`${base}.json`, `${base}.sql`] };
}
