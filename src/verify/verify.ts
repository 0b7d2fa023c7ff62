/**
 * `regionctl verify`: is every secondary's content what its channel says it must be?
 *
 * For each channel of the topology as it stands now (the control store's primary, after
 * failovers), every published table is compared between the primary, read through the
 * channel's row filter and column list, and the secondary, read through the same filter.
 * Rows the secondary holds that the filter excludes, and rows of tables it must not have
 * at all (withheld from its channel, pinned to another region), are violations —
 * reported apart from differences, since no amount of catching up removes them.
 *
 * Under live writes a secondary is always a little behind: a range that differs is
 * re-checked after the secondary has caught up with the primary's WAL position, and only
 * what still differs is reported.
 */
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { type DesiredChannel, desiredState, type PublishedTable } from '../model/desired.js';
import { compareLsn } from '../model/lsn.js';
import { HEARTBEAT_TABLE } from '../model/names.js';
import { currentSpec } from '../reconcile/reconcile.js';
import type { RegionsSpec } from '../spec/schema.js';
import { connect, controlTarget, regionTarget } from '../sql/connect.js';
import { ident, tableRef } from '../sql/quote.js';
import { openStore, type Store } from '../store/store.js';
import { type DifferingRange, type DifferingRow, diffTable, type TableDiff, tableKey } from './diff.js';

export interface VerifyOptions {
  /** Control store for the current topology; undefined opens the spec's, null uses regions.yaml as written. */
  store?: Store | null;
  /** Only these tables (schema.table; a bare name means public.name). */
  tables?: string[];
  chunkRows?: number;
  maxRows?: number;
  /** Re-checks of differing ranges after the secondary caught up (default 2; 0 disables). */
  settleAttempts?: number;
  /** How long to wait for a secondary to catch up before a re-check (default 5000 ms). */
  settleTimeoutMs?: number;
  /** Keys listed per violation (default 100). */
  violationKeys?: number;
  log?: (line: string) => void;
}

export interface TableVerify {
  table: string;
  rowFilter?: string;
  columns?: string[];
  equal: boolean;
  /** Set when the table could not be compared (missing on a side...). */
  error?: string;
  rowsPrimary: number;
  rowsSecondary: number;
  keyColumns: string[];
  ranges: DifferingRange[];
  rows: DifferingRow[];
  truncated: boolean;
  bytes: number;
  durationMs: number;
}

export type ViolationKind = 'row-filter' | 'withheld-table' | 'pinned-table';

export interface Violation {
  table: string;
  kind: ViolationKind;
  /** What the secondary must not hold: the filter, or why the table must be empty there. */
  rule: string;
  count: number;
  /** First keys of the offending rows. */
  keys: Record<string, string>[];
}

export interface ChannelVerify {
  from: string;
  to: string;
  reachable: boolean;
  error?: string;
  tables: TableVerify[];
  violations: Violation[];
}

export interface VerifyResult {
  primary: string;
  epoch: number;
  /** True when every table of every channel is equal and nothing violates a filter. */
  ok: boolean;
  differences: number;
  violations: number;
  channels: ChannelVerify[];
  bytes: number;
  durationMs: number;
}

function normalizeTable(t: string): string {
  return t.includes('.') ? t : `public.${t}`;
}

/** Tables to compare on one channel: published ones, without regionctl's heartbeat. */
function channelTables(ch: DesiredChannel, only: Set<string> | null): PublishedTable[] {
  return ch.publication.tables.filter((t) => t.table !== HEARTBEAT_TABLE && (!only || only.has(t.table)));
}

async function appliedLsn(c: pg.ClientBase, sub: string): Promise<string | null> {
  // latest_end_lsn moves with keepalives too, so an idle primary still counts as caught up.
  const r = await c.query(
    `SELECT greatest(
        (SELECT max(st.latest_end_lsn) FROM pg_stat_subscription st JOIN pg_subscription s ON s.oid = st.subid
          WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
        (SELECT os.remote_lsn FROM pg_subscription s
           JOIN pg_replication_origin_status os ON os.external_id = 'pg_' || s.oid
          WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))
      )::text AS lsn`,
    [sub],
  );
  return r.rows[0]?.lsn ?? null;
}

