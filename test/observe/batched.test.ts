/**
 * The batched observer (one round trip per region, cached connections) against the
 * reference: the observer as it was, one catalog query at a time on a new connection,
 * kept here verbatim. On the same applied lab both must say the same thing, field by
 * field. Then the connection cache: reuse, a connection killed under it, a link that stops
 * answering (a frozen TCP relay), and shutdown.
 */
import net from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply.js';
import { desiredState, primaryOf } from '../../src/model/desired.js';
import type {
  ObservedPublication,
  ObservedSubscription,
  ReachableRegion,
  RegionObservation,
} from '../../src/model/observed.js';
import { ObserverConnections } from '../../src/observe/connections.js';
import { type ObserveOptions, observe, observeRegion, parseConninfo } from '../../src/observe/observe.js';
import { planSteadyState } from '../../src/plan/plan.js';
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
} from '../../src/sql/catalog.js';
import { connect, conninfo, controlTarget, regionTarget, type Target } from '../../src/sql/connect.js';
import { heartbeatWriteSql } from '../../src/sql/heartbeat.js';
import { runStatements } from '../../src/sql/statement.js';
import { storeJournal } from '../../src/store/journal.js';
import { openStore } from '../../src/store/store.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const NAME = 'observe_batched';

// ---------------------------------------------------------------------------------------
// The reference: src/observe/observe.ts before batching (13 sequential queries).

function iso(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return v instanceof Date ? v.toISOString() : String(v);
}

