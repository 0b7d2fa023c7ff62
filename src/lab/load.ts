/**
 * Load generator: realistic application writes against whichever region is primary
 * NOW (re-resolved from the DNS zone file before every transaction batch), as the
 * application role, with a ledger of every acknowledged commit kept outside the
 * regions. It keeps going through outages and failovers: a failed transaction is
 * counted, the connection is re-established (possibly to a new primary), and the rate
 * continues.
 *
 * Commit LSNs: a session cannot ask for its own commit record's LSN. Inside the
 * transaction, right before COMMIT, we read the WAL insert position (a lower bound of
 * the commit record's start); right after COMMIT returns we read the flush position (an
 * upper bound of its end: with synchronous_commit on, COMMIT returns only after its
 * record is flushed). Between the two bounds pg_walinspect finds the exact COMMIT record
 * of our xid, read through a superuser connection to the same region (WAL is
 * cluster-wide, so the extension lives in its `postgres` database, not in the
 * application's). If that is impossible — the region died right after acknowledging —
 * the entry keeps the upper bound with commitLsnExact: false.
 */

import { randomBytes, randomInt } from 'node:crypto';
import type pg from 'pg';
import { compareLsn } from '../model/lsn.js';
import { sleep } from '../sleep.js';
import type { RegionsSpec } from '../spec/schema.js';
import { connect, regionTarget } from '../sql/connect.js';
import { appRolePasswordFile } from './demo-schema.js';
import { type LedgerEntry, LedgerWriter, ledgerPath } from './ledger.js';
import { resolveStateDir } from './servers.js';
import { type PrimaryAddress, resolvePrimary } from './zone.js';

export interface LoadOptions {
  spec: RegionsSpec;
  specDir: string;
  /** Lab state directory (secrets, ledger); relative to specDir; default `.regionctl/lab`. */
  stateDir?: string;
  /** Transactions per second (approximate target). */
  rate: number;
  durationSec: number;
  /** Application role to connect as (default: the first of spec.applicationRoles). */
  role?: string;
  /** Ledger file (default `<state>/ledger/<database>.jsonl`). */
  ledgerFile?: string;
  /** Called about once a second. */
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

export interface LoadProgress {
  elapsedSec: number;
  attempted: number;
  committed: number;
  failed: number;
  primary: string | undefined;
  lastError: string | undefined;
}

export interface LoadStats {
  attempted: number;
  committed: number;
  failed: number;
  /** Rows ledgered (a transaction writes one or more rows). */
  rows: number;
  durationMs: number;
  /** Committed transactions per second. */
  achievedRate: number;
  /** Committed transactions per region. */
  byRegion: Record<string, number>;
  /** Ledger entries whose commit LSN is only an upper bound. */
  inexactLsns: number;
  ledgerFile: string;
  lastError: string | undefined;
}

type Row = { table: string; op: LedgerEntry['op']; pk: string };

interface Pending {
  region: string;
  rows: Row[];
  txid: string;
  lo: string;
  hi: string | null;
  committedAt: string;
}

const FLUSH_MS = 200;
const PER_WORKER_RATE = 150;

export async function runLoad(opts: LoadOptions): Promise<LoadStats> {
  const { spec, specDir } = opts;
  const stateDir = resolveStateDir(specDir, opts.stateDir);
  const role = opts.role ?? spec.applicationRoles[0];
  if (!role) throw new Error('spec has no application role to connect as');
  const ledgerFile = opts.ledgerFile ?? ledgerPath(stateDir, spec.database);
  const ledger = new LedgerWriter(ledgerFile);
  const resolver = new LsnResolver(spec, specDir);
  const stats = { attempted: 0, committed: 0, failed: 0, rows: 0, inexact: 0 };
  const byRegion: Record<string, number> = {};
  const known = { customers: [] as string[], products: [] as string[] };
  let lastError: string | undefined;
  let primary: string | undefined;
  let pending: Pending[] = [];

  const started = performance.now();
  const deadline = started + opts.durationSec * 1000;
  const stopped = () => opts.signal?.aborted === true || performance.now() >= deadline;

  // Resolving exact LSNs and fsyncing happen off the transaction path, in batches.
  const flush = async () => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const exact = await resolver.resolve(batch);
    const entries: LedgerEntry[] = [];
    for (const p of batch) {
      const lsn = exact.get(`${p.region}/${p.txid}`);
      if (!lsn) stats.inexact += p.rows.length;
      for (const r of p.rows) {
        entries.push({
          id: `${r.table}:${r.pk}`,
          table: r.table,
          op: r.op,
          region: p.region,
          commitLsn: lsn ?? p.hi,
          commitLsnExact: lsn !== undefined,
          committedAt: p.committedAt,
          txid: p.txid,
        });
      }
    }
    ledger.add(entries);
    ledger.flush();
    stats.rows += entries.length;
  };
  let flushing = Promise.resolve();
  const flushTimer = setInterval(() => {
    flushing = flushing.then(flush).catch((e: unknown) => {
      lastError = `ledger: ${(e as Error).message}`;
    });
  }, FLUSH_MS);
  const progressTimer = setInterval(() => {
    opts.onProgress?.({
      elapsedSec: Math.round((performance.now() - started) / 100) / 10,
      attempted: stats.attempted,
      committed: stats.committed,
      failed: stats.failed,
      primary,
      lastError,
    });
  }, 1000);

