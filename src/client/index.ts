/**
 * `regionctl/client`: read routing and read-your-writes for node-postgres applications.
 *
 *   const db = new RegionctlClient({
 *     routing: '/var/run/regionctl/routing.json',   // or an https:// URL, or a function
 *     region: 'eu-west-1',                          // or near: { lat, lon }
 *     connection: { user: 'app', password: process.env.PGPASSWORD },
 *   });
 *   const { value, token } = await db.write((c) => c.query('INSERT ...'));
 *   const r = await db.read('SELECT ...', { params: [id], token });   // sees the insert
 *   const p = await db.read('SELECT ...', { class: 'catalog' });     // eventual, within 30 s
 *   await db.end();
 *
 * Writes go to the primary named by the routing document. Reads go to the region the
 * document routes this application's location to (nearest replica within the read
 * class's staleness budget, else the primary). A read with a token waits, bounded, until
 * that replica has applied the token's position — then reads there — else reads from
 * the primary. A token from another epoch (minted before a failover) reads from the primary.
 */
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { RegionctlError } from '../errors.js';
import { compareLsn } from '../model/lsn.js';
import type { LatLon } from '../routing/geo.js';
import {
  chooseRoute,
  DEFAULT_CLASS,
  parseRoutingDocument,
  type RouteChoice,
  type RoutingDocument,
  type RoutingRegion,
  regionLocation,
} from '../routing/table.js';
import { formatToken, laterToken, parseToken, type SessionToken } from './token.js';

export type { RouteChoice, RoutingDocument, RoutingRegion } from '../routing/table.js';
export { chooseRoute, DEFAULT_CLASS, parseRoutingDocument } from '../routing/table.js';
export { formatToken, laterToken, parseToken, type SessionToken } from './token.js';

export interface RegionctlClientOptions {
  /** The routing document `regionctl reconcile --watch` publishes: a file path, an http(s) URL, or a loader. */
  routing: string | URL | (() => Promise<RoutingDocument>);
  /** Where this application runs: a region of the topology ... */
  region?: string;
  /** ... or a point. */
  near?: LatLon;
  /** How the application logs in; the same role and database in every region. */
  connection: {
    user: string;
    password?: string | (() => string | Promise<string>);
    /** Default: the document's database. */
    database?: string;
    ssl?: pg.PoolConfig['ssl'];
  };
  /** Per region host/port (e.g. a pooler); default: the endpoints in the document. */
  endpoints?: Record<string, { host: string; port: number }>;
  /** Extra node-postgres pool settings (max, idleTimeoutMillis, statement_timeout, ...). */
  pool?: Omit<pg.PoolConfig, 'host' | 'port' | 'user' | 'password' | 'database' | 'ssl'>;
  /** How long a read with a token waits for the replica before reading from the primary (default 1000 ms). */
  maxWaitMs?: number;
  /** Pause between checks of the replica's position while waiting (default 2 ms). */
  pollMs?: number;
  /** Re-read the routing document at most this often (default 1000 ms). */
  refreshMs?: number;
  /** Called after every read: where it went and why. */
  onRead?: (e: ReadEvent) => void;
}

export type ReadReason =
  /** The routed replica served it (after waiting for the token, if any). */
  | 'replica'
  /** The route for this location and class is the primary. */
  | 'route-primary'
  /** The token was minted under another epoch (before a failover). */
  | 'token-epoch'
  /** The replica did not apply the token's position within maxWaitMs. */
  | 'token-timeout'
  /** The replica could not be reached or could not say its position. */
  | 'replica-error';

export interface ReadEvent {
  region: string;
  kind: 'replica' | 'primary';
  reason: ReadReason;
  class: string;
  /** Time spent waiting for the replica to apply the token's position. */
  waitedMs: number;
}

export interface ReadOptions {
  /** Read class (readRouting.classes): its staleness budget picks the replicas. */
  class?: string;
  /** A token from an earlier write: the read sees that write (and everything before it). */
  token?: string | SessionToken | null;
}

