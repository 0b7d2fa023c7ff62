/**
 * The builders against real PostgreSQL (the shared test lab): what they build replicates
 * as the spec says, detaches as promised, and guards as claimed.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAppRolePassword } from '../../src/lab/demo-schema.js';
import type { DesiredPublication, DesiredSubscription } from '../../src/model/desired.js';
import { residencyExclusion } from '../../src/model/desired.js';
import { publicationName, slotName, subscriptionName } from '../../src/model/names.js';
import {
  HEARTBEAT_ROWS_SQL,
  PUBLICATION_TABLES_SQL,
  PUBLICATIONS_SQL,
  ROLE_GUARDS_SQL,
  ROLE_SESSIONS_SQL,
  SEQUENCES_SQL,
  SERVER_SQL,
  SLOTS_SQL,
  SUBSCRIPTION_RELS_SQL,
  SUBSCRIPTION_STATS_SQL,
  SUBSCRIPTION_WORKERS_SQL,
  SUBSCRIPTIONS_SQL,
  TABLES_SQL,
} from '../../src/sql/catalog.js';
import { conninfo, regionTarget } from '../../src/sql/connect.js';
import { fenceSql, guardSql, unfenceSql } from '../../src/sql/guard.js';
import { heartbeatDdl, heartbeatWriteSql } from '../../src/sql/heartbeat.js';
import { alterPublicationSql, createPublicationSql, parseMarker } from '../../src/sql/publication.js';
import { runStatements } from '../../src/sql/statement.js';
import {
  createSubscriptionSql,
  dropSubscriptionSql,
  parseSubscriptionMarker,
} from '../../src/sql/subscription.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const AP = 'ap-southeast-1';

describe('SQL builders on real PostgreSQL', () => {
  let topo: TestTopology;
  let us: pg.Client;
  let eu: pg.Client;
  let ap: pg.Client;
  let pub: DesiredPublication;
  let sub: DesiredSubscription;
  let appRole: string;
  const tables = ['public.customers', 'public.orders', 'public.products'];

  const appClient = async (region: string): Promise<pg.Client> => {
    const t = regionTarget(topo.spec, region, topo.specDir);
    const c = new pg.Client({
      host: t.endpoint.host,
      port: t.endpoint.port,
      database: topo.spec.database,
      user: appRole,
      password: ensureAppRolePassword(topo.stateDir, appRole),
      application_name: 'test app',
    });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  beforeAll(async () => {
    topo = await testTopology('sql_builders');
    [us, eu, ap] = await Promise.all([topo.client(US), topo.client(EU), topo.client(AP)]);
    appRole = topo.spec.applicationRoles[0]!;
    for (const c of [us, eu, ap]) await runStatements(c, heartbeatDdl());
    // Filtered columns must be covered by the replica identity for UPDATE/DELETE.
    await us.query('ALTER TABLE public.customers REPLICA IDENTITY FULL');
    pub = {
      kind: 'publication',
      name: publicationName(EU),
      region: US,
      forRegion: EU,
      tables: [
        { table: 'public.customers', rowFilter: residencyExclusion("residency = 'eu'") },
        { table: 'public.orders', columns: ['customer_id', 'id', 'total_cents'] },
        { table: 'public.products' },
        { table: 'regionctl.heartbeat' },
      ],
      defHash: 'test-def-1',
    };
    const src = regionTarget(topo.spec, US, topo.specDir);
    sub = {
      kind: 'subscription',
      name: subscriptionName(US, EU),
      region: EU,
      fromRegion: US,
      publication: pub.name,
      slotName: slotName(topo.spec.database, US, EU),
      source: { host: src.endpoint.host, port: src.endpoint.port, database: topo.spec.database },
    };
  });

  afterAll(async () => {
    await topo?.close();
  });

  it('a row-filtered, column-listed publication replicates as filtered to a built subscription', async () => {
    await us.query(`INSERT INTO public.customers (name, email, residency) VALUES
      ('Ada', 'ada@x', 'us'), ('Bea', 'bea@x', 'eu'), ('Cy', 'cy@x', 'ca')`);
    await us.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (1, 500, 'shipped')");
    await runStatements(us, createPublicationSql(pub));
    const info = conninfo(regionTarget(topo.spec, US, topo.specDir));
    await runStatements(
      eu,
      createSubscriptionSql(sub, info, { copyData: true, createSlot: true, enabled: true }),
    );

    await waitFor(
      async () => (await eu.query("SELECT 1 FROM public.customers WHERE name = 'Cy'")).rowCount === 1,
      { what: 'initial copy on eu-west-1', timeoutMs: 30_000 },
    );
    // Streamed changes after the copy, the heartbeat included.
    await us.query(
      "INSERT INTO public.customers (name, email, residency) VALUES ('Dee', 'd@x', 'eu'), ('Eve', 'e@x', 'us')",
    );
    await us.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (2, 700, 'paid')");
    await runStatements(us, heartbeatWriteSql(US, 7));
    await runStatements(us, heartbeatWriteSql(US, 7));
    await waitFor(async () => (await eu.query(HEARTBEAT_ROWS_SQL)).rows[0]?.seq === '2', {
      what: 'heartbeat seq 2 on eu-west-1',
    });
    const names = (await eu.query('SELECT name FROM public.customers ORDER BY name')).rows.map((r) => r.name);
    expect(names).toEqual(['Ada', 'Cy', 'Eve']);
    // Columns outside the list take the subscriber's default, not the publisher's value.
    const orders = (await eu.query('SELECT total_cents, status FROM public.orders ORDER BY id')).rows;
    expect(orders).toEqual([
      { total_cents: 500, status: 'new' },
      { total_cents: 700, status: 'new' },
    ]);
    const hb = (await eu.query(HEARTBEAT_ROWS_SQL)).rows[0];
    expect(hb).toMatchObject({ region: US, epoch: '7', seq: '2' });
  });

  it('alter replaces filters atomically and the marker survives', async () => {
    const altered: DesiredPublication = {
      ...pub,
      tables: pub.tables.map((t) => (t.table === 'public.orders' ? { table: t.table } : t)),
      defHash: 'test-def-2',
    };
    await runStatements(us, alterPublicationSql(altered));
    const rows = (await us.query(PUBLICATION_TABLES_SQL, [[pub.name]])).rows;
    expect(rows.map((r) => [r.qualified_name, r.has_column_list, r.rowfilter !== null])).toEqual([
      ['public.customers', false, true],
      ['public.orders', false, false],
      ['public.products', false, false],
      ['regionctl.heartbeat', false, false],
    ]);
    const p = (await us.query(PUBLICATIONS_SQL)).rows.find((r) => r.pubname === pub.name);
    expect(p).toMatchObject({ pubinsert: true, pubupdate: true, pubdelete: true, pubtruncate: true });
    expect(parseMarker(p.comment)?.defHash).toBe('test-def-2');
    await runStatements(us, alterPublicationSql(pub));
    const back = (await us.query(PUBLICATION_TABLES_SQL, [[pub.name]])).rows;
    expect(back.find((r) => r.qualified_name === 'public.orders')).toMatchObject({
      has_column_list: true,
      attnames: ['id', 'customer_id', 'total_cents'],
    });
  });

  it('every catalog query runs on this server and reports the channel', async () => {
    const server = (await us.query(SERVER_SQL)).rows[0];
    expect(server.wal_level).toBe('logical');
    expect(server.version_num).toBeGreaterThanOrEqual(150000);
    const s = (await eu.query(SUBSCRIPTIONS_SQL)).rows.find((r) => r.subname === sub.name);
    expect(s.subslotname).toBe(sub.slotName);
    expect(s.applied_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(s.origin_name).toBe(`pg_${s.subid}`);
    expect(s.conninfo_redacted).toContain('password=***');
    const password = /password='([^']+)'/.exec(conninfo(regionTarget(topo.spec, US, topo.specDir)))?.[1];
    expect(password).toBeTruthy();
    expect(JSON.stringify(s)).not.toContain(password);
    expect(parseSubscriptionMarker(s.comment)?.slotName).toBe(sub.slotName);
    const workers = (await eu.query(SUBSCRIPTION_WORKERS_SQL)).rows.filter((r) => r.subname === sub.name);
    expect(workers.some((w) => w.relation === null && w.pid !== null)).toBe(true);
    await waitFor(
      async () =>
        (await eu.query(SUBSCRIPTION_RELS_SQL)).rows
          .filter((r) => r.subname === sub.name)
          .every((r) => r.state === 'r'),
      { what: 'all tables ready' },
    );
    const stats = (await eu.query(SUBSCRIPTION_STATS_SQL)).rows.find((r) => r.subname === sub.name);
    expect(stats.counters).toHaveProperty('apply_error_count');
    const slot = (await us.query(SLOTS_SQL)).rows.find((r) => r.slot_name === sub.slotName);
    expect(slot).toMatchObject({ slot_type: 'logical', plugin: 'pgoutput', database: topo.spec.database });
    expect(Number(slot.retained_bytes)).toBeGreaterThanOrEqual(0);
    const t = (await us.query(TABLES_SQL)).rows.find((r) => r.qualified_name === 'public.customers');
    expect(t).toMatchObject({ replica_identity: 'f', has_primary_key: true });
    expect(t.columns_signature).toContain('email:text:nn');
    const seqs = (await us.query(SEQUENCES_SQL)).rows;
    expect(
      seqs.find((r) => r.owned_by === 'customers.id' || r.owned_by === 'public.customers.id'),
    ).toBeTruthy();
    const roles = (await us.query(ROLE_GUARDS_SQL, [[appRole, 'no_such_role'], tables])).rows;
    expect(roles).toEqual([
      expect.objectContaining({ role: appRole, exists: true, can_login: true, default_read_only: false }),
      expect.objectContaining({ role: 'no_such_role', exists: false, writable_tables: [] }),
    ]);
  });

  it('the read-only guard stops an application write even after the session lifts the default, while replication applies', async () => {
    await runStatements(
      eu,
      guardSql({ region: EU, mode: 'read-only', roles: [appRole] }, tables, topo.spec.database),
    );
    const guard = (await eu.query(ROLE_GUARDS_SQL, [[appRole], tables])).rows[0];
    expect(guard).toMatchObject({ writable_tables: [], default_read_only: true });

    const app = await appClient(EU);
    try {
      // The GUC alone is a default the session may override...
      await expect(
        app.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('x', 'x', 1)"),
      ).rejects.toMatchObject({ code: '25006' });
      await app.query('SET default_transaction_read_only = off');
      // ...the REVOKE is not.
      await expect(
        app.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('x', 'x', 1)"),
      ).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/permission denied/) });
      await expect(app.query('DELETE FROM public.customers')).rejects.toMatchObject({ code: '42501' });
      expect((await app.query('SELECT count(*)::int AS n FROM public.customers')).rows[0].n).toBeGreaterThan(
        0,
      );
    } finally {
      await app.end();
    }
    await us.query(
      "INSERT INTO public.products (sku, name, price_cents) VALUES ('sku-guarded', 'applied anyway', 100)",
    );
    await waitFor(
      async () => (await eu.query("SELECT 1 FROM public.products WHERE sku = 'sku-guarded'")).rowCount === 1,
      { what: 'replicated product on the guarded secondary' },
    );

    // read-write gives the writes back.
    await runStatements(
      eu,
      guardSql({ region: EU, mode: 'read-write', roles: [appRole] }, tables, topo.spec.database),
    );
    const rw = (await eu.query(ROLE_GUARDS_SQL, [[appRole], tables])).rows[0];
    expect(rw).toMatchObject({ writable_tables: tables, default_read_only: false });
    await runStatements(
      eu,
      guardSql({ region: EU, mode: 'read-only', roles: [appRole] }, tables, topo.spec.database),
    );
  });

  it('the fence ends open transactions, refuses new sessions and writes; unfence restores them', async () => {
    const app = await appClient(US);
    await app.query('BEGIN');
    await app.query(
      "INSERT INTO public.products (sku, name, price_cents) VALUES ('in-flight', 'never committed', 1)",
    );
    const failed = app.query('SELECT pg_sleep(30)').then(
      () => null,
      (e: Error) => e,
    );
    await runStatements(us, fenceSql([appRole], tables, topo.spec.database));
    expect(await failed).toBeInstanceOf(Error);
    await app.end().catch(() => {});
    expect((await us.query("SELECT 1 FROM public.products WHERE sku = 'in-flight'")).rowCount).toBe(0);
    expect((await us.query(ROLE_SESSIONS_SQL, [[appRole]])).rowCount).toBe(0);
    await expect(appClient(US)).rejects.toMatchObject({ code: '28000' });
    const fenced = (await us.query(ROLE_GUARDS_SQL, [[appRole], tables])).rows[0];
    expect(fenced).toMatchObject({ can_login: false, writable_tables: [], default_read_only: true });

    await runStatements(us, unfenceSql([appRole], tables, topo.spec.database, 'read-write'));
    const again = await appClient(US);
    try {
      await again.query(
        "INSERT INTO public.products (sku, name, price_cents) VALUES ('after-unfence', 'ok', 1)",
      );
    } finally {
      await again.end();
    }
  });

  it('drop keeping the slot leaves it on the publisher; a plain drop removes it', async () => {
    await runStatements(eu, dropSubscriptionSql(sub.name, { keepSlot: true }));
    expect((await eu.query(SUBSCRIPTIONS_SQL)).rows.find((r) => r.subname === sub.name)).toBeUndefined();
    const kept = await waitFor(
      async () => (await us.query(SLOTS_SQL)).rows.find((r) => r.slot_name === sub.slotName && !r.active),
      { what: 'inactive slot left on the publisher' },
    );
    expect(kept.confirmed_flush_lsn).toMatch(/\//);
    await us.query('SELECT pg_drop_replication_slot($1)', [sub.slotName]);

    // Another channel (to ap-southeast-1) dropped plainly takes its slot with it.
    const apSub: DesiredSubscription = {
      ...sub,
      name: subscriptionName(US, AP),
      region: AP,
      slotName: slotName(topo.spec.database, US, AP),
    };
    const info = conninfo(regionTarget(topo.spec, US, topo.specDir));
    await runStatements(
      ap,
      createSubscriptionSql(apSub, info, { copyData: false, createSlot: true, enabled: true }),
    );
    expect((await us.query(SLOTS_SQL)).rows.some((r) => r.slot_name === apSub.slotName)).toBe(true);
    await runStatements(ap, dropSubscriptionSql(apSub.name, { keepSlot: false }));
    expect((await us.query(SLOTS_SQL)).rows.some((r) => r.slot_name === apSub.slotName)).toBe(false);
  });

  it('CREATE SUBSCRIPTION that creates a slot really cannot run in a transaction (why it is standalone)', async () => {
    const info = conninfo(regionTarget(topo.spec, US, topo.specDir));
    const [create] = createSubscriptionSql({ ...sub, name: 'rc_never' }, info, {
      copyData: false,
      createSlot: true,
      enabled: false,
    });
    expect(create?.transactional).toBe(false);
    await ap.query('BEGIN');
    await expect(ap.query(create!.sql)).rejects.toMatchObject({ code: '25001' });
    await ap.query('ROLLBACK');
  });
});