async function refPublications(c: pg.Client): Promise<ObservedPublication[]> {
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

async function refSubscriptions(c: pg.Client): Promise<ObservedSubscription[]> {
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

async function referenceObserveRegion(
  target: Target,
  region: string,
  opts: ObserveOptions,
): Promise<RegionObservation> {
  const observedAt = new Date().toISOString();
  const copts = { connectTimeoutMs: 2000, statementTimeoutMs: 5000, applicationName: 'regionctl-reference' };
  let client: pg.Client;
  let databaseReachable = true;
  try {
    client = await connect(target, copts);
  } catch (e) {
    if ((e as { code?: string }).code !== '3D000') throw e;
    databaseReachable = false;
    client = await connect({ ...target, database: 'postgres' }, copts);
  }
  try {
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
        idleReplicationSlotTimeout: server.idle_replication_slot_timeout ?? null,
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
    base.publications = await refPublications(client);
    base.subscriptions = await refSubscriptions(client);
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
  } finally {
    await client.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------

/**
 * What two observations a moment apart must agree on exactly. The server's clock and WAL
 * position move between them (shared servers: other test files write), and so do the
 * replication positions and receipt times that follow them; those keep only their type.
 * Slots are per server: only this test's database's are compared.
 */
function comparable(o: RegionObservation, database: string): unknown {
  if (!o.reachable) return o;
  const kind = (v: unknown) => (v === null ? null : typeof v);
  return {
    ...o,
    observedAt: kind(o.observedAt),
    serverTime: kind(o.serverTime),
    currentLsn: kind(o.currentLsn),
    slots: o.slots
      .filter((s) => s.database === database)
      .map((s) => ({
        ...s,
        confirmedFlushLsn: kind(s.confirmedFlushLsn),
        restartLsn: kind(s.restartLsn),
        retainedBytes: kind(s.retainedBytes),
      })),
    subscriptions: o.subscriptions.map((s) => ({
      ...s,
      appliedLsn: kind(s.appliedLsn),
      latestEndLsn: kind(s.latestEndLsn),
      lastMsgReceiptTime: kind(s.lastMsgReceiptTime),
    })),
  };
}

/** A TCP relay that can stop forwarding (a link that drops everything, connections left open). */
function freezableRelay(upstreamPort: number) {
  let frozen = false;
  let resetNext = false;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((down) => {
    const up = net.connect(upstreamPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [down, up];
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk) => {
        if (resetNext && from === down) {
          resetNext = false;
          close();
        } else if (!frozen) to.write(chunk);
      });
    forward(down, up);
    forward(up, down);
    down.on('close', close).on('error', close);
    up.on('close', close).on('error', close);
  });
  return {
    listen: () =>
      new Promise<number>((resolve) => {
        server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
      }),
    /** Everything written from now on is dropped, in both directions, on every connection. */
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
    },
    /** The next thing a client writes resets its connection (a break noticed only when used). */
    resetOnNextWrite: () => {
      resetNext = true;
    },
    get connections() {
      return pairs.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

describe('batched observation', () => {
  let topo: TestTopology;
  let opts: ObserveOptions;
  const extraSlot = `${NAME}_hand_slot`;

  beforeAll(async () => {
    topo = await testTopology(NAME);
    const store = await openStore(controlTarget(topo.spec, topo.specDir));
    try {
      const plan = planSteadyState(desiredState(topo.spec), await observe(topo.spec, topo.specDir));
      await applyPlan(plan, {
        spec: topo.spec,
        specDir: topo.specDir,
        journal: storeJournal(store),
        specCommit: null,
        actor: 'test',
        log: () => {},
      });
    } finally {
      await store.close();
    }
    const primary = primaryOf(topo.spec);
    const us = await topo.client(primary);
    await runStatements(us, heartbeatWriteSql(primary, 1));
    // Objects regionctl did not make, so every mapping has something to map: a publication
    // with a column list, a disabled subscription whose tables wait in state 'i' (its slot
    // is inactive), a sequence with a value beyond 2^53.
    await us.query('CREATE PUBLICATION hand_pub FOR TABLE public.products (id, name)');
    await us.query('CREATE SEQUENCE public.big_seq START 9007199254740993');
    await us.query("SELECT nextval('public.big_seq')");
    const eu = await topo.client('eu-west-1');
    const info = conninfo(regionTarget(topo.spec, primary, topo.specDir)).replaceAll("'", "''");
    await eu.query(
      `CREATE SUBSCRIPTION hand_sub CONNECTION '${info}' PUBLICATION hand_pub WITH (enabled = false, slot_name = '${extraSlot}')`,
    );
    const applicationTables = [
      ...topo.spec.replication.tables,
      ...(topo.spec.replication.exclude ?? []).map((e) => e.table),
      ...(topo.spec.replication.pinned ?? []).map((p) => p.table),
    ];
    opts = { applicationRoles: topo.spec.applicationRoles, applicationTables };
    // Channels running (workers report receipts), heartbeat row replicated.
    await waitFor(
      async () => {
        const o = await observe(topo.spec, topo.specDir);
        return o.regions.every(
          (r) =>
            r.reachable &&
            r.heartbeats.length === 1 &&
            r.subscriptions
              .filter((s) => s.name.startsWith('rc_sub_'))
              .every((s) => s.tablesNotReady.length === 0 && s.lastMsgReceiptTime !== null),
        );
      },
      { what: 'channels applying and the heartbeat replicated', timeoutMs: 30_000 },
    );
  });

  afterAll(async () => {
    const eu = await topo?.client('eu-west-1').catch(() => null);
    await eu?.query('DROP SUBSCRIPTION IF EXISTS hand_sub').catch(() => {});
    const us = await topo?.client(primaryOf(topo.spec)).catch(() => null);
    // Slots are per server and shared: do not leave WAL pinned for the rest of the run.
    await us
      ?.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
        extraSlot,
      ])
      .catch(() => {});
    await topo?.close();
  });

  async function compareRegion(region: string, target: Target, cache?: ObserverConnections): Promise<void> {
    const db = target.database;
    let last: [unknown, unknown] = [null, null];
    // A replication worker may change state between the two reads: retry a few times.
    const pair = await waitFor(
      async () => {
        const ref = await referenceObserveRegion(target, region, opts);
        const got = await observeRegion(target, region, {
          ...opts,
          ...(cache ? { connections: cache } : {}),
        });
        last = [comparable(got, db), comparable(ref, db)];
        return JSON.stringify(last[0]) === JSON.stringify(last[1]) ? { got, ref } : false;
      },
      { what: `batched observation of ${region} equal to the reference`, timeoutMs: 10_000, intervalMs: 200 },
    ).catch(() => null);
    if (!pair) {
      expect(last[0]).toEqual(last[1]); // shows the difference
      return;
    }
    const { got, ref } = pair;
    if (!got.reachable || !ref.reachable) return;
    // The values that moved: the same format, and close to each other.
    const isoMs = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    expect(got.serverTime).toMatch(isoMs);
    expect(Math.abs(Date.parse(got.serverTime) - Date.parse(ref.serverTime))).toBeLessThan(10_000);
    for (const s of got.subscriptions) {
      const r = ref.subscriptions.find((x) => x.name === s.name);
      if (s.lastMsgReceiptTime === null || !r?.lastMsgReceiptTime) continue;
      expect(s.lastMsgReceiptTime).toMatch(isoMs);
      expect(Math.abs(Date.parse(s.lastMsgReceiptTime) - Date.parse(r.lastMsgReceiptTime))).toBeLessThan(
        30_000,
      );
    }
  }

  it('equals the reference field by field in every region, on new and on cached connections', async () => {
    const cache = new ObserverConnections();
    try {
      for (const r of topo.spec.regions) {
        const target = regionTarget(topo.spec, r.name, topo.specDir);
        await compareRegion(r.name, target);
        // Twice cached: the first finds the heartbeat (a second round trip), the next pipelines it.
        await compareRegion(r.name, target, cache);
        await compareRegion(r.name, target, cache);
      }
      expect(cache.stats.reused).toBeGreaterThan(0);
    } finally {
      await cache.close();
    }
    // Make sure the mappings had something to map.
    const o = await observe(topo.spec, topo.specDir);
    const us = o.regions.find((r) => r.region === primaryOf(topo.spec));
    const eu = o.regions.find((r) => r.region === 'eu-west-1');
    if (!us?.reachable || !eu?.reachable) throw new Error('regions unreachable');
    expect(us.publications.find((p) => p.name === 'hand_pub')?.tables).toEqual([
      { table: 'public.products', rowFilter: null, columns: ['id', 'name'] },
    ]);
    expect(us.publications.some((p) => p.tables.some((t) => t.rowFilter !== null))).toBe(true);
    expect(us.sequences.find((s) => s.name === 'public.big_seq')?.lastValue).toBe('9007199254740993');
    expect(us.slots.find((s) => s.name === extraSlot)).toMatchObject({ active: false, slotType: 'logical' });
    expect(us.heartbeats).toHaveLength(1);
    expect(us.guards.length).toBeGreaterThan(0);
    const hand = eu.subscriptions.find((s) => s.name === 'hand_sub');
    expect(hand).toMatchObject({ enabled: false, workerPid: null, tablesNotReady: ['public.products'] });
    const channel = eu.subscriptions.find((s) => s.name.startsWith('rc_sub_'));
    expect(channel?.workerPid).toBeTypeOf('number');
    expect(channel?.lastMsgReceiptTime).not.toBeNull();
  });

  it('equals the reference when the database is missing (server settings and slots only)', async () => {
    const target = { ...regionTarget(topo.spec, 'eu-west-1', topo.specDir), database: `${NAME}_missing` };
    const cache = new ObserverConnections();
    try {
      await compareRegion('eu-west-1', target);
      await compareRegion('eu-west-1', target, cache);
      const o = await observeRegion(target, 'eu-west-1', { ...opts, connections: cache });
      expect(o).toMatchObject({ reachable: true, databaseExists: false, publications: [] });
      // Not cached: the database may appear any moment.
      expect(cache.size).toBe(0);
    } finally {
      await cache.close();
    }
  });

  it('reports a refused connection as a value', async () => {
    const target = regionTarget(topo.spec, 'eu-west-1', topo.specDir);
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const o = await observeRegion(
      { ...target, endpoint: { ...target.endpoint, port: closed } },
      'eu-west-1',
      { ...opts, connections: new ObserverConnections() },
    );
    expect(o).toMatchObject({ reachable: false, reason: 'connection refused' });
  });
});

describe('observer connection cache', () => {
  let topo: TestTopology;
  let opts: ObserveOptions;

  beforeAll(async () => {
    topo = await testTopology(`${NAME}_cache`);
    opts = { applicationRoles: topo.spec.applicationRoles, applicationTables: topo.spec.replication.tables };
  });
  afterAll(async () => {
    await topo?.close();
  });

  /** Backend pids of observer sessions on this test's database in one region. */
  async function observerPids(region: string): Promise<number[]> {
    const c = await topo.client(region);
    const r = await c.query(
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'regionctl-observer' AND datname = $1 ORDER BY pid",
      [topo.spec.database],
    );
    return r.rows.map((x) => x.pid as number);
  }

  it('keeps one connection per region across passes and closes them on shutdown', async () => {
    const cache = new ObserverConnections();
    const regions = topo.spec.regions.length;
    const first = await observe(topo.spec, topo.specDir, { connections: cache });
    expect(first.regions.every((r) => r.reachable)).toBe(true);
    const pids = await observerPids('eu-west-1');
    expect(pids).toHaveLength(1);
    // The enclosing scope is the default: `reconcile --watch` runs its loop inside one.
    await cache.run(() => observe(topo.spec, topo.specDir));
    await cache.run(() => observe(topo.spec, topo.specDir));
    expect(cache.stats).toEqual({ opened: regions, reused: 2 * regions, discarded: 0 });
    expect(await observerPids('eu-west-1')).toEqual(pids);
    expect(cache.size).toBe(regions);
    await cache.close();
    expect(cache.size).toBe(0);
    await waitFor(async () => (await observerPids('eu-west-1')).length === 0, {
      what: 'observer sessions gone after close',
    });
    // After close, observations still work, on connections of their own.
    const after = await observe(topo.spec, topo.specDir, { connections: cache });
    expect(after.regions.every((r) => r.reachable)).toBe(true);
    expect(cache.size).toBe(0);
  });

  it('replaces a connection the server terminated, within the same observation', async () => {
    const cache = new ObserverConnections();
    try {
      await observe(topo.spec, topo.specDir, { connections: cache });
      const [pid] = await observerPids('eu-west-1');
      const eu = await topo.client('eu-west-1');
      await eu.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
      const o = await observe(topo.spec, topo.specDir, { connections: cache });
      expect(o.regions.map((r) => [r.region, r.reachable])).toEqual(
        topo.spec.regions.map((r) => [r.name, true]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      );
      expect(cache.stats.discarded).toBe(1);
      expect(cache.stats.opened).toBe(topo.spec.regions.length + 1);
      const now = await observerPids('eu-west-1');
      expect(now).toHaveLength(1);
      expect(now).not.toEqual([pid]);
    } finally {
      await cache.close();
    }
  });

  it('destroys a connection that stops answering, reports the region timed out, and reconnects after', async () => {
    const base = regionTarget(topo.spec, 'eu-west-1', topo.specDir);
    const relay = freezableRelay(base.endpoint.port);
    const port = await relay.listen();
    const target = { ...base, endpoint: { ...base.endpoint, port } };
    const cache = new ObserverConnections();
    const fast = { ...opts, connections: cache, connectTimeoutMs: 400, statementTimeoutMs: 1000 };
    try {
      expect((await observeRegion(target, 'eu-west-1', fast)).reachable).toBe(true);
      expect(relay.connections).toBe(1);
      relay.freeze();
      const t0 = performance.now();
      const o = await observeRegion(target, 'eu-west-1', fast);
      const ms = performance.now() - t0;
      expect(o).toMatchObject({ reachable: false });
      expect(o.reachable ? '' : o.reason).toMatch(
        /^timed out \(no answer to the server query within 400 ms\)/,
      );
      // The first answer is held to the connect timeout: as quick to report as a connect that times out.
      expect(ms).toBeLessThan(1500);
      expect(cache.size).toBe(0);
      expect(cache.stats.discarded).toBe(1);
      // Still frozen: a new connection times out connecting.
      const again = await observeRegion(target, 'eu-west-1', fast);
      expect(again.reachable ? '' : again.reason).toMatch(/^timed out/);
      relay.thaw();
      const back = await observeRegion(target, 'eu-west-1', fast);
      expect(back.reachable).toBe(true);
      expect(cache.size).toBe(1);
      await waitFor(() => relay.connections === 1, { what: 'the relay left with one connection' });
    } finally {
      await cache.close();
      await relay.close();
    }
  });

  it('retries on a new connection when the cached one turns out broken only when used', async () => {
    const base = regionTarget(topo.spec, 'eu-west-1', topo.specDir);
    const relay = freezableRelay(base.endpoint.port);
    const target = { ...base, endpoint: { ...base.endpoint, port: await relay.listen() } };
    const cache = new ObserverConnections();
    try {
      expect((await observeRegion(target, 'eu-west-1', { ...opts, connections: cache })).reachable).toBe(
        true,
      );
      relay.resetOnNextWrite();
      const o = await observeRegion(target, 'eu-west-1', { ...opts, connections: cache });
      expect(o.reachable).toBe(true);
      expect(cache.stats).toEqual({ opened: 2, reused: 1, discarded: 1 });
    } finally {
      await cache.close();
      await relay.close();
    }
  });

  it('does not reuse a connection opened for another endpoint or statement timeout', async () => {
    const cache = new ObserverConnections();
    const target = regionTarget(topo.spec, 'eu-west-1', topo.specDir);
    try {
      await observeRegion(target, 'eu-west-1', { ...opts, connections: cache });
      await observeRegion(target, 'eu-west-1', { ...opts, connections: cache, statementTimeoutMs: 4000 });
      expect(cache.stats).toEqual({ opened: 2, reused: 0, discarded: 1 });
      expect(await observerPids('eu-west-1')).toHaveLength(1);
    } finally {
      await cache.close();
    }
  });

  it('gives a concurrent observation of the same region a connection of its own', async () => {
    const cache = new ObserverConnections();
    const target = regionTarget(topo.spec, 'eu-west-1', topo.specDir);
    try {
      const both = await Promise.all([
        observeRegion(target, 'eu-west-1', { ...opts, connections: cache }),
        observeRegion(target, 'eu-west-1', { ...opts, connections: cache }),
      ]);
      expect(both.every((o) => o.reachable)).toBe(true);
      expect(cache.size).toBe(1);
      expect(cache.stats.opened).toBe(1);
    } finally {
      await cache.close();
    }
  });
});