export interface WriteResult<T> {
  value: T;
  /** Pass to later reads (`{ token }`) to read this write back. */
  token: string;
}

export interface ClientStats {
  replicaReads: number;
  primaryReads: number;
  byReason: Record<ReadReason, number>;
  writes: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Errors after which the server (not the statement) is the problem. */
function isServerError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  if (!code) return true; // socket errors, timeouts from node-postgres
  return code.startsWith('08') || code.startsWith('57P') || code === '53300' || code === '28000';
}

export class RegionctlClient {
  private doc: RoutingDocument | null = null;
  private docAt = 0;
  private loading: Promise<RoutingDocument> | null = null;
  private readonly pools = new Map<string, pg.Pool>();
  /** Per replica and subscription: a position known applied and visible (only grows). */
  private readonly applied = new Map<string, string>();
  private ended = false;
  readonly stats: ClientStats = {
    replicaReads: 0,
    primaryReads: 0,
    writes: 0,
    byReason: { replica: 0, 'route-primary': 0, 'token-epoch': 0, 'token-timeout': 0, 'replica-error': 0 },
  };

  constructor(private readonly o: RegionctlClientOptions) {
    if (!o.region && !o.near) {
      throw new RegionctlError(
        'E_CLIENT_CONFIG',
        'RegionctlClient needs to know where the application runs',
        'pass region: "<region>" or near: { lat, lon }',
      );
    }
  }

  /** The routing document in use (re-read at most every refreshMs). */
  async document(force = false): Promise<RoutingDocument> {
    if (this.ended)
      throw new RegionctlError('E_CLIENT_ENDED', 'RegionctlClient was ended', 'create a new one');
    const fresh = Date.now() - this.docAt < (this.o.refreshMs ?? 1000);
    if (this.doc && fresh && !force) return this.doc;
    if (!this.loading) {
      this.loading = this.load()
        .then((d) => {
          this.doc = d;
          this.docAt = Date.now();
          return d;
        })
        .catch((e: unknown) => {
          // A document that cannot be read right now: keep routing by the last one.
          if (this.doc) return this.doc;
          throw e;
        })
        .finally(() => {
          this.loading = null;
        });
    }
    return this.loading;
  }

  private async load(): Promise<RoutingDocument> {
    const src = this.o.routing;
    if (typeof src === 'function') return src();
    const s = String(src);
    if (/^https?:\/\//.test(s)) {
      const res = await fetch(s, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) {
        throw new RegionctlError('E_ROUTING_DOCUMENT', `routing document ${s}: HTTP ${res.status}`);
      }
      return parseRoutingDocument(await res.text(), s);
    }
    return parseRoutingDocument(await readFile(s, 'utf8'), s);
  }

  /** Where reads of `cls` go now. */
  async route(cls: string = DEFAULT_CLASS): Promise<RouteChoice> {
    const doc = await this.document();
    return chooseRoute(doc, this.location(doc), cls);
  }

  private location(doc: RoutingDocument): LatLon {
    return this.o.near ?? regionLocation(doc, this.o.region ?? '');
  }

