/**
 * Compares one table on two servers by chunked checksums over primary-key ranges, so the
 * cost is one sequential read of each side plus work proportional to the differences:
 *
 *   1. Walk side A in key order, N keys at a time: count and md5 of the rows' text. The
 *      same key range (lo, hi] is summed on side B (while A already reads the next chunk).
 *   2. A range whose sums differ is split at quantiles of its keys and each part summed
 *      again on both sides, until a part is small enough to list: then per-row hashes
 *      (and, on request, the rows) of that part only are fetched and compared by key.
 *
 * Rows are compared as their text (`ROW(cols)::text`), in a session whose time zone,
 * date and float output are pinned, so servers with different defaults still agree.
 */
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { ident, tableRef } from '../sql/quote.js';

/** Key column values, as text, in key column order. */
export type KeyValues = string[];

export type HashMode = 'record' | 'text';

export interface DiffOptions {
  /** Keys per chunk of the first pass (default 50 000: per-chunk round trips dominate below). */
  chunkRows?: number;
  /**
   * Row filter (SQL over the table's columns) applied to both sides: only rows it admits
   * are compared. NULL counts as excluded, as in a publication.
   */
  rowFilter?: string;
  /** Compare only these columns (a channel's column list); default all of side A's. */
  columns?: string[];
  /** Fetch the content of differing rows (default only their keys). */
  fetchRows?: boolean;
  /** Stop listing keys after this many differing rows; further differences are ranges only (default 10 000). */
  maxRows?: number;
  /** A range with at most this many rows per side is compared row by row (default 1000). */
  leafRows?: number;
  /** Parts a differing range is split into (default 16). */
  fanout?: number;
  /** How rows are hashed for the chunk sums (default: 'record' when every column type can be hashed). */
  hashMode?: HashMode;
  /** Compare only keys in (lo, hi] (null: unbounded), e.g. to re-check a range found earlier. */
  within?: { lo: KeyValues | null; hi: KeyValues | null };
}

export interface DifferingRange {
  /** Exclusive lower bound (null: from the first key). */
  lo: KeyValues | null;
  /** Inclusive upper bound (null: to the last key). */
  hi: KeyValues | null;
  rowsA: number;
  rowsB: number;
}

export interface DifferingRow {
  key: Record<string, string>;
  kind: 'only-a' | 'only-b' | 'different';
  /** The row on side A (with fetchRows). */
  a?: Record<string, unknown>;
  /** The row on side B (with fetchRows). */
  b?: Record<string, unknown>;
}

export interface TableDiff {
  table: string;
  keyColumns: string[];
  columns: string[];
  equal: boolean;
  rowsA: number;
  rowsB: number;
  chunks: number;
  ranges: DifferingRange[];
  rows: DifferingRow[];
  /** More rows differ than were listed (maxRows reached, or the table has no key). */
  truncated: boolean;
  hashMode: HashMode;
  /** Size of the table on side A (pg_table_size), for throughput figures. */
  bytesA: number;
  durationMs: number;
}

interface Shape {
  table: string;
  key: string[];
  keyTypes: string[];
  columns: string[];
}

interface Sum {
  n: number;
  h: string;
}

/** Settings that change how values print; pinned for the comparison and restored after. */
const STABLE_OUTPUT: [string, string][] = [
  ['TimeZone', 'UTC'],
  ['DateStyle', 'ISO, YMD'],
  ['IntervalStyle', 'postgres'],
  ['extra_float_digits', '1'],
  ['bytea_output', 'hex'],
];

async function withStableOutput<T>(clients: pg.ClientBase[], fn: () => Promise<T>): Promise<T> {
  const saved: { c: pg.ClientBase; name: string; value: string }[] = [];
  for (const c of new Set(clients)) {
    for (const [name, value] of STABLE_OUTPUT) {
      const r = await c.query('SELECT current_setting($1) AS v, set_config($1, $2, false)', [name, value]);
      saved.push({ c, name, value: r.rows[0].v });
    }
  }
  try {
    return await fn();
  } finally {
    for (const s of saved)
      await s.c.query('SELECT set_config($1, $2, false)', [s.name, s.value]).catch(() => {});
  }
}