/** Waits until the secondary's subscription reports `target` applied; false on timeout or no subscription. */
async function caughtUp(
  sec: pg.ClientBase,
  sub: string,
  target: string,
  timeoutMs: number,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const lsn = await appliedLsn(sec, sub);
    if (lsn === null) return false;
    if (compareLsn(lsn, target) >= 0) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function compareTable(
  prim: pg.ClientBase,
  sec: pg.ClientBase,
  ch: DesiredChannel,
  t: PublishedTable,
  opts: VerifyOptions,
): Promise<TableVerify> {
  const base = {
    table: t.table,
    ...(t.rowFilter ? { rowFilter: t.rowFilter } : {}),
    ...(t.columns ? { columns: t.columns } : {}),
  };
  const diffOpts = {
    ...(t.rowFilter ? { rowFilter: t.rowFilter } : {}),
    ...(t.columns ? { columns: t.columns } : {}),
    ...(opts.chunkRows ? { chunkRows: opts.chunkRows } : {}),
    ...(opts.maxRows ? { maxRows: opts.maxRows } : {}),
  };
  let d: TableDiff;
  try {
    d = await diffTable(prim, sec, t.table, diffOpts);
  } catch (e) {
    if (!(e instanceof RegionctlError)) throw e;
    return {
      ...base,
      equal: false,
      error: e.message,
      rowsPrimary: 0,
      rowsSecondary: 0,
      keyColumns: [],
      ranges: [],
      rows: [],
      truncated: false,
      bytes: 0,
      durationMs: 0,
    };
  }
  const first = d;
  for (
    let attempt = 0;
    attempt < (opts.settleAttempts ?? 2) && !d.equal && d.keyColumns.length > 0;
    attempt++
  ) {
    const target = (await prim.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string;
    const waited = await caughtUp(sec, ch.subscription.name, target, opts.settleTimeoutMs ?? 5000);
    opts.log?.(
      `${ch.to} ${t.table}: ${d.ranges.length} differing range(s); re-checking${waited ? ' after catch-up' : ''}`,
    );
    const ranges: DifferingRange[] = [];
    const rows: DifferingRow[] = [];
    let truncated = false;
    for (const r of d.ranges) {
      const again = await diffTable(prim, sec, t.table, { ...diffOpts, within: { lo: r.lo, hi: r.hi } });
      ranges.push(...again.ranges);
      rows.push(...again.rows);
      truncated ||= again.truncated;
    }
    d = { ...d, ranges, rows, truncated, equal: ranges.length === 0 };
    if (!waited) break; // no subscription to wait for: a second look would see the same
  }
  return {
    ...base,
    equal: d.equal,
    rowsPrimary: first.rowsA,
    rowsSecondary: first.rowsB,
    keyColumns: d.keyColumns,
    ranges: d.ranges,
    rows: d.rows,
    truncated: d.truncated,
    bytes: first.bytesA,
    durationMs: first.durationMs,
  };
}

async function tableExists(c: pg.ClientBase, table: string): Promise<boolean> {
  return (await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [tableRef(table)])).rows[0].ok === true;
}

async function offending(
  c: pg.ClientBase,
  table: string,
  where: string,
  limit: number,
): Promise<{ count: number; keys: Record<string, string>[] }> {
  const key = (await tableKey(c, table)).columns;
  const keyText =
    key.length > 0 ? `ARRAY[${key.map((k) => `t.${ident(k)}::text`).join(', ')}]` : 'NULL::text[]';
  const r = await c.query(
    `SELECT count(*) OVER ()::int AS n, ${keyText} AS k FROM ${tableRef(table)} t WHERE ${where}
      ${key.length > 0 ? `ORDER BY ${key.map((k) => `t.${ident(k)}`).join(', ')}` : ''} LIMIT ${Math.trunc(limit)}`,
  );
  const keys = r.rows
    .filter((x) => x.k)
    .map((x) => Object.fromEntries(key.map((name, i) => [name, (x.k as string[])[i] ?? ''])));
  return { count: r.rows[0]?.n ?? 0, keys };
}

async function violationsOf(
  spec: RegionsSpec,
  sec: pg.ClientBase,
  ch: DesiredChannel,
  tables: PublishedTable[],
  only: Set<string> | null,
  limit: number,
): Promise<Violation[]> {
  const out: Violation[] = [];
  for (const t of tables) {
    if (!t.rowFilter || !(await tableExists(sec, t.table))) continue;
    // The same predicate the publication evaluates: a row it does not admit must not be there.
    const o = await offending(sec, t.table, `NOT coalesce((${t.rowFilter}), false)`, limit);
    if (o.count > 0) out.push({ table: t.table, kind: 'row-filter', rule: t.rowFilter, ...o });
  }
  const published = new Set(ch.publication.tables.map((t) => t.table));
  for (const table of spec.replication.tables) {
    if (published.has(table) || (only && !only.has(table)) || !(await tableExists(sec, table))) continue;
    const o = await offending(sec, table, 'true', limit);
    if (o.count > 0) out.push({ table, kind: 'withheld-table', rule: `withheld from ${ch.to}`, ...o });
  }
  for (const p of spec.replication.pinned ?? []) {
    if (p.region === ch.to || (only && !only.has(p.table)) || !(await tableExists(sec, p.table))) continue;
    const o = await offending(sec, p.table, 'true', limit);
    if (o.count > 0) out.push({ table: p.table, kind: 'pinned-table', rule: `pinned to ${p.region}`, ...o });
  }
  return out;
}

/** Compares every published table of every channel of the current topology. */
export async function verifyTopology(
  spec: RegionsSpec,
  specDir: string,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const t0 = performance.now();
  let store = opts.store;
  let ownStore: Store | null = null;
  if (store === undefined) {
    try {
      ownStore = await openStore(controlTarget(spec, specDir));
    } catch (e) {
      opts.log?.(`warning: ${(e as Error).message}; comparing the topology regions.yaml describes`);
    }
    store = ownStore;
  }
  try {
    const current = await currentSpec(spec, store, { init: false });
    const desired = desiredState(current.spec);
    const known = new Set(current.spec.replication.tables);
    let only: Set<string> | null = null;
    if (opts.tables && opts.tables.length > 0) {
      only = new Set(opts.tables.map(normalizeTable));
      const unknown = [...only].filter((t) => !known.has(t));
      if (unknown.length > 0) {
        throw new RegionctlError(
          'E_USAGE_TABLES',
          `--tables names ${unknown.join(', ')}, not replicated by regions.yaml`,
          `replicated tables: ${[...known].sort().join(', ')}`,
        );
      }
    }
    let prim: pg.Client;
    try {
      prim = await connect(regionTarget(current.spec, desired.primary, specDir), {
        applicationName: 'regionctl-verify',
        statementTimeoutMs: 0,
      });
    } catch (e) {
      throw new RegionctlError(
        'E_VERIFY_PRIMARY_UNREACHABLE',
        `cannot reach the primary ${desired.primary}: ${(e as Error).message}`,
        'verify compares against the primary: bring it back or fail over first',
      );
    }
    const channels: ChannelVerify[] = [];
    try {
      for (const ch of desired.channels) {
        const tables = channelTables(ch, only);
        let sec: pg.Client;
        try {
          sec = await connect(regionTarget(current.spec, ch.to, specDir), {
            applicationName: 'regionctl-verify',
            statementTimeoutMs: 0,
          });
        } catch (e) {
          channels.push({
            from: ch.from,
            to: ch.to,
            reachable: false,
            error: (e as Error).message,
            tables: [],
            violations: [],
          });
          continue;
        }
        try {
          const results: TableVerify[] = [];
          for (const t of tables) {
            const r = await compareTable(prim, sec, ch, t, opts);
            opts.log?.(`${ch.to} ${t.table}: ${r.equal ? 'equal' : r.error ? 'error' : 'differs'}`);
            results.push(r);
          }
          const violations = await violationsOf(
            current.spec,
            sec,
            ch,
            tables,
            only,
            opts.violationKeys ?? 100,
          );
          channels.push({ from: ch.from, to: ch.to, reachable: true, tables: results, violations });
        } finally {
          await sec.end().catch(() => {});
        }
      }
    } finally {
      await prim.end().catch(() => {});
    }
    const differences = channels.reduce(
      (n, c) => n + (c.reachable ? c.tables.filter((t) => !t.equal).length : 1),
      0,
    );
    const violations = channels.reduce((n, c) => n + c.violations.length, 0);
    return {
      primary: desired.primary,
      epoch: current.epoch,
      ok: differences === 0 && violations === 0,
      differences,
      violations,
      channels,
      bytes: channels.reduce((n, c) => n + c.tables.reduce((m, t) => m + t.bytes, 0), 0),
      durationMs: Math.round(performance.now() - t0),
    };
  } finally {
    await ownStore?.close();
  }
}