  const workers = Math.max(1, Math.min(8, Math.ceil(opts.rate / PER_WORKER_RATE)));
  const interval = (1000 * workers) / opts.rate;

  const worker = async (w: number) => {
    let conn: { client: pg.Client; at: PrimaryAddress } | undefined;
    let next = started + (w * interval) / workers;
    while (!stopped()) {
      const wait = next - performance.now();
      if (wait > 0) await sleep(Math.min(wait, deadline - performance.now()), opts.signal);
      if (stopped()) break;
      next += interval;
      // Far behind (an outage): do not burst to catch up, just resume the rate.
      if (next < performance.now() - 1000) next = performance.now();
      stats.attempted++;
      try {
        const at = resolvePrimary(spec, specDir);
        if (conn && (conn.at.region !== at.region || conn.at.port !== at.port || conn.at.host !== at.host)) {
          await conn.client.end().catch(() => {});
          conn = undefined;
        }
        if (!conn) {
          conn = { client: await connectApp(spec, specDir, stateDir, role, at), at };
          if (known.products.length < 10) {
            await seedProducts(conn.client, known, (p) => {
              // The seed is an acknowledged commit like any other: ledgered and counted.
              pending.push({ ...p, region: at.region });
              stats.attempted++;
              stats.committed++;
              byRegion[at.region] = (byRegion[at.region] ?? 0) + 1;
            });
          }
        }
        primary = at.region;
        const done = await transaction(conn.client, pickKind(at.region, spec), known);
        pending.push({ ...done, region: at.region });
        stats.committed++;
        byRegion[at.region] = (byRegion[at.region] ?? 0) + 1;
      } catch (e) {
        stats.failed++;
        lastError = (e as Error).message;
        if (conn && isConnectionError(e, conn.client)) {
          await conn.client.end().catch(() => {});
          conn = undefined;
        }
      }
    }
    await conn?.client.end().catch(() => {});
  };

  try {
    await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  } finally {
    clearInterval(flushTimer);
    clearInterval(progressTimer);
    await flushing;
    await flush().catch((e: unknown) => {
      lastError = `ledger: ${(e as Error).message}`;
    });
    ledger.close();
    await resolver.close();
  }
  const durationMs = Math.round(performance.now() - started);
  return {
    attempted: stats.attempted,
    committed: stats.committed,
    failed: stats.failed,
    rows: stats.rows,
    durationMs,
    achievedRate: Math.round((stats.committed / Math.max(durationMs, 1)) * 1000 * 10) / 10,
    byRegion,
    inexactLsns: stats.inexact,
    ledgerFile,
    lastError,
  };
}

