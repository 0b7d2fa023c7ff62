/** Pure tests of the SQL builders: exact text, quoting of hostile names, redaction. */
import { describe, expect, it } from 'vitest';
import type { DesiredPublication, DesiredSubscription } from '../../src/model/desired.js';
import { fenceSql, guardSql, terminateSessionsSql, unfenceSql } from '../../src/sql/guard.js';
import { heartbeatDdl, heartbeatWriteSql } from '../../src/sql/heartbeat.js';
import {
  alterPublicationSql,
  createPublicationSql,
  dropPublicationSql,
  parseMarker,
  publicationMarker,
} from '../../src/sql/publication.js';
import { displaySql, type Statement } from '../../src/sql/statement.js';
import {
  alterSubscriptionConnectionSql,
  createSubscriptionSql,
  disableSubscriptionSql,
  dropSubscriptionSql,
  enableSubscriptionSql,
  parseSubscriptionMarker,
  redactPasswords,
  refreshSubscriptionSql,
  subscriptionMarker,
} from '../../src/sql/subscription.js';

const pub: DesiredPublication = {
  kind: 'publication',
  name: 'rc_pub_eu_west_1',
  region: 'us-east-1',
  forRegion: 'eu-west-1',
  tables: [
    {
      table: 'public.customers',
      rowFilter: "NOT coalesce((residency = 'eu'), false)",
      columns: ['id', 'name'],
    },
    { table: 'public.orders' },
    { table: 'regionctl.heartbeat' },
  ],
  defHash: 'abc123',
};

const sub: DesiredSubscription = {
  kind: 'subscription',
  name: 'rc_sub_us_east_1__eu_west_1',
  region: 'eu-west-1',
  fromRegion: 'us-east-1',
  publication: 'rc_pub_eu_west_1',
  slotName: 'rc_shop__us_east_1__eu_west_1',
  source: { host: '127.0.0.1', port: 54431, database: 'shop' },
};

const sqls = (s: Statement[]) => s.map((x) => x.sql);