/** Primary key columns (else the replica identity index) of a table, with their types. */
export async function tableKey(
  c: pg.ClientBase,
  table: string,
): Promise<{ columns: string[]; types: string[] }> {
  const r = await c.query(
    `SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1::regclass
        AND i.indexrelid = (SELECT x.indexrelid FROM pg_index x WHERE x.indrelid = $1::regclass
                              AND (x.indisprimary OR x.indisreplident)
                            ORDER BY x.indisprimary DESC LIMIT 1)
      ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [tableRef(table)],
  );
  return { columns: r.rows.map((x) => x.name as string), types: r.rows.map((x) => x.type as string) };
}

async function tableColumns(c: pg.ClientBase, table: string): Promise<string[]> {
  const r = await c.query(
    `SELECT attname::text AS name FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [tableRef(table)],
  );
  return r.rows.map((x) => x.name as string);
}

async function exists(c: pg.ClientBase, table: string): Promise<boolean> {
  const r = await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [tableRef(table)]);
  return r.rows[0].ok === true;
}

/** SQL fragments of one comparison; every name quoted, bounds passed as text[] parameters. */
class Q {
  readonly keyList: string;
  readonly keyText: string;
  readonly rowText: string;
  readonly rowHash: string;
  readonly from: string;
  readonly filter: string;
  constructor(
    readonly s: Shape,
    rowFilter: string | undefined,
    readonly hashMode: HashMode,
  ) {
    this.keyList = s.key.map((k) => `t.${ident(k)}`).join(', ');
    this.keyText = `ARRAY[${s.key.map((k) => `t.${ident(k)}::text`).join(', ')}]`;
    const row = `ROW(${s.columns.map((c) => `t.${ident(c)}`).join(', ')})`;
    this.rowText = `${row}::text`;
    this.rowHash =
      hashMode === 'record' ? `hash_record_extended(${row}, 0)` : `hashtextextended(${row}::text, 0)`;
    this.from = `${tableRef(s.table)} t`;
    // A publication's row filter admits a row only when it is true (NULL excludes it).
    this.filter = rowFilter ? `coalesce((${rowFilter}), false)` : 'true';
  }

  /** `(k1, k2) > (bound)` with the bound's text cast back to each key type. */
  private cmp(op: '>' | '<=', param: number): string {
    // Key types come from format_type() in the catalog, not from user input.
    const bound = this.s.keyTypes.map((t, i) => `($${param}::text[])[${i + 1}]::${t}`).join(', ');
    return `(${this.keyList}) ${op} (${bound})`;
  }

  range(lo: KeyValues | null, hi: KeyValues | null): { where: string; params: unknown[] } {
    const parts = [this.filter];
    const params: unknown[] = [];
    if (lo) {
      params.push(lo);
      parts.push(this.cmp('>', params.length));
    }
    if (hi) {
      params.push(hi);
      parts.push(this.cmp('<=', params.length));
    }
    return { where: parts.join(' AND '), params };
  }
}

/**
 * Count and sum of 64-bit row hashes of a range: order does not matter, so there is no
 * sort and no big string, and a chunk costs one index range scan. A row's hash covers its
 * key, so rows cannot trade places unnoticed.
 */
async function rangeSum(c: pg.ClientBase, q: Q, lo: KeyValues | null, hi: KeyValues | null): Promise<Sum> {
  const { where, params } = q.range(lo, hi);
  const r = await c.query(
    `SELECT count(*)::int AS n, coalesce(sum(${q.rowHash}), 0)::text AS h FROM ${q.from} WHERE ${where}`,
    params,
  );
  return { n: r.rows[0].n, h: r.rows[0].h };
}

/** The key `n` rows after `lo` on one side (null when fewer remain): the end of the next chunk. */
async function boundary(c: pg.ClientBase, q: Q, lo: KeyValues | null, n: number): Promise<KeyValues | null> {
  const { where, params } = q.range(lo, null);
  const r = await c.query(
    `SELECT ${q.keyText} AS k FROM ${q.from} WHERE ${where} ORDER BY ${q.keyList} OFFSET ${Math.trunc(n) - 1} LIMIT 1`,
    params,
  );
  return (r.rows[0]?.k as KeyValues | undefined) ?? null;
}

async function splitPoints(
  c: pg.ClientBase,
  q: Q,
  lo: KeyValues | null,
  hi: KeyValues | null,
  n: number,
  parts: number,
): Promise<KeyValues[]> {
  const step = Math.max(1, Math.ceil(n / parts));
  const { where, params } = q.range(lo, hi);
  params.push(step);
  const r = await c.query(
    `SELECT s.k FROM (SELECT ${q.keyText} AS k, row_number() OVER (ORDER BY ${q.keyList}) AS rn
                        FROM ${q.from} WHERE ${where}) s
      WHERE s.rn % $${params.length} = 0 ORDER BY s.rn`,
    params,
  );
  return r.rows.map((x) => x.k as KeyValues);
}

