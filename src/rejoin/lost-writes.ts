/**
 * The lost-write report of a failover: every transaction the old primary committed after
 * the promotion's cut point and never shipped, read from the slot the promoted region's
 * detached subscription left behind.
 *
 * Order matters and the API enforces it: `lostWriteReport` only PEEKS the slot (it can be
 * run any number of times with the same result); `storeLostWriteReport` keeps the report
 * in the control store (and the failover event gets the exact loss); only then may
 * `consumeEvidenceSlot` / `dropEvidenceSlot` move or drop the slot — they refuse while no
 * report is stored, because the slot is the only record of those writes.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import type { PublishedTable } from '../model/desired.js';
import { compareLsn, lsnDistance } from '../model/lsn.js';
import { ident, literal, tableRef } from '../sql/quote.js';
import type { Store } from '../store/store.js';
import { type DifferingRow, type DiffOptions, diffTable } from '../verify/diff.js';
import { PgoutputTextDecoder, pgTimeToIso, type RelationInfo, type Tuple } from './pgoutput-text.js';
import { primaryKeyColumns } from './repair.js';

export type LostOp = 'insert' | 'update' | 'delete' | 'truncate';

export interface LostChange {
  /** schema.table */
  table: string;
  op: LostOp;
  /** Primary key (or replica identity) of the row; for an update, the key it had before. Empty for truncate. */
  key: Record<string, unknown>;
  /** The row after the change (insert, update); null for delete and truncate. */
  values: Record<string, unknown> | null;
  /** The row before the change, when the replica identity is FULL. */
  oldValues?: Record<string, unknown>;
  /** Columns of an update whose (TOASTed, unchanged) value the WAL does not carry. */
  unchanged?: string[];
}

export interface LostTransaction {
  xid: number;
  /** End LSN of the commit record: what a subscriber's origin records once applied (same as the lab's ledger). */
  commitLsn: string;
  commitTime: string;
  changes: LostChange[];
}

export interface LostWriteReport {
  eventId: number;
  slotName: string;
  publication: string;
  cutLsn: string;
  /** False when the slot is gone (dropped, or its WAL removed): nothing could be decoded. */
  slotFound: boolean;
  /** Why the slot could not be read, when slotFound is false. */
  reason?: string;
  /**
   * The slot's confirmed position when peeked. It may be past the cut (an idle subscriber
   * confirms keepalive positions), never past a transaction it did not apply.
   */
  slotConfirmedLsn: string | null;
  /** Decoding stopped here (the old primary's WAL end when the report was made). */
  uptoLsn: string | null;
  transactions: LostTransaction[];
  /** WAL bytes from the cut to the end of the last lost commit: the exact data loss. */
  totalBytes: number;
  /** SQL type of every column seen, per table, so the replay SQL can be rebuilt from the JSON. */
  columnTypes: Record<string, Record<string, string>>;
  generatedAt: string;
}

export interface LostWriteInput {
  /** Superuser connection to the old primary's replicated database. */
  oldPrimary: pg.ClientBase;
  slotName: string;
  publication: string;
  cutLsn: string;
  eventId: number;
  /** Stop decoding here (default: the old primary's current WAL end, read first). */
  uptoLsn?: string;
}

const INT_TYPES = new Set([21, 23, 26, 20]); // int2, int4, oid, int8
const FLOAT_TYPES = new Set([700, 701]);
const BOOL = 16;
const JSONB = 3802;

/** A column's text as a JSON value: numbers and booleans as such, jsonb parsed, the rest as PostgreSQL prints it. */
function typed(text: string, typeOid: number): unknown {
  if (INT_TYPES.has(typeOid)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : text;
  }
  if (FLOAT_TYPES.has(typeOid)) {
    const n = Number(text);
    return Number.isFinite(n) ? n : text;
  }
  if (typeOid === BOOL) return text === 't';
  if (typeOid === JSONB) return JSON.parse(text);
  return text;
}

