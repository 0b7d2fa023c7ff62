/**
 * The drift report on the real lab: the spec is applied, then each kind of drift is made
 * by hand the way an operator (or an accident) would make it, and the report must name
 * it with the right owner and advice — once, in a deterministic order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply.js';
import { type DesiredState, desiredState } from '../../src/model/desired.js';
import { slotName } from '../../src/model/names.js';
import type { Observed } from '../../src/model/observed.js';
import { type DriftItem, driftReport, humanBytes, parseColumnsSignature } from '../../src/observe/drift.js';
import { observe } from '../../src/observe/observe.js';
import { planSteadyState } from '../../src/plan/plan.js';
import { controlTarget } from '../../src/sql/connect.js';
import { storeJournal } from '../../src/store/journal.js';
import { openStore } from '../../src/store/store.js';
import { type PrivateLab, privateLab, type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

async function report(
  topo: TestTopology,
): Promise<{ items: DriftItem[]; observed: Observed; desired: DesiredState }> {
  const desired = desiredState(topo.spec);
  const observed = await observe(topo.spec, topo.specDir);
  return { items: driftReport(desired, observed, planSteadyState(desired, observed)), observed, desired };
}

async function applySpec(topo: TestTopology): Promise<void> {
  const store = await openStore(controlTarget(topo.spec, topo.specDir));
  try {
    const desired = desiredState(topo.spec);
    const plan = planSteadyState(desired, await observe(topo.spec, topo.specDir));
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
}

function only(items: DriftItem[], kind: string, region: string, object?: string): DriftItem {
  const found = items.filter(
    (i) => i.kind === kind && i.region === region && (object === undefined || i.object === object),
  );
  expect(
    found,
    `${kind} in ${region}${object ? ` on ${object}` : ''} among ${JSON.stringify(items, null, 2)}`,
  ).toHaveLength(1);
  return found[0] as DriftItem;
}

describe('pure helpers', () => {
  it('reads column signatures whose types contain commas', () => {
    expect(parseColumnsSignature('a:numeric(10,2):nn,b:text,c:integer:nn:gen')).toEqual([
      { name: 'a', type: 'numeric(10,2)', notNull: true, generated: false },
      { name: 'b', type: 'text', notNull: false, generated: false },
      { name: 'c', type: 'integer', notNull: true, generated: true },
    ]);
  });
  it('prints bytes for people', () => {
    expect([0, 1023, 1536, 5 * 1024 * 1024, 3.2 * 1024 ** 3].map(humanBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.5 KiB',
      '5.0 MiB',
      '3.2 GiB',
    ]);
  });
});

describe('drift report on the lab', () => {
  const NAME = 'drift_kinds';
  let topo: TestTopology;
  let items: DriftItem[];
  let role: string;
  const handSlot = `hand_slot_${NAME}`;
  let orphanSlot: string;

  beforeAll(async () => {
    topo = await testTopology(NAME);
    role = topo.spec.applicationRoles[0] ?? '';
    orphanSlot = slotName(topo.spec.database, 'us-east-1', 'gone-1');
    await applySpec(topo);
  });
  afterAll(async () => {
    const us = await topo?.client('us-east-1');
    // Slots are per server and this one is shared: do not leave WAL pinned for the rest of the run.
    await us
      ?.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1) AND NOT active',
        [[handSlot, orphanSlot, slotName(topo.spec.database, 'us-east-1', 'eu-west-1')]],
      )
      .catch(() => {});
    await topo?.close();
  });

  it('is empty once the applied channels have finished their initial copy', async () => {
    // While a table is being copied, its table-sync slot is in use: not drift.
    const items = await waitFor(
      async () => {
        const r = await report(topo);
        const copying = r.observed.regions.some(
          (o) => o.reachable && o.subscriptions.some((s) => s.tablesNotReady.length > 0),
        );
        return copying ? false : r.items;
      },
      { what: 'initial copy finished', timeoutMs: 30_000 },
    );
    expect(items).toEqual([]);
  });

  it('reports each hand-made drift once, with who should act', async () => {
    const us = await topo.client('us-east-1');
    const eu = await topo.client('eu-west-1');
    const ap = await topo.client('ap-southeast-1');
    const usPort = topo.spec.regions.find((r) => r.name === 'us-east-1')?.endpoint.port;
    // Publications changed by hand: a table taken out, a row filter added.
    await us.query('ALTER PUBLICATION rc_pub_eu_west_1 DROP TABLE public.products');
    await us.query('ALTER PUBLICATION rc_pub_ap_southeast_1 DROP TABLE public.orders');
    await us.query('ALTER PUBLICATION rc_pub_ap_southeast_1 ADD TABLE public.orders WHERE (total_cents > 0)');
    // A subscription disabled, another dropped while its slot stays on the primary.
    await ap.query('ALTER SUBSCRIPTION rc_sub_us_east_1__ap_southeast_1 DISABLE');
    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 SET (slot_name = NONE)');
    await eu.query('DROP SUBSCRIPTION rc_sub_us_east_1__eu_west_1');
    // Unmanaged objects: a publication, a subscription (never connected) and a slot.
    await us.query('CREATE PUBLICATION hand_pub FOR TABLE public.products');
    await eu.query(
      `CREATE SUBSCRIPTION hand_sub CONNECTION 'host=127.0.0.1 port=${usPort} dbname=${topo.spec.database} user=postgres' PUBLICATION hand_pub WITH (connect = false)`,
    );
    await us.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [handSlot]);
    // A slot named like regionctl's for a channel the spec does not have (e.g. kept after a failover).
    await us.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [orphanSlot]);
    // Schema drift: DDL run on the primary only, and a type changed on one secondary.
    await us.query('ALTER TABLE public.orders ADD COLUMN note text');
    await eu.query('ALTER TABLE public.products ALTER COLUMN price_cents TYPE bigint');
    // The guard lost on a secondary.
    await eu.query(`GRANT INSERT ON public.orders TO ${role}`);
    // A table the spec does not classify.
    await us.query('CREATE TABLE public.schema_migrations (version text PRIMARY KEY)');
    // WAL for the slots to retain.
    await us.query(
      "INSERT INTO public.schema_migrations SELECT 'v' || g || repeat('x', 200) FROM generate_series(1, 2000) g",
    );

    const r = await report(topo);
    items = r.items;

    const handEu = only(items, 'publication-hand-edited', 'us-east-1', 'rc_pub_eu_west_1');
    expect(handEu.owner).toBe('regionctl apply');
    expect(handEu.message).toMatch(/tables removed: public\.products/);
    expect(handEu.advice).toMatch(/regionctl apply/);
    expect(handEu.advice).toMatch(/regions\.yaml/);
    const handAp = only(items, 'publication-hand-edited', 'us-east-1', 'rc_pub_ap_southeast_1');
    expect(handAp.message).toMatch(/row filter added on public\.orders: .*total_cents > 0/);

    const disabled = only(items, 'subscription-disabled', 'ap-southeast-1');
    expect(disabled.owner).toBe('regionctl apply');
    expect(disabled.message).toMatch(/retains \d+(\.\d)? (B|KiB|MiB) WAL/);

    const missing = only(items, 'subscription-missing', 'eu-west-1', 'rc_sub_us_east_1__eu_west_1');
    expect(missing.owner).toBe('regionctl apply');
    expect(missing.message).toMatch(
      /slot rc_t_drift_kinds__us_east_1__eu_west_1 is still on us-east-1, retaining/,
    );

    const pub = only(items, 'unmanaged-publication', 'us-east-1', 'hand_pub');
    expect(pub.owner).toBe('operator');
    expect(pub.advice).toContain('DROP PUBLICATION "hand_pub";');

    const sub = only(items, 'unmanaged-subscription', 'eu-west-1', 'hand_sub');
    expect(sub.owner).toBe('operator');
    expect(sub.message).toMatch(/follows hand_pub on 127\.0\.0\.1/);
    expect(sub.advice).toContain('DROP SUBSCRIPTION "hand_sub";');

    const slot = only(items, 'unmanaged-slot', 'us-east-1', handSlot);
    expect(slot.owner).toBe('operator');
    expect(slot.message).toMatch(/nothing consumes it and it retains \d+(\.\d)? (KiB|MiB) WAL/);
    expect(slot.advice).toContain(`SELECT pg_drop_replication_slot('${handSlot}');`);

    const orphan = only(items, 'orphaned-slot', 'us-east-1', orphanSlot);
    expect(orphan.owner).toBe('operator');
    expect(orphan.advice).toMatch(/evidence of a failover/);
    expect(orphan.advice).toContain(`SELECT pg_drop_replication_slot('${orphanSlot}');`);
    // The leftover slot of the dropped subscription is explained by subscription-missing, not again as orphaned.
    expect(items.filter((i) => i.object === slotName(topo.spec.database, 'us-east-1', 'eu-west-1'))).toEqual(
      [],
    );

    for (const region of ['eu-west-1', 'ap-southeast-1']) {
      const drift = only(items, 'schema-drift', region, 'public.orders');
      expect(drift.owner).toBe('operator');
      expect(drift.message).toContain(`missing on ${region}: note (text)`);
      expect(drift.advice).toContain('ALTER TABLE "public"."orders" ADD COLUMN "note" text;');
    }
    const type = only(items, 'schema-drift', 'eu-west-1', 'public.products');
    expect(type.message).toContain(
      'price_cents is integer NOT NULL on us-east-1 but bigint NOT NULL on eu-west-1',
    );

    const guard = only(items, 'guard-lost', 'eu-west-1', role);
    expect(guard.owner).toBe('regionctl apply');
    expect(guard.message).toContain('it can write public.orders');

    const unclassified = only(items, 'table-unclassified', 'us-east-1', 'public.schema_migrations');
    expect(unclassified.owner).toBe('spec author');
    expect(unclassified.advice).toMatch(/replication\.tables.*replication\.exclude/);

    // Nothing is reported twice: what the plan would do is already explained above.
    expect(items.filter((i) => i.kind.startsWith('pending-'))).toEqual([]);
    expect(items.filter((i) => i.kind.startsWith('E_'))).toEqual([]);
    const keys = items.map((i) => `${i.region}/${i.kind}/${i.object}`);
    expect(new Set(keys).size).toBe(keys.length);

    // Deterministic: the same findings in the same order whatever order the catalog listed them in.
    const shuffled = structuredClone(r.observed);
    shuffled.regions.reverse();
    for (const o of shuffled.regions) {
      if (!o.reachable) continue;
      o.slots.reverse();
      o.publications.reverse();
      o.subscriptions.reverse();
      o.tables.reverse();
    }
    const again = driftReport(r.desired, shuffled, planSteadyState(r.desired, shuffled));
    expect(JSON.stringify(again)).toBe(JSON.stringify(items));
  });
});

describe('prerequisites lost in a restart', () => {
  let lab: PrivateLab;
  beforeAll(async () => {
    lab = await privateLab('drift_prereq');
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('names the setting, the region and the statement that restores it', async () => {
    // Channels are not applied here on purpose: a server holding logical slots refuses to
    // start with wal_level below logical (it becomes unreachable, reported as such), so a
    // lost wal_level is only observable on a primary without slots.
    const us = await lab.client('us-east-1');
    await us.query('ALTER SYSTEM SET wal_level = replica');
    await us.query('ALTER SYSTEM SET max_replication_slots = 1');
    await us.query('ALTER SYSTEM SET max_wal_senders = 1');
    const eu = await lab.client('eu-west-1');
    await eu.query('ALTER SYSTEM SET max_logical_replication_workers = 0');
    for (const region of ['us-east-1', 'eu-west-1']) {
      await lab.kill(region);
      await lab.start(region);
    }
    const { items } = await report(lab);
    const wal = only(items, 'prerequisite', 'us-east-1', 'wal_level');
    expect(wal.owner).toBe('operator');
    expect(wal.message).toMatch(/wal_level is replica on the primary us-east-1/);
    expect(wal.advice).toMatch(/ALTER SYSTEM SET wal_level = logical; then restart/);
    expect(only(items, 'prerequisite', 'us-east-1', 'max_replication_slots').message).toMatch(
      /max_replication_slots is 1 .* need 2/,
    );
    expect(only(items, 'prerequisite', 'us-east-1', 'max_wal_senders').advice).toMatch(
      /ALTER SYSTEM SET max_wal_senders = \d+/,
    );
    const workers = only(items, 'prerequisite', 'eu-west-1', 'max_logical_replication_workers');
    expect(workers.message).toMatch(/is 0 on eu-west-1/);
    // The planner's E_WAL_LEVEL problem is the same finding: not repeated.
    expect(items.filter((i) => /wal_level/.test(i.message))).toHaveLength(1);
  });
});