interface LeafRow {
  k: KeyValues;
  h: string;
}

async function leafRows(
  c: pg.ClientBase,
  q: Q,
  lo: KeyValues | null,
  hi: KeyValues | null,
): Promise<LeafRow[]> {
  const { where, params } = q.range(lo, hi);
  const r = await c.query(
    `SELECT ${q.keyText} AS k, md5(${q.rowText}) AS h FROM ${q.from} WHERE ${where} ORDER BY ${q.keyList}`,
    params,
  );
  return r.rows as LeafRow[];
}

/** The rows with the given keys within a range, as JSON, by key text. */
async function fetchRows(
  c: pg.ClientBase,
  q: Q,
  lo: KeyValues | null,
  hi: KeyValues | null,
  keys: KeyValues[],
): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  if (keys.length === 0) return out;
  const { where, params } = q.range(lo, hi);
  params.push(keys.map((k) => JSON.stringify(k)));
  const r = await c.query(
    `SELECT to_jsonb(${q.keyText}) AS k, to_jsonb(t) AS j FROM ${q.from}
      WHERE ${where} AND to_jsonb(${q.keyText}) = ANY ($${params.length}::jsonb[])`,
    params,
  );
  for (const row of r.rows) out.set(JSON.stringify(row.k), row.j);
  return out;
}

function pickColumns(
  row: Record<string, unknown> | undefined,
  cols: string[],
): Record<string, unknown> | undefined {
  if (!row) return undefined;
  const out: Record<string, unknown> = {};
  for (const c of cols) out[c] = row[c];
  return out;
}

interface Ctx {
  a: pg.ClientBase;
  b: pg.ClientBase;
  q: Q;
  opts: Required<Pick<DiffOptions, 'maxRows' | 'leafRows' | 'fanout'>> & { fetchRows: boolean };
  ranges: DifferingRange[];
  rows: DifferingRow[];
  truncated: boolean;
}

function keyRecord(s: Shape, k: KeyValues): Record<string, string> {
  const out: Record<string, string> = {};
  s.key.forEach((name, i) => {
    out[name] = k[i] ?? '';
  });
  return out;
}

async function compareLeaf(
  ctx: Ctx,
  lo: KeyValues | null,
  hi: KeyValues | null,
  sa: Sum,
  sb: Sum,
): Promise<void> {
  const [ra, rb] = await Promise.all([leafRows(ctx.a, ctx.q, lo, hi), leafRows(ctx.b, ctx.q, lo, hi)]);
  const bMap = new Map(rb.map((r) => [JSON.stringify(r.k), r]));
  const found: { k: KeyValues; kind: DifferingRow['kind'] }[] = [];
  for (const ar of ra) {
    const id = JSON.stringify(ar.k);
    const br = bMap.get(id);
    bMap.delete(id);
    if (!br) found.push({ k: ar.k, kind: 'only-a' });
    else if (br.h !== ar.h) found.push({ k: ar.k, kind: 'different' });
  }
  for (const br of bMap.values()) found.push({ k: br.k, kind: 'only-b' });
  if (found.length === 0) return; // changed between the sums and the listing (live writes)
  ctx.ranges.push({ lo, hi, rowsA: sa.n, rowsB: sb.n });
  const room = Math.max(0, ctx.opts.maxRows - ctx.rows.length);
  if (found.length > room) ctx.truncated = true;
  const listed = inKeyOrder(found, ra, rb).slice(0, room);
  let rowsA = new Map<string, Record<string, unknown>>();
  let rowsB = new Map<string, Record<string, unknown>>();
  if (ctx.opts.fetchRows) {
    [rowsA, rowsB] = await Promise.all([
      fetchRows(
        ctx.a,
        ctx.q,
        lo,
        hi,
        listed.filter((f) => f.kind !== 'only-b').map((f) => f.k),
      ),
      fetchRows(
        ctx.b,
        ctx.q,
        lo,
        hi,
        listed.filter((f) => f.kind !== 'only-a').map((f) => f.k),
      ),
    ]);
  }
  const cols = ctx.q.s.columns;
  for (const f of listed) {
    const id = JSON.stringify(f.k);
    const a = pickColumns(rowsA.get(id), cols);
    const b = pickColumns(rowsB.get(id), cols);
    ctx.rows.push({ key: keyRecord(ctx.q.s, f.k), kind: f.kind, ...(a ? { a } : {}), ...(b ? { b } : {}) });
  }
}