describe('publication builders', () => {
  it('creates with column lists, row filters and every DML kind, then marks it', () => {
    const s = createPublicationSql(pub);
    expect(s.every((x) => x.transactional)).toBe(true);
    expect(sqls(s)[0]).toBe(
      'CREATE PUBLICATION "rc_pub_eu_west_1" FOR TABLE "public"."customers" ("id", "name") ' +
        `WHERE (NOT coalesce((residency = 'eu'), false)), "public"."orders", "regionctl"."heartbeat" ` +
        "WITH (publish = 'insert, update, delete, truncate')",
    );
    expect(sqls(s)[1]).toMatch(/^COMMENT ON PUBLICATION "rc_pub_eu_west_1" IS '\{"managedBy":"regionctl"/);
  });

  it('alters by replacing the whole table list atomically', () => {
    const s = sqls(alterPublicationSql(pub));
    expect(s[0]).toMatch(
      /^ALTER PUBLICATION "rc_pub_eu_west_1" SET TABLE "public"."customers" \("id", "name"\)/,
    );
    expect(s[1]).toBe(
      `ALTER PUBLICATION "rc_pub_eu_west_1" SET (publish = 'insert, update, delete, truncate')`,
    );
    expect(s[2]).toMatch(/^COMMENT ON PUBLICATION/);
  });

  it('quotes hostile identifiers and marker text', () => {
    const hostile: DesiredPublication = {
      ...pub,
      name: 'we"ird',
      tables: [{ table: 'sch"ema.ta ble', columns: ['co"l', "it's"] }],
      defHash: "h'ash",
    };
    const s = sqls(createPublicationSql(hostile));
    expect(s[0]).toBe(
      `CREATE PUBLICATION "we""ird" FOR TABLE "sch""ema"."ta ble" ("co""l", "it's") WITH (publish = 'insert, update, delete, truncate')`,
    );
    expect(s[1]).toContain(`"defHash":"h''ash"`);
    expect(sqls(dropPublicationSql('we"ird'))).toEqual(['DROP PUBLICATION IF EXISTS "we""ird"']);
  });

  it('refuses a publication without tables and a table name without schema', () => {
    expect(() => createPublicationSql({ ...pub, tables: [] })).toThrow(/no tables/);
    expect(() => createPublicationSql({ ...pub, tables: [{ table: 'customers' }] })).toThrow(/schema\.table/);
  });

  it('round-trips its marker and ignores unmanaged or garbage comments', () => {
    const m = parseMarker(publicationMarker(pub));
    expect(m).toEqual({ managedBy: 'regionctl', defHash: 'abc123', tables: pub.tables, catalogHash: null });
    expect(parseMarker(publicationMarker(pub, 'cafe'))?.catalogHash).toBe('cafe');
    expect(parseMarker(null)).toBeNull();
    expect(parseMarker('made by hand')).toBeNull();
    expect(parseMarker('{"managedBy":"someone-else","defHash":"x","tables":[]}')).toBeNull();
    expect(parseMarker('null')).toBeNull();
  });
});

describe('subscription builders', () => {
  const info = "host='127.0.0.1' port='54431' user='postgres' dbname='shop' password='s3cr\\'et'";

  it('creates with an explicit slot name; outside a transaction when it creates the slot', () => {
    const [create, comment] = createSubscriptionSql(sub, info, {
      copyData: true,
      createSlot: true,
      enabled: true,
    });
    expect(create?.transactional).toBe(false);
    expect(create?.sql).toBe(
      `CREATE SUBSCRIPTION "rc_sub_us_east_1__eu_west_1" CONNECTION '${info.replaceAll("'", "''")}' ` +
        `PUBLICATION "rc_pub_eu_west_1" WITH (slot_name = 'rc_shop__us_east_1__eu_west_1', copy_data = true, create_slot = true, enabled = true)`,
    );
    expect(comment?.transactional).toBe(true);
    expect(parseSubscriptionMarker(/IS '(.*)'$/.exec(comment?.sql ?? '')?.[1] ?? '')).toEqual({
      managedBy: 'regionctl',
      fromRegion: 'us-east-1',
      publication: 'rc_pub_eu_west_1',
      slotName: 'rc_shop__us_east_1__eu_west_1',
      source: sub.source,
    });
    const noSlot = createSubscriptionSql(sub, info, {
      copyData: false,
      createSlot: false,
      enabled: false,
      origin: 'none',
    })[0];
    expect(noSlot?.transactional).toBe(true);
    expect(noSlot?.sql).toMatch(
      /copy_data = false, create_slot = false, enabled = false, origin = 'none'\)$/,
    );
  });

  it('never shows the password in the redacted form', () => {
    const all = [
      ...createSubscriptionSql(sub, info, { copyData: true, createSlot: true, enabled: true }),
      ...alterSubscriptionConnectionSql(sub.name, info),
    ];
    for (const s of all) {
      expect(displaySql(s)).not.toContain('s3cr');
    }
    expect(all[0]?.redacted).toContain(`password=''***''`);
    expect(all[0]?.sql).toContain('s3cr');
    expect(all[2]?.redacted).toBe(
      `ALTER SUBSCRIPTION "rc_sub_us_east_1__eu_west_1" CONNECTION 'host=''127.0.0.1'' port=''54431'' user=''postgres'' dbname=''shop'' password=''***'''`,
    );
  });

  it('redacts every conninfo password form', () => {
    expect(redactPasswords('host=h password=bare user=u')).toBe("host=h password='***' user=u");
    expect(redactPasswords("password = 'a b\\' c' user=u")).toBe("password = '***' user=u");
    expect(redactPasswords('PASSWORD=x')).toBe("PASSWORD='***'");
    expect(redactPasswords('postgresql://app:p%40ss@db:5432/shop')).toBe('postgresql://app:***@db:5432/shop');
    expect(redactPasswords('host=h user=u')).toBe('host=h user=u');
  });

  it('drops keeping the slot (detach first) or with it (outside a transaction)', () => {
    const keep = dropSubscriptionSql('we"ird', { keepSlot: true });
    expect(sqls(keep)).toEqual([
      'ALTER SUBSCRIPTION "we""ird" DISABLE',
      'ALTER SUBSCRIPTION "we""ird" SET (slot_name = NONE)',
      'DROP SUBSCRIPTION IF EXISTS "we""ird"',
    ]);
    expect(keep.every((s) => s.transactional)).toBe(true);
    expect(dropSubscriptionSql('s', { keepSlot: false })).toEqual([
      { sql: 'DROP SUBSCRIPTION IF EXISTS "s"', transactional: false },
    ]);
  });

  it('enables, disables, refreshes', () => {
    expect(sqls(enableSubscriptionSql('s'))).toEqual(['ALTER SUBSCRIPTION "s" ENABLE']);
    expect(sqls(disableSubscriptionSql('s'))).toEqual(['ALTER SUBSCRIPTION "s" DISABLE']);
    expect(refreshSubscriptionSql('s', false)).toEqual([
      { sql: 'ALTER SUBSCRIPTION "s" REFRESH PUBLICATION WITH (copy_data = false)', transactional: false },
    ]);
  });

  it('parses only its own subscription markers', () => {
    expect(parseSubscriptionMarker(subscriptionMarker(sub))?.slotName).toBe(sub.slotName);
    expect(parseSubscriptionMarker('{"managedBy":"regionctl"}')).toBeNull();
    expect(parseSubscriptionMarker('[1]')).toBeNull();
    expect(parseSubscriptionMarker('oops')).toBeNull();
  });
});

