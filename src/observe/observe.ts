/**
 * Observes every region in parallel. A region that cannot be reached, or that times
 * out, is reported as unreachable with a reason; it never throws out of `observe`.
 * A region's catalog is read in one round trip (src/sql/catalog.ts OBSERVE_*_SQL,
 * pipelined), on a connection kept across passes when a cache is in scope
 * (./connections.ts: `reconcile --watch`), else on a new one.
 */
import pg from 'pg';
import type {
  Observed,
  ObservedPublication,
  ObservedSubscription,
  ReachableRegion,
  RegionObservation,
} from '../model/observed.js';
import type { RegionsSpec } from '../spec/schema.js';
import { HEARTBEAT_ROWS_SQL, OBSERVE_DATABASE_SQL, OBSERVE_SERVER_SQL } from '../sql/catalog.js';
import { type ConnectOptions, regionTarget, type Target } from '../sql/connect.js';
import { currentObserverConnections, ObserverConnection, type ObserverConnections } from './connections.js';

export interface ObserveOptions {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  /** Tables whose application-role privileges are checked (the guard). */
  applicationTables: string[];
  applicationRoles: string[];
  /**
   * Keep and reuse one connection per region (`reconcile --watch`). Default: the cache of
   * the enclosing `ObserverConnections.run`, if any, else a new connection per observation.
   */
  connections?: ObserverConnections;
}

/** Only the parts of a conninfo the planner compares; the password is never extracted. */
export function parseConninfo(info: string): {
  host: string | null;
  port: number | null;
  dbname: string | null;
} {
  const out: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))/g;
  for (let m = re.exec(info); m; m = re.exec(info)) {
    const key = m[1];
    if (key === 'host' || key === 'port' || key === 'dbname') {
      out[key] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
    }
  }
  return {
    host: out.host ?? null,
    port: out.port ? Number(out.port) : null,
    dbname: out.dbname ?? null,
  };
}

function describeError(e: unknown): string {
  if (e instanceof ObserveTimeout) return `timed out (${e.message})`;
  const err = e as { code?: string; message?: string };
  if (err.code === 'ECONNREFUSED') return 'connection refused';
  if (err.code === '28P01') return 'password authentication failed';
  if (err.code === '57P03') return 'the server is starting up or shutting down';
  if (/timeout/i.test(err.message ?? '')) return `timed out (${err.message})`;
  return err.message ?? String(e);
}

function iso(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return v instanceof Date ? v.toISOString() : String(v);
}

/** Rows of OBSERVE_DATABASE_SQL's JSON columns, as the individual queries returned them. */
type Row = pg.QueryResultRow;

/** timestamptz arrives as text inside JSON: parse it as node-postgres parses a timestamptz column. */
const parseTimestamptz = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ, 'text');

function publicationsFrom(pubs: Row[], tables: Row[]): ObservedPublication[] {
  return pubs.map((p) => ({
    name: p.pubname,
    comment: p.comment ?? null,
    tables: tables
      .filter((t) => t.pubname === p.pubname)
      .map((t) => ({
        table: t.qualified_name,
        rowFilter: t.rowfilter ?? null,
        columns: t.has_column_list ? [...(t.attnames as string[])].sort() : null,
      })),
  }));
}

function numericCounters(v: Record<string, unknown> | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v ?? {})) {
    if (k.startsWith('confl_') && x !== null && Number.isFinite(Number(x))) out[k] = Number(x);
  }
  return out;
}

function subscriptionsFrom(subs: Row[], workers: Row[], rels: Row[], stats: Row[]): ObservedSubscription[] {
  return subs.map((row) => {
    const apply = workers.find((w) => w.subname === row.subname && w.relation === null);
    const mine = workers.filter((w) => w.subname === row.subname);
    const st = stats.find((x) => x.subname === row.subname);
    const receipts = mine
      .map((w) => iso(w.last_msg_receipt_time === null ? null : parseTimestamptz(w.last_msg_receipt_time)))
      .filter((x): x is string => x !== null);
    return {
      name: row.subname,
      enabled: row.subenabled,
      publications: row.subpublications ?? [],
      slotName: row.subslotname ?? null,
      ...parseConninfo(row.conninfo_redacted ?? ''),
      comment: row.comment ?? null,
      workerPid: apply?.pid ?? null,
      appliedLsn: row.applied_lsn ?? null,
      latestEndLsn: apply?.latest_end_lsn ?? null,
      lastMsgReceiptTime: receipts.sort().at(-1) ?? null,
      applyErrorCount: Number(st?.apply_error_count ?? 0),
      syncErrorCount: Number(st?.sync_error_count ?? 0),
      conflicts: numericCounters(st?.counters ?? null),
      tablesNotReady: rels
        .filter((r) => r.subname === row.subname && r.state !== 'r')
        .map((r) => r.qualified_name),
    };
  });
}

/** A query got no answer in time: the connection's state is unknown, so it is destroyed. */
class ObserveTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`no answer to the ${what} within ${ms} ms`);
  }
}