/**
 * Both listings came sorted by key from the servers; a row only B has goes right after
 * the last row before it (in B's order) that A also has. Keeps JS out of comparing typed keys.
 */
function inKeyOrder<T extends { k: KeyValues }>(found: T[], ra: LeafRow[], rb: LeafRow[]): T[] {
  const order = new Map<string, number>();
  ra.forEach((r, i) => {
    order.set(JSON.stringify(r.k), i * 2);
  });
  let lastCommon = -1;
  rb.forEach((r, i) => {
    const id = JSON.stringify(r.k);
    const inA = order.get(id);
    if (inA !== undefined && inA % 2 === 0) lastCommon = inA / 2;
    else order.set(id, lastCommon * 2 + 1 + i / (rb.length + 1));
  });
  return [...found].sort(
    (x, y) => (order.get(JSON.stringify(x.k)) ?? 0) - (order.get(JSON.stringify(y.k)) ?? 0),
  );
}

/** Narrows a range whose sums differ down to the rows that differ. */
async function refine(ctx: Ctx, lo: KeyValues | null, hi: KeyValues | null, sa: Sum, sb: Sum): Promise<void> {
  if (ctx.rows.length >= ctx.opts.maxRows) {
    ctx.truncated = true;
    ctx.ranges.push({ lo, hi, rowsA: sa.n, rowsB: sb.n });
    return;
  }
  if (Math.max(sa.n, sb.n) <= ctx.opts.leafRows) return compareLeaf(ctx, lo, hi, sa, sb);
  // Split where the side with more rows has its quantiles: every part stays small on it.
  const [side, n] = sa.n >= sb.n ? [ctx.a, sa.n] : [ctx.b, sb.n];
  const points = await splitPoints(side, ctx.q, lo, hi, n, ctx.opts.fanout);
  const bounds: (KeyValues | null)[] = [lo, ...points, hi];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const l = bounds[i] ?? null;
    const h = bounds[i + 1] ?? null;
    const [pa, pb] = await Promise.all([rangeSum(ctx.a, ctx.q, l, h), rangeSum(ctx.b, ctx.q, l, h)]);
    if (pa.n === pb.n && pa.h === pb.h) continue;
    await refine(ctx, l, h, pa, pb);
  }
}