async function connectApp(
  spec: RegionsSpec,
  specDir: string,
  stateDir: string,
  role: string,
  at: PrimaryAddress,
): Promise<pg.Client> {
  const t = regionTarget(spec, at.region, specDir);
  return connect(
    {
      ...t,
      endpoint: {
        ...t.endpoint,
        host: at.host,
        port: at.port,
        user: role,
        password: { file: appRolePasswordFile(stateDir, role) },
      },
    },
    { applicationName: 'regionctl-load', connectTimeoutMs: 1000, statementTimeoutMs: 5000 },
  );
}

function isConnectionError(e: unknown, client: pg.Client): boolean {
  const code = (e as { code?: string }).code;
  // Class 08 (connection), 57P01-03 (admin shutdown / crash / cannot connect now), 25006
  // (read-only: we are talking to a region that is no longer the primary), 42501 (fenced).
  if (code && (code.startsWith('08') || code.startsWith('57P') || code === '25006' || code === '42501'))
    return true;
  // A socket that died mid-query surfaces as a plain Error from node-postgres.
  return !code || (client as unknown as { _ending?: boolean })._ending === true;
}

type Kind = 'customer' | 'order' | 'session' | 'audit' | 'price' | 'payment';

/** A mix shaped like a shop: mostly orders, a steady trickle of sign-ups, a noisy audit stream. */
function pickKind(region: string, spec: RegionsSpec): Kind {
  const n = randomInt(100);
  if (n < 15) return 'customer';
  if (n < 55) return 'order';
  if (n < 70) return 'session';
  if (n < 85) return 'audit';
  if (n < 95) return 'price';
  // Pinned data is only written where it is pinned (a failover makes it unavailable).
  const pinned = spec.replication.pinned?.find((p) => p.table === 'public.payment_tokens');
  return !pinned || pinned.region === region ? 'payment' : 'order';
}