type Settled = { ok: true; value: pg.QueryResult } | { ok: false; error: unknown };

/**
 * Issued at once (pipeline mode sends them back to back), awaited in order. Settling
 * right away means a query that fails while an earlier one is awaited is never an
 * unhandled rejection. Named: on a kept connection the server parses and plans the
 * statement once, not every pass (the catalog query's views take longer to parse and
 * plan than to run).
 */
function issue(c: pg.Client, name: string, text: string, values: unknown[] = []): Promise<Settled> {
  return c.query({ name, text, values }).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/**
 * The answer to one issued query within `ms` (0: no client-side limit), else the
 * connection is destroyed and ObserveTimeout thrown. The server answers pipelined
 * queries in order, so each limit starts when the previous answer arrived.
 */
async function answer(
  conn: ObserverConnection,
  q: Promise<Settled>,
  what: string,
  ms: number,
): Promise<Settled> {
  if (ms <= 0) return q;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  const r = await Promise.race([q, late]);
  clearTimeout(timer);
  if (r === 'late') {
    conn.destroy();
    throw new ObserveTimeout(what, ms);
  }
  return r;
}

function rows(s: Settled): Row[] {
  if (!s.ok) throw s.error;
  return s.value.rows;
}

const HEARTBEAT = 'regionctl_observe_heartbeat';

interface Limits {
  /** First answer on a connection: the same bound as establishing one. */
  firstMs: number;
  /** Each further answer: the server's statement timeout, plus the first answer's allowance for the way back. */
  nextMs: number;
}

/**
 * One region's catalog in one round trip: OBSERVE_SERVER_SQL, OBSERVE_DATABASE_SQL and —
 * when the heartbeat was installed at the last observation on this connection —
 * HEARTBEAT_ROWS_SQL, pipelined. A heartbeat installed since then costs one more round
 * trip, once.
 */
async function readRegion(
  conn: ObserverConnection,
  region: string,
  observedAt: string,
  databaseExists: boolean,
  opts: ObserveOptions,
  limits: Limits,
): Promise<ReachableRegion> {
  const c = conn.client;
  const serverQ = issue(c, 'regionctl_observe_server', OBSERVE_SERVER_SQL);
  const databaseQ = databaseExists
    ? issue(c, 'regionctl_observe_database', OBSERVE_DATABASE_SQL, [
        opts.applicationRoles,
        opts.applicationTables,
      ])
    : null;
  let heartbeatQ = databaseExists && conn.heartbeatInstalled ? issue(c, HEARTBEAT, HEARTBEAT_ROWS_SQL) : null;
  const server = rows(await answer(conn, serverQ, 'server query', limits.firstMs))[0] as Row;
  const base: ReachableRegion = {
    region,
    reachable: true,
    observedAt,
    serverVersionNum: server.version_num,
    settings: {
      walLevel: server.wal_level,
      maxReplicationSlots: server.max_replication_slots,
      maxWalSenders: server.max_wal_senders,
      maxLogicalReplicationWorkers: server.max_logical_replication_workers,
      maxWorkerProcesses: server.max_worker_processes,
      idleReplicationSlotTimeout: server.idle_replication_slot_timeout ?? null,
    },
    inRecovery: server.in_recovery,
    currentLsn: server.current_lsn,
    serverTime: iso(server.now) ?? observedAt,
    databaseExists,
    publications: [],
    subscriptions: [],
    slots: (server.slots as Row[]).map((r) => ({
      name: r.slot_name,
      database: r.database ?? null,
      plugin: r.plugin ?? null,
      slotType: r.slot_type,
      active: r.active,
      confirmedFlushLsn: r.confirmed_flush_lsn ?? null,
      restartLsn: r.restart_lsn ?? null,
      walStatus: r.wal_status ?? null,
      retainedBytes: r.retained_bytes === null ? null : Number(r.retained_bytes),
      invalidationReason: r.invalidation_reason ?? null,
    })),
    tables: [],
    heartbeatInstalled: false,
    heartbeats: [],
    guards: [],
    sequences: [],
  };
  if (!databaseQ) return base;
  const db = rows(await answer(conn, databaseQ, 'catalog query', limits.nextMs))[0] as Row;
  base.publications = publicationsFrom(db.publications, db.publication_tables);
  base.subscriptions = subscriptionsFrom(
    db.subscriptions,
    db.subscription_workers,
    db.subscription_rels,
    db.subscription_stats,
  );
  base.tables = (db.tables as Row[]).map((r) => ({
    table: r.qualified_name,
    replicaIdentity: r.replica_identity,
    hasPrimaryKey: r.has_primary_key,
    columnsSignature: r.columns_signature,
  }));
  base.sequences = (db.sequences as Row[]).map((r) => ({
    name: r.sequence,
    lastValue: r.last_value === null ? null : String(r.last_value),
    incrementBy: String(r.increment_by),
    ownedBy: r.owned_by ?? null,
  }));
  base.heartbeatInstalled = db.heartbeat_installed;
  if (base.heartbeatInstalled && !heartbeatQ) heartbeatQ = issue(c, HEARTBEAT, HEARTBEAT_ROWS_SQL);
  if (heartbeatQ) {
    const hb = await answer(conn, heartbeatQ, 'heartbeat query', limits.nextMs);
    // Not installed (any more): the speculative read failed or is stale; either way unused.
    if (base.heartbeatInstalled) {
      base.heartbeats = rows(hb).map((r) => ({
        region: r.region,
        epoch: Number(r.epoch),
        seq: Number(r.seq),
        writtenAt: iso(r.written_at) ?? '',
      }));
    }
  }
  conn.heartbeatInstalled = base.heartbeatInstalled;
  base.guards = (db.guards as Row[]).map((r) => ({
    role: r.role,
    exists: r.exists,
    writableTables: r.writable_tables ?? [],
    defaultReadOnly: r.default_read_only,
    canLogin: r.can_login,
    sessions: Number(r.sessions),
  }));
  return base;
}

/** Did the connection itself fail (worth one retry on a new one), rather than a statement on it? */
function connectionFailed(e: unknown, conn: ObserverConnection): boolean {
  if (e instanceof ObserveTimeout) return false; // the time is spent; the next pass reconnects
  if (conn.broken) return true;
  if (!(e instanceof pg.DatabaseError)) return true; // 'Connection terminated unexpectedly', ECONNRESET...
  // connection_exception, operator intervention (terminated, shut down, restarting)
  return /^(08|57P)/.test(e.code ?? '');
}

interface Session {
  conn: ObserverConnection;
  reused: boolean;
  databaseExists: boolean;
  release(keep: boolean): Promise<void>;
}

async function openSession(
  target: Target,
  region: string,
  copts: ConnectOptions,
  cache: ObserverConnections | undefined,
): Promise<Session> {
  try {
    if (cache) return { ...(await cache.checkout(region, target, copts)), databaseExists: true };
    const conn = await ObserverConnection.open(target, copts);
    return { conn, reused: false, databaseExists: true, release: () => conn.close() };
  } catch (e) {
    if ((e as { code?: string }).code !== '3D000') throw e;
  }
  // The server is up but the database is missing: observe the server anyway. Not cached:
  // the database may be created any time, and the next observation must see it.
  const conn = await ObserverConnection.open({ ...target, database: 'postgres' }, copts);
  return { conn, reused: false, databaseExists: false, release: () => conn.close() };
}

/**
 * One region. With a connection cache (`opts.connections`, or the enclosing
 * `ObserverConnections.run`), its connection is reused and kept; without, a new one is
 * opened and closed. A cached connection found broken is replaced by a new one within the
 * same observation. Unreachable, timed out or failing is a value, never a throw: a new
 * connection has `connectTimeoutMs`; the first answer on any connection too (a cached one
 * may have silently lost its peer); every further answer the statement timeout plus that.
 */
export async function observeRegion(
  target: Target,
  region: string,
  opts: ObserveOptions,
): Promise<RegionObservation> {
  const observedAt = new Date().toISOString();
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
  const statementTimeoutMs = opts.statementTimeoutMs ?? 5000;
  const copts: ConnectOptions = {
    connectTimeoutMs,
    statementTimeoutMs,
    applicationName: 'regionctl-observer',
  };
  const limits: Limits = {
    firstMs: connectTimeoutMs,
    nextMs: statementTimeoutMs > 0 ? statementTimeoutMs + connectTimeoutMs : 0,
  };
  const cache = opts.connections ?? currentObserverConnections();
  for (let attempt = 1; ; attempt++) {
    let session: Session;
    try {
      session = await openSession(target, region, copts, cache);
    } catch (e) {
      return { region, reachable: false, observedAt, reason: describeError(e) };
    }
    try {
      const observed = await readRegion(
        session.conn,
        region,
        observedAt,
        session.databaseExists,
        opts,
        limits,
      );
      await session.release(true);
      return observed;
    } catch (e) {
      await session.release(false);
      if (session.reused && attempt === 1 && connectionFailed(e, session.conn)) continue;
      return { region, reachable: false, observedAt, reason: describeError(e) };
    }
  }
}

export async function observe(
  spec: RegionsSpec,
  specDir: string,
  opts: Partial<ObserveOptions> = {},
): Promise<Observed> {
  const applicationTables = [
    ...spec.replication.tables,
    ...(spec.replication.exclude ?? []).map((e) => e.table),
    ...(spec.replication.pinned ?? []).map((p) => p.table),
  ];
  const full: ObserveOptions = {
    applicationTables,
    applicationRoles: spec.applicationRoles,
    ...opts,
  };
  const regions = await Promise.all(
    [...spec.regions]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map(async (r) => {
        let target: Target;
        try {
          target = regionTarget(spec, r.name, specDir);
          // Resolving the secret happens in connect; surface a missing secret as a reason.
          return await observeRegion(target, r.name, full);
        } catch (e) {
          return {
            region: r.name,
            reachable: false as const,
            observedAt: new Date().toISOString(),
            reason: describeError(e),
          };
        }
      }),
  );
  return { regions };
}
