/**
 * Invariant 4 (the part this layer owns): for every filtered table, no row the filter
 * excludes ever appears on the secondary — sampled continuously while the load
 * generator writes — and once caught up the secondary holds exactly the admitted rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply.js';
import { runLoad } from '../../src/lab/load.js';
import { desiredState } from '../../src/model/desired.js';
import { observe } from '../../src/observe/observe.js';
import { planSteadyState } from '../../src/plan/plan.js';
import { controlTarget } from '../../src/sql/connect.js';
import { storeJournal } from '../../src/store/journal.js';
import { openStore, type Store } from '../../src/store/store.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const ORDERS_FILTER = 'total_cents >= 5000';

describe('filters hold under load', () => {
  let topo: TestTopology;
  let store: Store;
  beforeAll(async () => {
    topo = await testTopology('filter_invariant', (spec) => {
      const ch = spec.channels.find((c) => c.to === 'ap-southeast-1');
      if (ch) ch.filters = { rows: [{ table: 'public.orders', where: ORDERS_FILTER }] };
    });
    for (const r of topo.spec.regions) {
      await (await topo.client(r.name)).query('ALTER TABLE public.orders REPLICA IDENTITY FULL');
    }
    store = await openStore(controlTarget(topo.spec, topo.specDir));
    const plan = planSteadyState(desiredState(topo.spec), await observe(topo.spec, topo.specDir));
    await applyPlan(plan, {
      spec: topo.spec,
      specDir: topo.specDir,
      journal: storeJournal(store),
      specCommit: null,
      actor: 'test',
      log: () => {},
    });
  });
  afterAll(async () => {
    await store?.close();
    await topo?.close();
  });

  it('never shows an excluded row on ap-southeast-1, and converges to exactly the admitted rows', async () => {
    const ap = await topo.client('ap-southeast-1');
    const us = await topo.client('us-east-1');
    let samples = 0;
    let violations = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await ap.query(
          `SELECT (SELECT count(*) FROM public.customers WHERE residency = 'eu') AS eu,
                  (SELECT count(*) FROM public.orders WHERE NOT (${ORDERS_FILTER})) AS small`,
        );
        violations += Number(r.rows[0].eu) + Number(r.rows[0].small);
        samples++;
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const stats = await runLoad({
      spec: topo.spec,
      specDir: topo.specDir,
      stateDir: topo.stateDir,
      rate: 80,
      durationSec: 4,
    });
    expect(stats.committed).toBeGreaterThan(100);
    const admitted = async (sql: string) => (await us.query(sql)).rows.map((r) => String(r.id));
    const wantCustomers = await admitted(
      "SELECT id FROM public.customers WHERE residency <> 'eu' ORDER BY id",
    );
    const wantOrders = await admitted(`SELECT id FROM public.orders WHERE ${ORDERS_FILTER} ORDER BY id`);
    await waitFor(
      async () => {
        const got = (await ap.query('SELECT id FROM public.customers ORDER BY id')).rows.map((r) =>
          String(r.id),
        );
        const gotOrders = (await ap.query('SELECT id FROM public.orders ORDER BY id')).rows.map((r) =>
          String(r.id),
        );
        return (
          JSON.stringify(got) === JSON.stringify(wantCustomers) &&
          JSON.stringify(gotOrders) === JSON.stringify(wantOrders)
        );
      },
      { what: 'ap-southeast-1 to hold exactly the admitted customers and orders', timeoutMs: 30_000 },
    );
    sampling = false;
    await sampler;
    expect(samples).toBeGreaterThan(10);
    expect(violations).toBe(0);
    // eu-west-1 has no filter on these tables: it holds every row.
    const eu = await topo.client('eu-west-1');
    const all = Number((await us.query('SELECT count(*) n FROM public.customers')).rows[0].n);
    await waitFor(
      async () => Number((await eu.query('SELECT count(*) n FROM public.customers')).rows[0].n) === all,
      {
        what: 'eu-west-1 to hold every customer',
        timeoutMs: 30_000,
      },
    );
  });
});