function rowOf(rel: RelationInfo, t: Tuple): { row: Record<string, unknown>; unchanged: string[] } {
  const row: Record<string, unknown> = {};
  const unchanged: string[] = [];
  for (const col of rel.columns) {
    const v = t.get(col.name);
    if (!v) continue;
    if (v.kind === 'null') row[col.name] = null;
    else if (v.kind === 'text') row[col.name] = typed(v.text, col.typeOid);
    else unchanged.push(col.name);
  }
  return { row, unchanged };
}

function pick(row: Record<string, unknown>, cols: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of cols) if (Object.hasOwn(row, c)) out[c] = row[c];
  return out;
}

interface SlotRow {
  plugin: string | null;
  confirmed: string | null;
  walStatus: string | null;
  active: boolean;
}

async function slotInfo(c: pg.ClientBase, slot: string): Promise<SlotRow | null> {
  const r = await c.query(
    `SELECT plugin, confirmed_flush_lsn::text AS confirmed, wal_status, active
       FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [slot],
  );
  const row = r.rows[0];
  return row
    ? { plugin: row.plugin, confirmed: row.confirmed, walStatus: row.wal_status, active: row.active }
    : null;
}

/** Key columns of each relation: the primary key where there is one (FULL identity flags every column). */
async function keyColumns(c: pg.ClientBase, rels: RelationInfo[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  if (rels.length === 0) return out;
  const r = await c.query(
    `SELECT i.indrelid::int AS oid, array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)) AS cols
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indisprimary AND i.indrelid = ANY ($1::oid[])
      GROUP BY i.indrelid`,
    [rels.map((x) => x.oid)],
  );
  for (const row of r.rows) out.set(Number(row.oid), row.cols as string[]);
  for (const rel of rels) {
    if (!out.has(rel.oid))
      out.set(
        rel.oid,
        rel.columns.filter((x) => x.identity).map((x) => x.name),
      );
  }
  return out;
}

async function sqlTypes(
  c: pg.ClientBase,
  rels: RelationInfo[],
): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  const cols = rels.flatMap((rel) => rel.columns.map((col) => ({ rel, col })));
  if (cols.length === 0) return out;
  const r = await c.query(
    'SELECT format_type(o, m) AS t FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS u(o, m, n) ORDER BY n',
    [cols.map((x) => x.col.typeOid), cols.map((x) => x.col.typeMod)],
  );
  cols.forEach(({ rel, col }, i) => {
    const table = `${rel.schema}.${rel.name}`;
    out[table] ??= {};
    (out[table] as Record<string, string>)[col.name] = r.rows[i]?.t ?? 'text';
  });
  return out;
}

/**
 * Decodes, without moving the slot, every transaction committed after `cutLsn` that the
 * slot holds for `publication`. Read-only: two calls give the same report (the WAL end
 * is pinned as `uptoLsn`, and nothing writes to a fenced old primary).
 */
export async function lostWriteReport(input: LostWriteInput): Promise<LostWriteReport> {
  const c = input.oldPrimary;
  const base = {
    eventId: input.eventId,
    slotName: input.slotName,
    publication: input.publication,
    cutLsn: input.cutLsn,
    transactions: [] as LostTransaction[],
    totalBytes: 0,
    columnTypes: {},
    generatedAt: new Date().toISOString(),
  };
  const slot = await slotInfo(c, input.slotName);
  const missing = (reason: string): LostWriteReport => ({
    ...base,
    slotFound: false,
    reason,
    slotConfirmedLsn: slot?.confirmed ?? null,
    uptoLsn: null,
  });
  if (!slot) return missing(`no slot ${input.slotName} in this database on the old primary`);
  if (slot.walStatus === 'lost')
    return missing(`slot ${input.slotName} lost the WAL it needed (wal_status lost)`);
  if (slot.plugin !== 'pgoutput') return missing(`slot ${input.slotName} uses ${slot.plugin}, not pgoutput`);
  if (slot.active) {
    throw new RegionctlError(
      'E_SLOT_ACTIVE',
      `slot ${input.slotName} on the old primary is in use by another session`,
      'a subscriber still streams from it: the old primary must be fenced and detached before its lost writes are read',
    );
  }
  const upto = input.uptoLsn ?? (await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
  const rows = (
    await c.query(
      // publication_names is parsed as a list of identifiers, hence ident().
      `SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, NULL,
         'proto_version', '1', 'publication_names', $3)`,
      [input.slotName, upto, ident(input.publication)],
    )
  ).rows as { data: Buffer }[];

  const decoder = new PgoutputTextDecoder();
  const relations = new Map<number, RelationInfo>();
  interface Pending {
    xid: number;
    changes: { rel: RelationInfo; op: LostOp; key: Tuple | null; old: Tuple | null; new: Tuple | null }[];
  }
  const raw: { tx: Pending; commitLsn: string; commitTimeUs: bigint }[] = [];
  let cur: Pending | null = null;
  for (const { data } of rows) {
    const m = decoder.decode(data);
    switch (m.tag) {
      case 'begin':
        cur = { xid: m.xid, changes: [] };
        break;
      case 'relation':
        relations.set(m.relation.oid, m.relation);
        break;
      case 'insert':
        cur?.changes.push({ rel: m.relation, op: 'insert', key: null, old: null, new: m.new });
        break;
      case 'update':
        cur?.changes.push({ rel: m.relation, op: 'update', key: m.key, old: m.old, new: m.new });
        break;
      case 'delete':
        cur?.changes.push({ rel: m.relation, op: 'delete', key: m.key, old: m.old, new: null });
        break;
      case 'truncate':
        for (const rel of m.relations)
          cur?.changes.push({ rel, op: 'truncate', key: null, old: null, new: null });
        break;
      case 'commit':
        // The cut is the end LSN of the last commit the candidate applied: later ends are lost.
        if (cur && cur.changes.length > 0 && compareLsn(m.endLsn, input.cutLsn) > 0) {
          raw.push({ tx: cur, commitLsn: m.endLsn, commitTimeUs: m.commitTimeUs });
        }
        cur = null;
        break;
      default:
        break;
    }
  }

  const rels = [...relations.values()];
  const keys = await keyColumns(c, rels);
  const transactions: LostTransaction[] = raw.map(({ tx, commitLsn, commitTimeUs }) => ({
    xid: tx.xid,
    commitLsn,
    commitTime: pgTimeToIso(commitTimeUs),
    changes: tx.changes.map((ch) => {
      const table = `${ch.rel.schema}.${ch.rel.name}`;
      const keyCols = keys.get(ch.rel.oid) ?? [];
      const out: LostChange = { table, op: ch.op, key: {}, values: null };
      const next = ch.new ? rowOf(ch.rel, ch.new) : null;
      const before = ch.old ? rowOf(ch.rel, ch.old).row : null;
      const keyTuple = ch.key ? rowOf(ch.rel, ch.key).row : null;
      if (next) out.values = next.row;
      if (before) out.oldValues = before;
      if (next && next.unchanged.length > 0) out.unchanged = next.unchanged;
      out.key = pick(keyTuple ?? before ?? next?.row ?? {}, keyCols);
      return out;
    }),
  }));
  const last = transactions.at(-1);
  return {
    ...base,
    slotFound: true,
    slotConfirmedLsn: slot.confirmed,
    uptoLsn: upto,
    transactions,
    totalBytes: last ? lsnDistance(last.commitLsn, input.cutLsn) : 0,
    columnTypes: await sqlTypes(c, rels),
  };
}

// ---- output formats --------------------------------------------------------------

function sqlValue(v: unknown, type: string | undefined): string {
  if (v === null || v === undefined) return 'NULL';
  const text = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  // The type name comes from format_type() on the old primary, not from user input.
  return type ? `${literal(text)}::${type}` : literal(text);
}

function whereKey(key: Record<string, unknown>, types: Record<string, string>): string {
  const parts = Object.entries(key).map(([k, v]) =>
    v === null ? `${ident(k)} IS NULL` : `${ident(k)} = ${sqlValue(v, types[k])}`,
  );
  return parts.length > 0 ? parts.join(' AND ') : 'false';
}

/** A lost insert whose key the current primary has given to another row meanwhile. */
export interface ReplayConflict {
  xid: number;
  /** Index of the change in its transaction. */
  change: number;
  table: string;
  key: Record<string, unknown>;
  /** The row the old primary committed (and lost). */
  lost: Record<string, unknown> | null;
  /** The row the current primary holds under that key. */
  current: unknown;
}

export function conflictId(xid: number, change: number): string {
  return `${xid}:${change}`;
}

/**
 * Lost inserts whose key already exists on the current primary: replayed, they would
 * fail (or, with ON CONFLICT DO NOTHING, vanish without a word). Each is listed with both
 * rows for a person to decide.
 */
export async function findReplayConflicts(
  primary: pg.ClientBase,
  report: LostWriteReport,
): Promise<ReplayConflict[]> {
  const out: ReplayConflict[] = [];
  const pks = new Map<string, string[]>();
  for (const t of report.transactions) {
    for (const [i, c] of t.changes.entries()) {
      if (c.op !== 'insert' || !c.values) continue;
      let pk = pks.get(c.table);
      if (!pk) {
        pk = await primaryKeyColumns(primary, c.table);
        pks.set(c.table, pk);
      }
      if (pk.length === 0 || pk.some((k) => c.values?.[k] === undefined)) continue;
      const key = Object.fromEntries(pk.map((k) => [k, c.values?.[k]]));
      const types = report.columnTypes[c.table] ?? {};
      const r = await primary.query(
        `SELECT row_to_json(t) AS row FROM ${tableRef(c.table)} t WHERE ${whereKey(key, types)} LIMIT 1`,
      );
      if (r.rows[0]) {
        out.push({ xid: t.xid, change: i, table: c.table, key, lost: c.values, current: r.rows[0].row });
      }
    }
  }
  return out;
}

/**
 * Statements that re-apply the lost writes on the current primary, for an operator to
 * review: inserts as plain INSERTs (a conflict fails the transaction, never drops a
 * lost write silently), updates and deletes by key. An insert already known to conflict
 * is written as a comment pointing to the conflicts file. A TRUNCATE is written as a
 * comment: replaying it would erase the new primary's rows.
 */
export function replaySql(report: LostWriteReport, conflicts: ReplayConflict[] = []): string {
  const conflicting = new Set(conflicts.map((c) => conflictId(c.xid, c.change)));
  const out = [
    `-- Lost writes of failover event ${report.eventId}: committed on the old primary after the cut ${report.cutLsn}`,
    `-- and never shipped (slot ${report.slotName}, publication ${report.publication}).`,
    `-- ${report.transactions.length} transactions, ${report.totalBytes} WAL bytes. Review before running it on the primary.`,
  ];
  if (!report.slotFound) out.push(`-- The slot could not be read: ${report.reason ?? 'unknown reason'}.`);
  if (conflicts.length > 0)
    out.push(
      `-- ${conflicts.length} insert(s) conflict with rows the primary holds now: commented out below; both rows are in failover-${report.eventId}-conflicts.json.`,
    );
  out.push('BEGIN;');
  for (const t of report.transactions) {
    out.push(`-- xid ${t.xid}, committed ${t.commitTime}, commit LSN ${t.commitLsn}`);
    for (const [i, c] of t.changes.entries()) {
      const types = report.columnTypes[c.table] ?? {};
      switch (c.op) {
        case 'insert': {
          const cols = Object.keys(c.values ?? {});
          const stmt = `INSERT INTO ${tableRef(c.table)} (${cols.map(ident).join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${cols
            .map((k) => sqlValue(c.values?.[k], types[k]))
            .join(', ')});`;
          out.push(
            conflicting.has(conflictId(t.xid, i))
              ? `-- CONFLICT (the key exists on the primary; see the conflicts file): ${stmt}`
              : stmt,
          );
          break;
        }
        case 'update': {
          const cols = Object.keys(c.values ?? {});
          if (cols.length === 0) break;
          out.push(
            `UPDATE ${tableRef(c.table)} SET ${cols
              .map((k) => `${ident(k)} = ${sqlValue(c.values?.[k], types[k])}`)
              .join(', ')} WHERE ${whereKey(c.key, types)};`,
          );
          break;
        }
        case 'delete':
          out.push(`DELETE FROM ${tableRef(c.table)} WHERE ${whereKey(c.key, types)};`);
          break;
        case 'truncate':
          out.push(`-- TRUNCATE ${tableRef(c.table)}; -- not replayed: it would erase the primary's rows`);
          break;
      }
    }
  }
  out.push('COMMIT;');
  return `${out.join('\n')}\n`;
}