function sameKey(x: KeyValues | null, y: KeyValues | null): boolean {
  return x !== null && y !== null && x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Adjacent differing ranges read better as one. */
function mergeRanges(ranges: DifferingRange[]): DifferingRange[] {
  const out: DifferingRange[] = [];
  for (const r of ranges) {
    const prev = out.at(-1);
    if (prev && sameKey(prev.hi, r.lo)) {
      prev.hi = r.hi;
      prev.rowsA += r.rowsA;
      prev.rowsB += r.rowsB;
    } else out.push({ ...r });
  }
  return out;
}

/**
 * 'record' hashes each column with its type's own hash function (no text output: about
 * twice as fast), when every compared column's type has one on both servers; 'text'
 * hashes the row's text otherwise (json, point...). In 'record' mode values that are
 * equal compare equal even when they print differently (numeric 1.0 and 1.00).
 */
async function hashMode(a: pg.ClientBase, b: pg.ClientBase, s: Shape): Promise<HashMode> {
  // A row of NULLs of the table's own column types: the probe needs no data.
  const probe = `SELECT hash_record_extended(ROW(${s.columns.map((c) => `t.${ident(c)}`).join(', ')}), 0)
                   FROM (SELECT 1) d LEFT JOIN ${tableRef(s.table)} t ON false`;
  const ok = async (c: pg.ClientBase) => {
    // Inside the caller's transaction a failing probe must not abort it: use a savepoint there.
    const implicit = (await c.query('SELECT now() = statement_timestamp() AS i')).rows[0].i === true;
    try {
      if (!implicit) await c.query('SAVEPOINT regionctl_hash_probe');
      await c.query(probe);
      if (!implicit) await c.query('RELEASE SAVEPOINT regionctl_hash_probe');
      return true;
    } catch {
      if (!implicit) await c.query('ROLLBACK TO SAVEPOINT regionctl_hash_probe').catch(() => {});
      return false;
    }
  };
  return (await ok(a)) && (await ok(b)) ? 'record' : 'text';
}

async function shapeOf(a: pg.ClientBase, b: pg.ClientBase, table: string, opts: DiffOptions): Promise<Shape> {
  const [onA, onB] = await Promise.all([exists(a, table), exists(b, table)]);
  if (!onA || !onB) {
    throw new RegionctlError(
      'E_VERIFY_TABLE_MISSING',
      `table ${table} is missing on ${!onA ? 'the first' : 'the second'} server`,
      'create it there (DDL is not replicated), then compare again',
    );
  }
  const key = await tableKey(a, table);
  const columns = opts.columns ?? (await tableColumns(a, table));
  return { table, key: key.columns, keyTypes: key.types, columns };
}

/**
 * Compares `table` on `a` and `b` (both sides read through `rowFilter` and `columns`)
 * and returns the key ranges that differ and, within them, the differing rows.
 */
export async function diffTable(
  a: pg.ClientBase,
  b: pg.ClientBase,
  table: string,
  opts: DiffOptions = {},
): Promise<TableDiff> {
  const t0 = performance.now();
  const shape = await shapeOf(a, b, table, opts);
  const q = new Q(shape, opts.rowFilter, opts.hashMode ?? (await hashMode(a, b, shape)));
  const bytesA = Number(
    (await a.query('SELECT pg_table_size($1::regclass) AS s', [tableRef(table)])).rows[0].s,
  );
  const ctx: Ctx = {
    a,
    b,
    q,
    opts: {
      maxRows: opts.maxRows ?? 10_000,
      leafRows: opts.leafRows ?? 1000,
      fanout: Math.max(2, opts.fanout ?? 16),
      fetchRows: opts.fetchRows === true,
    },
    ranges: [],
    rows: [],
    truncated: false,
  };
  const chunkRows = Math.max(1, opts.chunkRows ?? 50_000);
  let rowsA = 0;
  let rowsB = 0;
  let chunks = 0;
  await withStableOutput([a, b], async () => {
    if (shape.key.length === 0) {
      // No key to range over: one checksum of the whole table, ordered by the row text.
      const sum = async (c: pg.ClientBase) => {
        const r = await c.query(
          `SELECT count(*)::int AS n, md5(coalesce(string_agg(x.r, E'\\n' ORDER BY x.r), '')) AS h
             FROM (SELECT ${q.rowText} AS r FROM ${q.from} WHERE ${q.filter}) x`,
        );
        return { n: r.rows[0].n as number, h: r.rows[0].h as string };
      };
      const [sa, sb] = await Promise.all([sum(a), sum(b)]);
      rowsA = sa.n;
      rowsB = sb.n;
      chunks = 1;
      if (sa.n !== sb.n || sa.h !== sb.h) {
        ctx.ranges.push({ lo: null, hi: null, rowsA: sa.n, rowsB: sb.n });
        ctx.truncated = true;
      }
      return;
    }
    if (opts.within) {
      const { lo, hi } = opts.within;
      const [sa, sb] = await Promise.all([rangeSum(a, q, lo, hi), rangeSum(b, q, lo, hi)]);
      rowsA = sa.n;
      rowsB = sb.n;
      chunks = 1;
      if (sa.n !== sb.n || sa.h !== sb.h) await refine(ctx, lo, hi, sa, sb);
      return;
    }
    let lo: KeyValues | null = null;
    let next = boundary(a, q, lo, chunkRows);
    for (;;) {
      // A's last chunk is open-ended on B: rows B has beyond A's last key belong to it.
      const hi = await next;
      const pa = rangeSum(a, q, lo, hi);
      const pb = rangeSum(b, q, lo, hi);
      if (hi) {
        // Queued on A behind its sum, while B still sums: the walk never waits for B.
        next = boundary(a, q, hi, chunkRows);
        next.catch(() => {}); // awaited next turn; not an unhandled rejection meanwhile
      }
      const [ca, cb] = await Promise.all([pa, pb]);
      chunks++;
      rowsA += ca.n;
      rowsB += cb.n;
      if (ca.n !== cb.n || ca.h !== cb.h) await refine(ctx, lo, hi, ca, cb);
      if (!hi) break;
      lo = hi;
    }
  });
  return {
    table,
    keyColumns: shape.key,
    columns: shape.columns,
    equal: ctx.ranges.length === 0,
    rowsA,
    rowsB,
    chunks,
    ranges: mergeRanges(ctx.ranges),
    rows: ctx.rows,
    truncated: ctx.truncated,
    hashMode: q.hashMode,
    bytesA,
    durationMs: Math.round(performance.now() - t0),
  };
}