  private pool(doc: RoutingDocument, region: string): pg.Pool {
    const r = doc.regions.find((x) => x.name === region);
    const ep = this.o.endpoints?.[region] ?? r?.endpoint;
    if (!ep) {
      throw new RegionctlError(
        'E_CLIENT_CONFIG',
        `no endpoint for region ${region}`,
        'the routing document or the endpoints option must name it',
      );
    }
    const database = this.o.connection.database ?? doc.database;
    const key = `${region} ${ep.host}:${ep.port}/${database}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new pg.Pool({
        max: 10,
        application_name: 'regionctl-client',
        connectionTimeoutMillis: 3000,
        ...this.o.pool,
        host: ep.host,
        port: ep.port,
        database,
        user: this.o.connection.user,
        ...(this.o.connection.password !== undefined ? { password: this.o.connection.password } : {}),
        ...(this.o.connection.ssl !== undefined ? { ssl: this.o.connection.ssl } : {}),
      });
      // An idle client whose server dies emits 'error' on the pool; unhandled, it would crash the app.
      pool.on('error', () => {});
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Runs `fn` in a transaction on the primary and returns its value with a session token:
   * the primary's WAL position right after the commit (an upper bound of the commit's end,
   * exact when nothing else committed meanwhile) and the document's epoch.
   */
  async write<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<WriteResult<T>> {
    const doc = await this.document();
    let c: pg.PoolClient;
    try {
      c = await this.pool(doc, doc.primary).connect();
    } catch (e) {
      // The primary may have moved: the next call routes by a fresh document.
      this.docAt = 0;
      throw e;
    }
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      let value: T;
      try {
        value = await fn(c);
      } catch (e) {
        await c.query('ROLLBACK').catch(() => {});
        throw e;
      }
      // COMMIT and the position in one round trip: a simple-query string runs COMMIT to
      // completion (flushed, synchronous_commit) before the SELECT starts.
      const res = (await c.query(
        'COMMIT; SELECT pg_current_wal_lsn()::text AS lsn',
      )) as unknown as pg.QueryResult[];
      if (res[0]?.command !== 'COMMIT') {
        throw new RegionctlError(
          'E_WRITE_ROLLED_BACK',
          'the transaction was rolled back at COMMIT (a statement in it had failed)',
          'let errors inside write() propagate; a failed statement aborts the whole transaction',
        );
      }
      const lsn = (res[1]?.rows[0] as { lsn?: string } | undefined)?.lsn;
      if (!lsn) throw new RegionctlError('E_WRITE_TOKEN', 'the primary did not return its WAL position');
      this.stats.writes++;
      return { value, token: formatToken({ epoch: doc.epoch, lsn }) };
    } catch (e) {
      if (isServerError(e)) {
        broken = e as Error;
        this.docAt = 0;
      }
      // 25006 (read-only) or 42501 after a failover: this is no longer the primary.
      const code = (e as { code?: string }).code;
      if (code === '25006' || code === '42501') this.docAt = 0;
      throw e;
    } finally {
      c.release(broken);
    }
  }

  /** A statement on the primary (in its own transaction), with a token. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    params?: unknown[],
  ): Promise<WriteResult<pg.QueryResult<R>>> {
    return this.write((c) => c.query<R>(text, params));
  }

  read<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    opts?: ReadOptions & { params?: unknown[] },
  ): Promise<pg.QueryResult<R>>;
  read<T>(fn: (c: pg.PoolClient) => Promise<T>, opts?: ReadOptions): Promise<T>;
  async read(
    q: string | ((c: pg.PoolClient) => Promise<unknown>),
    opts: ReadOptions & { params?: unknown[] } = {},
  ): Promise<unknown> {
    const run =
      typeof q === 'string' ? (c: pg.PoolClient) => c.query({ text: q, values: opts.params ?? [] }) : q;
    const doc = await this.document();
    const cls = opts.class ?? DEFAULT_CLASS;
    const choice = chooseRoute(doc, this.location(doc), cls);
    const token = opts.token ? (typeof opts.token === 'string' ? parseToken(opts.token) : opts.token) : null;
    if (choice.kind === 'primary') return this.onPrimary(doc, run, cls, 'route-primary', 0);
    if (token && token.epoch !== doc.epoch) return this.onPrimary(doc, run, cls, 'token-epoch', 0);
    const replica = doc.regions.find((r) => r.name === choice.region);
    if (!replica) return this.onPrimary(doc, run, cls, 'replica-error', 0);

    let c: pg.PoolClient;
    try {
      c = await this.pool(doc, replica.name).connect();
    } catch {
      return this.onPrimary(doc, run, cls, 'replica-error', 0);
    }
    let outcome: 'applied' | ReadReason = 'applied';
    let waitedMs = 0;
    try {
      if (token) {
        const w = await this.waitApplied(c, doc, replica, token.lsn);
        waitedMs = w.waitedMs;
        outcome = w.result;
      }
      if (outcome === 'applied') {
        const value = await run(c);
        c.release();
        this.count(replica.name, 'replica', 'replica', cls, waitedMs);
        return value;
      }
      c.release();
    } catch (e) {
      const server = isServerError(e);
      c.release(server ? (e as Error) : undefined);
      if (!server) throw e;
      outcome = 'replica-error';
    }
    // A read is safe to repeat: whatever kept the replica from serving it, the primary can.
    return this.onPrimary(doc, run, cls, outcome, waitedMs);
  }

  /**
   * Waits until the replica has applied (and made visible) `lsn` of the current primary.
   * The position known to be applied only grows per replica and subscription, so most
   * tokens of a busy application are already behind it and cost no round trip.
   */
  private async waitApplied(
    c: pg.PoolClient,
    doc: RoutingDocument,
    replica: RoutingRegion,
    lsn: string,
  ): Promise<{ result: 'applied' | 'token-timeout' | 'replica-error'; waitedMs: number }> {
    if (!replica.subscription) return { result: 'replica-error', waitedMs: 0 };
    const key = `${doc.epoch} ${replica.name} ${replica.subscription}`;
    const known = this.applied.get(key);
    if (known && compareLsn(known, lsn) >= 0) return { result: 'applied', waitedMs: 0 };
    const t0 = performance.now();
    const deadline = t0 + (this.o.maxWaitMs ?? 1000);
    for (;;) {
      let applied: string | null;
      try {
        const r = await c.query<{ lsn: string | null }>('SELECT regionctl.applied_lsn($1)::text AS lsn', [
          replica.subscription,
        ]);
        applied = r.rows[0]?.lsn ?? null;
      } catch (e) {
        // 42883: regionctl has not installed regionctl.applied_lsn here (run `regionctl apply`).
        if (isServerError(e)) throw e;
        return { result: 'replica-error', waitedMs: performance.now() - t0 };
      }
      if (applied) {
        const prev = this.applied.get(key);
        if (!prev || compareLsn(applied, prev) > 0) this.applied.set(key, applied);
        if (compareLsn(applied, lsn) >= 0) return { result: 'applied', waitedMs: performance.now() - t0 };
      }
      if (performance.now() >= deadline) {
        return { result: 'token-timeout', waitedMs: performance.now() - t0 };
      }
      await sleep(this.o.pollMs ?? 2);
    }
  }

  private async onPrimary(
    doc: RoutingDocument,
    run: (c: pg.PoolClient) => Promise<unknown>,
    cls: string,
    reason: ReadReason,
    waitedMs: number,
  ): Promise<unknown> {
    let c: pg.PoolClient;
    try {
      c = await this.pool(doc, doc.primary).connect();
    } catch (e) {
      this.docAt = 0;
      throw e;
    }
    let broken: Error | undefined;
    try {
      const value = await run(c);
      this.count(doc.primary, 'primary', reason, cls, waitedMs);
      return value;
    } catch (e) {
      if (isServerError(e)) {
        broken = e as Error;
        this.docAt = 0;
      }
      throw e;
    } finally {
      c.release(broken);
    }
  }

  private count(
    region: string,
    kind: 'replica' | 'primary',
    reason: ReadReason,
    cls: string,
    waitedMs: number,
  ) {
    if (kind === 'replica') this.stats.replicaReads++;
    else this.stats.primaryReads++;
    this.stats.byReason[reason]++;
    this.o.onRead?.({ region, kind, reason, class: cls, waitedMs });
  }

  /** Closes every pool. */
  async end(): Promise<void> {
    this.ended = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => {})));
  }
}

/** Keeps the latest token of a session (e.g. per HTTP session), for apps that write more than once. */
export function mergeToken(current: string | null | undefined, next: string): string {
  return laterToken(current, next) ?? next;
}