/** `.regionctl/reports` next to regions.yaml. */
export function reportDir(specDir: string): string {
  return join(specDir, '.regionctl', 'reports');
}

/**
 * Writes failover-<id>.json, failover-<id>.sql and, when some lost inserts conflict with
 * the primary's rows, failover-<id>-conflicts.json (each atomically: a reader never sees
 * half a file).
 */
export function writeLostWriteFiles(
  report: LostWriteReport,
  dir: string,
  conflicts: ReplayConflict[] = [],
): { json: string; sql: string; conflicts: string | null } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `failover-${report.eventId}.json`);
  const sql = join(dir, `failover-${report.eventId}.sql`);
  const conflictsFile = conflicts.length > 0 ? join(dir, `failover-${report.eventId}-conflicts.json`) : null;
  const files: [string, string][] = [
    [json, `${JSON.stringify(report, null, 2)}\n`],
    [sql, replaySql(report, conflicts)],
  ];
  if (conflictsFile)
    files.push([conflictsFile, `${JSON.stringify({ eventId: report.eventId, conflicts }, null, 2)}\n`]);
  for (const [path, text] of files) {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  }
  return { json, sql, conflicts: conflictsFile };
}

// ---- control store ---------------------------------------------------------------

/**
 * Keeps the report (one per event; a re-run replaces it) and, when the slot was read,
 * replaces the event's estimated loss with the exact figure — in one transaction.
 */