async function transaction(
  c: pg.Client,
  kind: Kind,
  known: { customers: string[]; products: string[] },
): Promise<Omit<Pending, 'region'>> {
  const rows: Row[] = [];
  const ids = (r: pg.QueryResult<{ id: string }>) => r.rows.map((x) => String(x.id));
  await c.query('BEGIN');
  try {
    const customer = async () => {
      const eu = randomInt(4) === 0;
      const name = `cust-${randomBytes(4).toString('hex')}`;
      const r = await c.query<{ id: string }>(
        'INSERT INTO public.customers (name, email, residency) VALUES ($1, $2, $3) RETURNING id',
        [name, `${name}@example.${eu ? 'eu' : 'com'}`, eu ? 'eu' : 'us'],
      );
      const id = ids(r)[0]!;
      rows.push({ table: 'public.customers', op: 'insert', pk: id });
      return id;
    };
    const anyCustomer = async () => pick(known.customers) ?? (await customer());
    switch (kind) {
      case 'customer': {
        const id = await customer();
        const a = await c.query<{ id: string }>(
          "INSERT INTO public.audit_events (actor, action, detail) VALUES ($1, 'signup', $2) RETURNING id",
          [`customer:${id}`, JSON.stringify({ source: 'web' })],
        );
        rows.push(...ids(a).map((pk) => ({ table: 'public.audit_events', op: 'insert' as const, pk })));
        break;
      }
      case 'order': {
        const cust = await anyCustomer();
        const items = Array.from({ length: 1 + randomInt(3) }, () => ({
          product: pick(known.products) ?? '1',
          qty: 1 + randomInt(4),
        }));
        const o = await c.query<{ id: string }>(
          'INSERT INTO public.orders (customer_id, total_cents, status) VALUES ($1, $2, $3) RETURNING id',
          [cust, items.reduce((s, i) => s + i.qty * 999, 0), 'placed'],
        );
        const orderId = ids(o)[0]!;
        rows.push({ table: 'public.orders', op: 'insert', pk: orderId });
        const it = await c.query<{ id: string }>(
          `INSERT INTO public.order_items (order_id, product_id, qty)
           SELECT $1, p, q FROM unnest($2::bigint[], $3::int[]) AS x(p, q) RETURNING id`,
          [orderId, items.map((i) => i.product), items.map((i) => i.qty)],
        );
        rows.push(...ids(it).map((pk) => ({ table: 'public.order_items', op: 'insert' as const, pk })));
        break;
      }
      case 'session': {
        const r = await c.query<{ id: string }>(
          "INSERT INTO public.sessions (customer_id, token, expires_at) VALUES ($1, $2, now() + interval '1 hour') RETURNING id",
          [await anyCustomer(), randomBytes(16).toString('hex')],
        );
        rows.push(...ids(r).map((pk) => ({ table: 'public.sessions', op: 'insert' as const, pk })));
        break;
      }
      case 'audit': {
        const n = 1 + randomInt(5);
        const r = await c.query<{ id: string }>(
          `INSERT INTO public.audit_events (actor, action, detail)
           SELECT 'svc:checkout', 'page_view', jsonb_build_object('i', g) FROM generate_series(1, $1) g RETURNING id`,
          [n],
        );
        rows.push(...ids(r).map((pk) => ({ table: 'public.audit_events', op: 'insert' as const, pk })));
        break;
      }
      case 'price': {
        const r = await c.query<{ id: string }>(
          'UPDATE public.products SET price_cents = 100 + $2::int WHERE id = $1 RETURNING id',
          [pick(known.products) ?? '1', randomInt(10_000)],
        );
        rows.push(...ids(r).map((pk) => ({ table: 'public.products', op: 'update' as const, pk })));
        break;
      }
      case 'payment': {
        const r = await c.query<{ id: string }>(
          'INSERT INTO public.payment_tokens (customer_id, token) VALUES ($1, $2) RETURNING id',
          [await anyCustomer(), `tok_${randomBytes(12).toString('hex')}`],
        );
        rows.push(...ids(r).map((pk) => ({ table: 'public.payment_tokens', op: 'insert' as const, pk })));
        break;
      }
    }
    const x = await c.query<{ txid: string; lo: string }>(
      'SELECT pg_current_xact_id()::text AS txid, pg_current_wal_insert_lsn()::text AS lo',
    );
    const { txid, lo } = x.rows[0]!;
    await c.query('COMMIT');
    // From here the commit is acknowledged: whatever fails below, it gets ledgered.
    let hi: string | null = null;
    let committedAt = new Date().toISOString();
    try {
      const after = await c.query<{ hi: string; at: Date | null }>(
        'SELECT pg_current_wal_flush_lsn()::text AS hi, pg_xact_commit_timestamp(xid($1::xid8)) AS at',
        [txid],
      );
      hi = after.rows[0]?.hi ?? null;
      const at = after.rows[0]?.at;
      if (at) committedAt = at.toISOString();
    } catch {
      // The region died right after acknowledging; the bounds stay unknown.
    }
    for (const r of rows) {
      if (r.table === 'public.customers' && r.op === 'insert') remember(known.customers, r.pk);
    }
    return { rows, txid, lo, hi, committedAt };
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

async function seedProducts(
  c: pg.Client,
  known: { customers: string[]; products: string[] },
  record: (p: Omit<Pending, 'region'>) => void,
): Promise<void> {
  const have = await c.query<{ id: string }>('SELECT id FROM public.products ORDER BY id LIMIT 200');
  const cust = await c.query<{ id: string }>('SELECT id FROM public.customers ORDER BY id DESC LIMIT 500');
  known.products.splice(0, known.products.length, ...have.rows.map((r) => String(r.id)));
  for (const r of cust.rows) remember(known.customers, String(r.id));
  if (known.products.length >= 10) return;
  await c.query('BEGIN');
  try {
    const r = await c.query<{ id: string }>(
      `INSERT INTO public.products (sku, name, price_cents)
       SELECT 'sku-' || md5(random()::text), 'Product ' || g, 100 + g * 250 FROM generate_series(1, 20) g
       RETURNING id`,
    );
    const x = await c.query<{ txid: string; lo: string }>(
      'SELECT pg_current_xact_id()::text AS txid, pg_current_wal_insert_lsn()::text AS lo',
    );
    await c.query('COMMIT');
    const after = await c
      .query<{ hi: string }>('SELECT pg_current_wal_flush_lsn()::text AS hi')
      .catch(() => undefined);
    const ids = r.rows.map((row) => String(row.id));
    known.products.push(...ids);
    record({
      rows: ids.map((pk) => ({ table: 'public.products', op: 'insert', pk })),
      txid: x.rows[0]!.txid,
      lo: x.rows[0]!.lo,
      hi: after?.rows[0]?.hi ?? null,
      committedAt: new Date().toISOString(),
    });
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

function remember(list: string[], id: string): void {
  list.push(id);
  if (list.length > 2000) list.splice(0, list.length - 1000);
}

function pick<T>(list: T[]): T | undefined {
  return list.length ? list[randomInt(list.length)] : undefined;
}

/** Exact commit LSNs via pg_walinspect, one superuser connection per region, best effort. */
class LsnResolver {
  private readonly conns = new Map<string, pg.Client | null>();

  constructor(
    private readonly spec: RegionsSpec,
    private readonly specDir: string,
  ) {}

  async resolve(batch: Pending[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const byRegion = new Map<string, Pending[]>();
    for (const p of batch) {
      if (p.hi) byRegion.set(p.region, [...(byRegion.get(p.region) ?? []), p]);
    }
    for (const [region, items] of byRegion) {
      try {
        const c = await this.client(region);
        if (!c) continue;
        const lo = items.map((p) => p.lo).reduce((a, b) => (compareLsn(a, b) <= 0 ? a : b));
        const hi = items.map((p) => p.hi!).reduce((a, b) => (compareLsn(a, b) >= 0 ? a : b));
        const want = new Set(items.map((p) => xid32(p.txid)));
        const r = await c.query<{ xid: string; end_lsn: string }>(
          `SELECT xid::text, end_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
            WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'`,
          [lo, hi],
        );
        const found = new Map(r.rows.filter((x) => want.has(x.xid)).map((x) => [x.xid, x.end_lsn]));
        for (const p of items) {
          const lsn = found.get(xid32(p.txid));
          if (lsn) out.set(`${region}/${p.txid}`, lsn);
        }
      } catch {
        await this.drop(region);
      }
    }
    return out;
  }

  private async client(region: string): Promise<pg.Client | null> {
    if (this.conns.has(region)) return this.conns.get(region) ?? null;
    try {
      const t = regionTarget(this.spec, region, this.specDir);
      const c = await connect(
        { ...t, database: 'postgres' },
        { applicationName: 'regionctl-load-lsn', connectTimeoutMs: 1000, statementTimeoutMs: 3000 },
      );
      // `lab up` creates it; this covers labs made before that (a concurrent create may race: harmless).
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect').catch(() => {});
      this.conns.set(region, c);
      return c;
    } catch {
      // Retried at the next flush (the region may be restarting).
      return null;
    }
  }

  private async drop(region: string): Promise<void> {
    const c = this.conns.get(region);
    this.conns.delete(region);
    await c?.end().catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.all([...this.conns.values()].map((c) => c?.end().catch(() => {})));
    this.conns.clear();
  }
}

/** pg_walinspect reports the 32-bit xid; xid8 carries the epoch in its high half. */
function xid32(xid8: string): string {
  return (BigInt(xid8) & 0xffffffffn).toString();
}
