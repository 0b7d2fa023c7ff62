/**
 * Observes every region in parallel. A region that cannot be reached, or that times
 * out, is reported as unreachable with a reason; it never throws out of `observe`.
 */
import type pg from 'pg';
import type {
  Observed,
  ObservedPublication,
  ObservedSubscription,
  ReachableRegion,
  RegionObservation,
} from '../model/observed.js';
import type { RegionsSpec } from '../spec/schema.js';
import {
  HEARTBEAT_EXISTS_SQL,
  HEARTBEAT_ROWS_SQL,
  PUBLICATION_TABLES_SQL,
  PUBLICATIONS_SQL,
  ROLE_GUARDS_SQL,
  SEQUENCES_SQL,
  SERVER_SQL,
  SLOTS_SQL,
  SUBSCRIPTION_RELS_SQL,
  SUBSCRIPTION_STATS_SQL,
  SUBSCRIPTION_WORKERS_SQL,
  SUBSCRIPTIONS_SQL,
  TABLES_SQL,
} from '../sql/catalog.js';
import { connect, regionTarget, type Target } from '../sql/connect.js';

export interface ObserveOptions {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  /** Tables whose application-role privileges are checked (the guard). */
  applicationTables: string[];
  applicationRoles: string[];
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

async function readPublications(c: pg.Client): Promise<ObservedPublication[]> {
  const pubs = (await c.query(PUBLICATIONS_SQL)).rows;
  const tables = (await c.query(PUBLICATION_TABLES_SQL, [null])).rows;
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

async function readSubscriptions(c: pg.Client): Promise<ObservedSubscription[]> {
  const subs = (await c.query(SUBSCRIPTIONS_SQL)).rows;
  const workers = (await c.query(SUBSCRIPTION_WORKERS_SQL)).rows;
  const rels = (await c.query(SUBSCRIPTION_RELS_SQL)).rows;
  const stats = (await c.query(SUBSCRIPTION_STATS_SQL)).rows;
  return subs.map((row) => {
    const apply = workers.find((w) => w.subname === row.subname && w.relation === null);
    const mine = workers.filter((w) => w.subname === row.subname);
    const st = stats.find((x) => x.subname === row.subname);
    const receipts = mine.map((w) => iso(w.last_msg_receipt_time)).filter((x): x is string => x !== null);
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

export async function observeRegion(
  target: Target,
  region: string,
  opts: ObserveOptions,
): Promise<RegionObservation> {
  const observedAt = new Date().toISOString();
  const copts = {
    connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
    statementTimeoutMs: opts.statementTimeoutMs ?? 5000,
    applicationName: 'regionctl-observer',
  };
  let client: pg.Client;
  let databaseReachable = true;
  try {
    client = await connect(target, copts);
  } catch (e) {
    if ((e as { code?: string }).code !== '3D000') {
      return { region, reachable: false, observedAt, reason: describeError(e) };
    }
    // The server is up but the database is missing: observe the server anyway.
    databaseReachable = false;
    try {
      client = await connect({ ...target, database: 'postgres' }, copts);
    } catch (e2) {
      return { region, reachable: false, observedAt, reason: describeError(e2) };
    }
  }
  try {
    // A lock held on a table must make the observer wait, not hang: it reports instead.
    await client.query("SET lock_timeout = '500ms'");
    const server = (await client.query(SERVER_SQL)).rows[0];
    const now = (await client.query('SELECT clock_timestamp() AS t')).rows[0].t;
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
      },
      inRecovery: server.in_recovery,
      currentLsn: server.current_lsn,
      serverTime: iso(now) ?? observedAt,
      databaseExists: databaseReachable,
      publications: [],
      subscriptions: [],
      slots: (await client.query(SLOTS_SQL)).rows.map((r) => ({
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
    if (!base.databaseExists) return base;
    base.publications = await readPublications(client);
    base.subscriptions = await readSubscriptions(client);
    base.tables = (await client.query(TABLES_SQL)).rows.map((r) => ({
      table: r.qualified_name,
      replicaIdentity: r.replica_identity,
      hasPrimaryKey: r.has_primary_key,
      columnsSignature: r.columns_signature,
    }));
    base.sequences = (await client.query(SEQUENCES_SQL)).rows.map((r) => ({
      name: r.sequence,
      lastValue: r.last_value === null ? null : String(r.last_value),
      incrementBy: String(r.increment_by),
      ownedBy: r.owned_by ?? null,
    }));
    base.heartbeatInstalled = (await client.query(HEARTBEAT_EXISTS_SQL)).rows[0].installed;
    if (base.heartbeatInstalled) {
      base.heartbeats = (await client.query(HEARTBEAT_ROWS_SQL)).rows.map((r) => ({
        region: r.region,
        epoch: Number(r.epoch),
        seq: Number(r.seq),
        writtenAt: iso(r.written_at) ?? '',
      }));
    }
    base.guards = (
      await client.query(ROLE_GUARDS_SQL, [opts.applicationRoles, opts.applicationTables])
    ).rows.map((r) => ({
      role: r.role,
      exists: r.exists,
      writableTables: r.writable_tables ?? [],
      defaultReadOnly: r.default_read_only,
      canLogin: r.can_login,
      sessions: Number(r.sessions),
    }));
    return base;
  } catch (e) {
    return { region, reachable: false, observedAt, reason: describeError(e) };
  } finally {
    await client.end().catch(() => {});
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