export async function storeLostWriteReport(
  store: Store,
  eventId: number,
  report: LostWriteReport,
  opts: { files?: string[] } = {},
): Promise<void> {
  if (report.eventId !== eventId) {
    throw new RegionctlError(
      'E_REPORT_EVENT',
      `the report was made for event ${report.eventId}, not ${eventId}`,
      'store each report under the failover event it was made for',
    );
  }
  const c = store.client;
  await c.query('BEGIN');
  try {
    await c.query(
      `INSERT INTO regionctl.lost_write_report
         (event_id, slot_found, cut_lsn, upto_lsn, transactions, total_bytes, report, files)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
       ON CONFLICT (event_id) DO UPDATE SET slot_found = EXCLUDED.slot_found, cut_lsn = EXCLUDED.cut_lsn,
         upto_lsn = EXCLUDED.upto_lsn, transactions = EXCLUDED.transactions, total_bytes = EXCLUDED.total_bytes,
         report = EXCLUDED.report, files = EXCLUDED.files, created_at = now()`,
      [
        eventId,
        report.slotFound,
        report.cutLsn,
        report.uptoLsn,
        report.transactions.length,
        report.totalBytes,
        JSON.stringify(report),
        JSON.stringify(opts.files ?? []),
      ],
    );
    const summary = {
      lostWrites: {
        slotFound: report.slotFound,
        transactions: report.transactions.length,
        totalBytes: report.totalBytes,
        uptoLsn: report.uptoLsn,
        files: opts.files ?? [],
        ...(report.reason ? { reason: report.reason } : {}),
      },
    };
    await store.updateFailoverEvent(
      eventId,
      report.slotFound
        ? {
            evidence: summary,
            dataLossBytes: report.totalBytes,
            lostTransactions: report.transactions.length,
          }
        : { evidence: summary },
    );
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

export async function loadLostWriteReport(store: Store, eventId: number): Promise<LostWriteReport | null> {
  const r = await store.client.query('SELECT report FROM regionctl.lost_write_report WHERE event_id = $1', [
    eventId,
  ]);
  return (r.rows[0]?.report as LostWriteReport | undefined) ?? null;
}

async function storedOrRefuse(store: Store, eventId: number, slotName: string): Promise<LostWriteReport> {
  const stored = await loadLostWriteReport(store, eventId);
  if (!stored || stored.slotName !== slotName) {
    throw new RegionctlError(
      'E_REPORT_NOT_STORED',
      `no lost-write report of failover event ${eventId} from slot ${slotName} is in the control store`,
      'run lostWriteReport and storeLostWriteReport first: the slot is the only record of the lost writes',
    );
  }
  return stored;
}

/**
 * Moves the evidence slot to where the stored report stopped decoding, never further:
 * what a later write might add stays decodable.
 */
export async function consumeEvidenceSlot(
  oldPrimary: pg.ClientBase,
  store: Store,
  eventId: number,
  slotName: string,
): Promise<{ advancedTo: string | null }> {
  const stored = await storedOrRefuse(store, eventId, slotName);
  if (!stored.slotFound || !stored.uptoLsn) return { advancedTo: null };
  const slot = await slotInfo(oldPrimary, slotName);
  if (!slot) return { advancedTo: null };
  const r = await oldPrimary.query(
    'SELECT end_lsn::text AS l FROM pg_replication_slot_advance($1, $2::pg_lsn)',
    [slotName, stored.uptoLsn],
  );
  return { advancedTo: r.rows[0]?.l ?? null };
}

/** Drops the evidence slot (its WAL is then released) once its report is stored. Idempotent. */
export async function dropEvidenceSlot(
  oldPrimary: pg.ClientBase,
  store: Store,
  eventId: number,
  slotName: string,
): Promise<{ dropped: boolean }> {
  const stored = await storedOrRefuse(store, eventId, slotName);
  const slot = await slotInfo(oldPrimary, slotName);
  if (!slot) return { dropped: false };
  if (!stored.slotFound) {
    throw new RegionctlError(
      'E_REPORT_NOT_STORED',
      `the stored report of event ${eventId} says slot ${slotName} was missing, yet it exists`,
      'make the report again from the slot, store it, then drop the slot',
    );
  }
  await oldPrimary.query('SELECT pg_drop_replication_slot($1)', [slotName]);
  return { dropped: true };
}

// ---- fallback without a slot -------------------------------------------------------

export interface RowLevelTableResult {
  table: string;
  /** Rows the old primary has and the new one does not (by primary key). */
  onlyOnOld: DifferingRow[];
  /** Rows both have, with different content (the old primary's and the new one's). */
  different: DifferingRow[];
  /** Rows only the new primary has (written after the failover, most likely): counted, not listed. */
  onlyOnNewCount: number;
  /** True when more rows differ than `maxRows`: only ranges were compared beyond it. */
  truncated: boolean;
}

/**
 * Without the slot, the lost writes can only be approximated by comparing content: rows
 * present or different on the old primary but not on the new one (a row the new primary
 * changed after the failover shows up too — the comparison cannot tell who wrote last).
 * Chunked checksums, so the cost follows the divergence.
 */
export async function rowLevelComparison(
  oldPrimary: pg.ClientBase,
  newPrimary: pg.ClientBase,
  tables: (string | PublishedTable)[],
  opts: Pick<DiffOptions, 'chunkRows' | 'maxRows'> = {},
): Promise<RowLevelTableResult[]> {
  const out: RowLevelTableResult[] = [];
  for (const t of tables) {
    const pt: PublishedTable = typeof t === 'string' ? { table: t } : t;
    const d = await diffTable(oldPrimary, newPrimary, pt.table, {
      ...opts,
      ...(pt.rowFilter ? { rowFilter: pt.rowFilter } : {}),
      ...(pt.columns ? { columns: pt.columns } : {}),
      fetchRows: true,
    });
    out.push({
      table: pt.table,
      onlyOnOld: d.rows.filter((r) => r.kind === 'only-a'),
      different: d.rows.filter((r) => r.kind === 'different'),
      onlyOnNewCount: d.rows.filter((r) => r.kind === 'only-b').length,
      truncated: d.truncated,
    });
  }
  return out;
}
