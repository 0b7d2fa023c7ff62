/**
 * Reads what a logical slot holds without consuming it: `pg_logical_slot_peek_binary_changes`
 * with pgoutput, decoded by pg-logical-replication's parser. Used for the old primary's
 * evidence slot (what it never shipped) and the new primary's rejoin slot (what changed
 * since the promotion).
 */
import type pg from 'pg';
import { PgoutputPlugin } from 'pg-logical-replication';
import { compareLsn, lsnDistance } from '../model/lsn.js';

export interface DecodedChange {
  table: string;
  op: 'insert' | 'update' | 'delete' | 'truncate';
  /** The row's identity as far as the replica identity tells (key columns, or the old row). */
  key: Record<string, unknown> | null;
  /** The new row (insert, update), null for delete and truncate. */
  values: Record<string, unknown> | null;
  /** The old row when the replica identity is FULL. */
  oldValues: Record<string, unknown> | null;
}

export interface DecodedTransaction {
  xid: number;
  commitLsn: string;
  commitTime: string;
  changes: DecodedChange[];
}

export interface DecodedSlot {
  slotFound: boolean;
  transactions: DecodedTransaction[];
  /** WAL bytes between `afterLsn` and the end of the last decoded commit. */
  totalBytes: number;
}

const PEEK = `SELECT lsn::text AS lsn, data FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, NULL,
  'proto_version', '1', 'publication_names', $3)`;

/** Plain JSON values (bigint → string, Date → ISO) so a report can be stored and compared. */
export function plain(v: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!v) return null;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    out[k] = typeof x === 'bigint' ? x.toString() : x instanceof Date ? x.toISOString() : x;
  }
  return out;
}

function pick(row: Record<string, unknown> | null, cols: string[]): Record<string, unknown> | null {
  if (!row || cols.length === 0) return row;
  const out: Record<string, unknown> = {};
  for (const c of cols) out[c] = row[c];
  return out;
}

/** Microseconds since 2000-01-01 (PostgreSQL epoch) → ISO. */
function pgTime(us: { toString(): string }): string {
  return new Date(Number(BigInt(us.toString()) / 1000n) + Date.UTC(2000, 0, 1)).toISOString();
}

export async function decodeSlot(
  c: pg.ClientBase,
  slot: string,
  publication: string,
  afterLsn: string,
  uptoLsn: string | null = null,
): Promise<DecodedSlot> {
  let rows: { lsn: string; data: Buffer }[];
  try {
    rows = (await c.query(PEEK, [slot, uptoLsn, publication])).rows;
  } catch (e) {
    if ((e as { code?: string }).code === '42704')
      return { slotFound: false, transactions: [], totalBytes: 0 };
    throw e;
  }
  const parser = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] });
  const txs: DecodedTransaction[] = [];
  let cur: DecodedTransaction | null = null;
  for (const r of rows) {
    const m = parser.parse(r.data);
    switch (m.tag) {
      case 'begin':
        cur = { xid: m.xid, commitLsn: m.commitLsn ?? r.lsn, commitTime: pgTime(m.commitTime), changes: [] };
        break;
      case 'insert': {
        const table = `${m.relation.schema}.${m.relation.name}`;
        const values = plain(m.new);
        cur?.changes.push({
          table,
          op: 'insert',
          key: pick(values, m.relation.keyColumns),
          values,
          oldValues: null,
        });
        break;
      }
      case 'update': {
        const table = `${m.relation.schema}.${m.relation.name}`;
        const values = plain(m.new);
        const key =
          plain(m.key) ?? pick(plain(m.old), m.relation.keyColumns) ?? pick(values, m.relation.keyColumns);
        cur?.changes.push({ table, op: 'update', key, values, oldValues: plain(m.old) });
        break;
      }
      case 'delete': {
        const table = `${m.relation.schema}.${m.relation.name}`;
        const key = plain(m.key) ?? pick(plain(m.old), m.relation.keyColumns);
        cur?.changes.push({ table, op: 'delete', key, values: null, oldValues: plain(m.old) });
        break;
      }
      case 'truncate':
        for (const rel of m.relations) {
          cur?.changes.push({
            table: `${rel.schema}.${rel.name}`,
            op: 'truncate',
            key: null,
            values: null,
            oldValues: null,
          });
        }
        break;
      case 'commit':
        if (cur) {
          cur.commitLsn = m.commitEndLsn ?? m.commitLsn ?? cur.commitLsn;
          if (compareLsn(cur.commitLsn, afterLsn) > 0 && cur.changes.length > 0) txs.push(cur);
        }
        cur = null;
        break;
      default:
        break;
    }
  }
  const last = txs.at(-1)?.commitLsn;
  return { slotFound: true, transactions: txs, totalBytes: last ? lsnDistance(last, afterLsn) : 0 };
}