describe('heartbeat', () => {
  it('is idempotent DDL and an upsert stamped with clock_timestamp()', () => {
    const ddl = sqls(heartbeatDdl());
    expect(ddl[0]).toBe('CREATE SCHEMA IF NOT EXISTS "regionctl"');
    expect(ddl[1]).toMatch(/^CREATE TABLE IF NOT EXISTS "regionctl"\."heartbeat" \(/);
    const [w] = sqls(heartbeatWriteSql("us'east", 3));
    expect(w).toContain(`VALUES ('us''east', 3, 1, clock_timestamp())`);
    expect(w).toContain('seq = h.seq + 1');
    expect(() => heartbeatWriteSql('x', -1)).toThrow(/non-negative/);
    expect(() => heartbeatWriteSql('x', 1.5)).toThrow(/non-negative/);
  });
});

describe('guard and fence', () => {
  const tables = ['public.orders', 'public.customers', 'public.orders'];

  it('read-only revokes writes and sets the read-only default per role', () => {
    expect(
      sqls(guardSql({ region: 'eu', mode: 'read-only', roles: ['app', 'we"ird'] }, tables, 'sh"op')),
    ).toEqual([
      'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE "public"."customers", "public"."orders" FROM "app", "we""ird"',
      'GRANT SELECT ON TABLE "public"."customers", "public"."orders" TO "app", "we""ird"',
      'ALTER ROLE "app" IN DATABASE "sh""op" SET default_transaction_read_only = on',
      'ALTER ROLE "we""ird" IN DATABASE "sh""op" SET default_transaction_read_only = on',
    ]);
  });

  it('read-write grants DML back and resets the default', () => {
    expect(sqls(guardSql({ region: 'us', mode: 'read-write', roles: ['app'] }, tables, 'shop'))).toEqual([
      'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "public"."customers", "public"."orders" TO "app"',
      'ALTER ROLE "app" IN DATABASE "shop" RESET default_transaction_read_only',
    ]);
    expect(guardSql({ region: 'us', mode: 'read-write', roles: [] }, tables, 'shop')).toEqual([]);
  });

  it('fence: NOLOGIN and guard in one transaction, then terminate sessions after commit', () => {
    const f = fenceSql(['app'], ['public.orders'], 'shop');
    expect(sqls(f)).toEqual([
      'ALTER ROLE "app" NOLOGIN',
      'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE "public"."orders" FROM "app"',
      'GRANT SELECT ON TABLE "public"."orders" TO "app"',
      'ALTER ROLE "app" IN DATABASE "shop" SET default_transaction_read_only = on',
      terminateSessionsSql(['app'])[0]?.sql,
    ]);
    expect(f.map((s) => s.transactional)).toEqual([true, true, true, true, false]);
    expect(terminateSessionsSql(["o'brien"])[0]?.sql).toContain(`usename IN ('o''brien')`);
    expect(sqls(unfenceSql(['app'], ['public.orders'], 'shop', 'read-write')).at(-1)).toBe(
      'ALTER ROLE "app" LOGIN',
    );
  });
});
