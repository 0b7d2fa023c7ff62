/**
 * Plan and apply on the real lab: channels are created and data flows by the spec's
 * filters; a filter change plans an alter that changes what flows; a removed channel is
 * dropped; a second plan after apply is empty; an apply interrupted between two steps
 * resumes from the journal; two concurrent applies never both run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply.js';
import { appRolePasswordFile } from '../../src/lab/demo-schema.js';
import { desiredState } from '../../src/model/desired.js';
import { observe } from '../../src/observe/observe.js';
import { type Plan, planSteadyState } from '../../src/plan/plan.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { connect, controlTarget } from '../../src/sql/connect.js';
import { storeJournal } from '../../src/store/journal.js';
import { acquireLeaderLock } from '../../src/store/leader-lock.js';
import { openStore, type Store } from '../../src/store/store.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

async function planOf(topo: TestTopology, spec: RegionsSpec = topo.spec): Promise<Plan> {
  return planSteadyState(desiredState(spec), await observe(spec, topo.specDir));
}

async function applyAll(
  topo: TestTopology,
  store: Store,
  spec: RegionsSpec = topo.spec,
  crashAfterSteps?: number,
) {
  const plan = await planOf(topo, spec);
  const opts = {
    spec,
    specDir: topo.specDir,
    journal: storeJournal(store),
    specCommit: null,
    actor: 'test',
    log: () => {},
    ...(crashAfterSteps === undefined ? {} : { crashAfterSteps }),
  };
  return { plan, result: await applyPlan(plan, opts) };
}

async function count(topo: TestTopology, region: string, sql: string): Promise<number> {
  const c = await topo.client(region);
  return Number((await c.query(sql)).rows[0].n);
}

describe('plan and apply on the lab', () => {
  let topo: TestTopology;
  let filtered: RegionsSpec;
  let store: Store;
  beforeAll(async () => {
    topo = await testTopology('apply_flow');
    const us = await topo.client('us-east-1');
    await us.query('ALTER TABLE public.customers REPLICA IDENTITY FULL');
    store = await openStore(controlTarget(topo.spec, topo.specDir));
  });
  afterAll(async () => {
    await store?.close();
    await topo?.close();
  });

  it('creates the channels, data flows by the filters, and a second plan is empty', async () => {
    const { plan } = await applyAll(topo, store);
    expect(plan.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(plan.actions.filter((a) => a.kind === 'create-subscription').map((a) => a.region)).toEqual([
      'ap-southeast-1',
      'eu-west-1',
    ]);
    const us = await topo.client('us-east-1');
    await us.query(
      "INSERT INTO public.customers (name, email, residency) SELECT 'c' || g, 'c' || g || '@x', CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 30) g",
    );
    await us.query("INSERT INTO public.sessions (customer_id, token, expires_at) VALUES (1, 't', now())");
    await us.query("INSERT INTO public.payment_tokens (customer_id, token) VALUES (1, 'tok')");
    await waitFor(
      async () => (await count(topo, 'eu-west-1', 'SELECT count(*) n FROM public.customers')) === 30,
      {
        what: 'all 30 customers on eu-west-1',
        timeoutMs: 30_000,
      },
    );
    await waitFor(
      async () => (await count(topo, 'ap-southeast-1', 'SELECT count(*) n FROM public.customers')) === 20,
      {
        what: 'the 20 non-EU customers on ap-southeast-1',
        timeoutMs: 30_000,
      },
    );
    // Residency: no EU row ever reaches ap-southeast-1; excluded and pinned tables stay home.
    expect(
      await count(topo, 'ap-southeast-1', "SELECT count(*) n FROM public.customers WHERE residency = 'eu'"),
    ).toBe(0);
    for (const r of ['eu-west-1', 'ap-southeast-1']) {
      expect(await count(topo, r, 'SELECT count(*) n FROM public.sessions')).toBe(0);
      expect(await count(topo, r, 'SELECT count(*) n FROM public.payment_tokens')).toBe(0);
    }
    // An update that moves a row into the restricted set is filtered too.
    await us.query("UPDATE public.customers SET residency = 'eu' WHERE id = 1");
    await waitFor(
      async () =>
        (await count(topo, 'eu-west-1', "SELECT count(*) n FROM public.customers WHERE residency = 'eu'")) ===
        11,
      { what: 'the update on eu-west-1', timeoutMs: 30_000 },
    );
    expect(
      await count(topo, 'ap-southeast-1', "SELECT count(*) n FROM public.customers WHERE residency = 'eu'"),
    ).toBe(0);
    const again = await planOf(topo);
    expect(again.actions).toEqual([]);
  });

  it('the guard keeps the application role read-only on secondaries, even if a session overrides the default', async () => {
    const role = topo.spec.applicationRoles[0] ?? '';
    const eu = topo.spec.regions.find((r) => r.name === 'eu-west-1');
    if (!eu) throw new Error('fixture');
    const app = await connect(
      {
        endpoint: {
          ...eu.endpoint,
          user: role,
          password: { file: appRolePasswordFile(topo.stateDir, role) },
        },
        database: topo.spec.database,
        specDir: topo.specDir,
        label: 'app on eu-west-1',
      },
      {},
    );
    try {
      await expect(app.query("INSERT INTO public.customers (name, email) VALUES ('x', 'y')")).rejects.toThrow(
        /read-only transaction/,
      );
      await app.query('SET default_transaction_read_only = off');
      await expect(app.query("INSERT INTO public.customers (name, email) VALUES ('x', 'y')")).rejects.toThrow(
        /permission denied/,
      );
      expect(Number((await app.query('SELECT count(*) n FROM public.customers')).rows[0].n)).toBeGreaterThan(
        0,
      );
    } finally {
      await app.end();
    }
  });

  it('a replicated table without replica identity is reported by plan, before apply', async () => {
    const spec = structuredClone(topo.spec);
    spec.replication.tables.push('public.no_identity');
    for (const r of spec.regions) {
      const c = await topo.client(r.name);
      await c.query('CREATE TABLE IF NOT EXISTS public.no_identity (v text)');
    }
    const plan = await planOf(topo, spec);
    const p = plan.problems.find((x) => x.code === 'E_NO_REPLICA_IDENTITY');
    expect(p?.message).toMatch(/public\.no_identity/);
    expect(p?.hint).toMatch(/REPLICA IDENTITY FULL/);
    await expect(applyAll(topo, store, spec)).rejects.toMatchObject({ code: 'E_PLAN_BLOCKED' });
    for (const r of spec.regions) await (await topo.client(r.name)).query('DROP TABLE public.no_identity');
  });

  it('a filter change plans a resync of that table, and applying it changes what flows', async () => {
    const spec = structuredClone(topo.spec);
    const ch = spec.channels.find((c) => c.to === 'eu-west-1');
    if (!ch) throw new Error('fixture');
    ch.filters = { rows: [{ table: 'public.orders', where: 'total_cents >= 1000' }] };
    // eu-west-1 now receives a subset: it can no longer be a failover candidate.
    const eu = spec.regions.find((r) => r.name === 'eu-west-1');
    if (eu) eu.failover = { candidate: false };
    const us = await topo.client('us-east-1');
    await us.query('ALTER TABLE public.orders REPLICA IDENTITY FULL');
    await us.query(
      "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g * 100, 'new' FROM generate_series(1, 20) g",
    );
    await waitFor(
      async () => (await count(topo, 'eu-west-1', 'SELECT count(*) n FROM public.orders')) === 20,
      {
        what: 'orders on eu-west-1 before the change',
        timeoutMs: 30_000,
      },
    );
    const { plan } = await applyAll(topo, store, spec);
    expect(plan.actions.map((a) => a.kind)).toContain('alter-publication');
    expect(plan.actions.some((a) => a.risk === 'resync')).toBe(true);
    await waitFor(
      async () => (await count(topo, 'eu-west-1', 'SELECT count(*) n FROM public.orders')) === 11,
      {
        what: 'only orders >= 1000 cents on eu-west-1 after the change',
        timeoutMs: 30_000,
      },
    );
    expect(
      await count(topo, 'eu-west-1', 'SELECT count(*) n FROM public.orders WHERE total_cents < 1000'),
    ).toBe(0);
    expect(await count(topo, 'ap-southeast-1', 'SELECT count(*) n FROM public.orders')).toBe(20);
    expect((await planOf(topo, spec)).actions).toEqual([]);
    filtered = spec;
  });

  it('removing a channel plans a drop of its subscription and publication', async () => {
    const spec = structuredClone(filtered);
    spec.channels = spec.channels.filter((c) => c.to !== 'ap-southeast-1');
    const { plan } = await applyAll(topo, store, spec);
    expect(plan.actions.map((a) => `${a.kind}@${a.region}`)).toEqual([
      'drop-subscription@ap-southeast-1',
      'drop-publication@us-east-1',
    ]);
    const us = await topo.client('us-east-1');
    const slots = await us.query(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'rc_t_apply_flow%'",
    );
    expect(slots.rows.map((r) => r.slot_name)).toEqual(['rc_t_apply_flow__us_east_1__eu_west_1']);
    expect((await planOf(topo, spec)).actions).toEqual([]);
  });
});

describe('journal and leader lock', () => {
  let topo: TestTopology;
  let store: Store;
  beforeAll(async () => {
    topo = await testTopology('apply_resume');
    const us = await topo.client('us-east-1');
    await us.query('ALTER TABLE public.customers REPLICA IDENTITY FULL');
    store = await openStore(controlTarget(topo.spec, topo.specDir));
  });
  afterAll(async () => {
    await store?.close();
    await topo?.close();
  });

  it('an apply interrupted between two steps resumes from the journal and converges', async () => {
    const first = await applyAll(topo, store, topo.spec, 3);
    expect(first.result.applied).toBe(3);
    const runs = await store.client.query('SELECT id, status FROM regionctl.apply_run ORDER BY id');
    expect(runs.rows.map((r) => r.status)).toEqual(['running']);
    const second = await applyAll(topo, store);
    expect(second.result.resumedRunId).toBe(runs.rows[0].id);
    // Steps done before the crash were not run again.
    const steps = await store.client.query(
      'SELECT seq, attempts, status FROM regionctl.apply_step WHERE run_id = $1 ORDER BY seq',
      [runs.rows[0].id],
    );
    expect(steps.rows.every((s) => s.status === 'done' && s.attempts === 1)).toBe(true);
    expect(steps.rows.length).toBe(first.plan.actions.length);
    expect((await planOf(topo)).actions).toEqual([]);
  });

  it('a second apply is refused while the first holds the leader lock, and says who holds it', async () => {
    const target = controlTarget(topo.spec, topo.specDir);
    const first = await acquireLeaderLock(target, 'apply', { wait: false });
    try {
      await expect(acquireLeaderLock(target, 'apply', { wait: false })).rejects.toMatchObject({
        code: 'E_LOCK_HELD',
        message: expect.stringMatching(/pid \d+/),
      });
    } finally {
      await first.release();
    }
    const again = await acquireLeaderLock(target, 'apply', { wait: false });
    await again.release();
  });

  it('the lock is released when its holder connection dies', async () => {
    const target = controlTarget(topo.spec, topo.specDir);
    const first = await acquireLeaderLock(target, 'apply', { wait: false, applicationName: 'doomed-holder' });
    await store.client.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doomed-holder'",
    );
    await first.lost;
    const second = await acquireLeaderLock(target, 'apply', { wait: true, timeoutMs: 5000 });
    await second.release();
  });
});
