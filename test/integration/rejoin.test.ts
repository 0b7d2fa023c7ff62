/**
 * Rejoin on the real lab: writes the old primary committed after the cut point are in
 * the lost-write report exactly (same ids), absent from the new primary, kept on disk;
 * the old primary ends identical to the new one, repaired row by row (not copied), and
 * follows it; a switchover back works after the rejoin; without the evidence slot the
 * rejoin falls back to a full copy.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { runSwitchover } from '../../src/failover/switchover.js';
import { slotName } from '../../src/model/names.js';
import { runRejoin } from '../../src/rejoin/rejoin.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, checksum, fastFailover, labFenceHook, startWatch } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const TABLES = ['public.customers', 'public.orders', 'public.order_items', 'public.products'];

async function sameContent(lab: PrivateLab, a: string, b: string): Promise<boolean> {
  const ca = await lab.client(a);
  const cb = await lab.client(b);
  for (const t of TABLES) if ((await checksum(ca, t)) !== (await checksum(cb, t))) return false;
  return true;
}

/** Writes on us-east-1 that eu-west-1 never receives, then the failover that loses them. */
async function divergeAndFailOver(lab: PrivateLab, store: Store): Promise<{ lostIds: string[] }> {
  const us = await lab.client('us-east-1');
  const eu = await lab.client('eu-west-1');
  await us.query(
    "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'before' FROM generate_series(1, 20) g",
  );
  await waitFor(async () => (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 20, {
    what: 'orders shipped before the outage',
    timeoutMs: 20_000,
  });
  await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
  await waitFor(
    async () =>
      (
        await eu.query(
          "SELECT count(*)::int n FROM pg_stat_subscription WHERE subname = 'rc_sub_us_east_1__eu_west_1' AND pid IS NOT NULL",
        )
      ).rows[0].n === 0,
    {
      what: 'the apply worker to stop',
      timeoutMs: 10_000,
    },
  );
  const lost: string[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await us.query(
      "INSERT INTO public.orders (customer_id, total_cents, status) VALUES (9, $1, 'lost') RETURNING id",
      [1000 + i],
    );
    lost.push(String(r.rows[0].id));
  }
  await us.query("UPDATE public.orders SET status = 'changed-after-cut' WHERE total_cents = 1");
  await lab.kill('us-east-1');
  await runFailover({
    spec: lab.spec,
    specDir: lab.specDir,
    store,
    log: () => {},
    force: true,
    trigger: 'test',
    to: 'eu-west-1',
  });
  // The new primary moves on: new rows, and a change to a row that existed at the cut.
  await eu.query(
    "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 2, g, 'after' FROM generate_series(1, 5) g",
  );
  await eu.query("UPDATE public.orders SET status = 'changed-on-new-primary' WHERE total_cents = 2");
  await lab.start('us-east-1');
  return { lostIds: lost };
}

describe('rejoin after a failover that lost writes', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('rejoin_keys', fastFailover);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('reports exactly the lost writes, repairs only the divergent rows, and follows the new primary', async () => {
    const { lostIds } = await divergeAndFailOver(lab, store);
    const eu = await lab.client('eu-west-1');
    const reportDir = join(lab.stateDir, 'reports');
    const out = await runRejoin({
      spec: lab.spec,
      specDir: lab.specDir,
      store,
      region: 'us-east-1',
      full: false,
      log: () => {},
      reportDir,
    });
    expect(out.mode).toBe('keys');
    // 7 inserts + 1 update transaction after the cut.
    expect(out.lostTransactions).toBe(8);
    const failover = (await store.listFailoverEvents()).find((e) => e.kind === 'failover');
    expect(failover?.lostTransactions).toBe(8);
    expect(failover?.dataLossBytes).toBeGreaterThan(0);
    const doc = JSON.parse(readFileSync(join(reportDir, `failover-${failover?.id}.json`), 'utf8'));
    const reportedIds = doc.transactions
      .flatMap((t: { changes: { op: string; table: string; values: { id: string } }[] }) => t.changes)
      .filter((c: { op: string; table: string }) => c.op === 'insert' && c.table === 'public.orders')
      .map((c: { values: { id: unknown } }) => String(c.values.id));
    expect(reportedIds.sort()).toEqual([...lostIds].sort());
    expect(existsSync(join(reportDir, `failover-${failover?.id}.sql`))).toBe(true);
    for (const id of lostIds) {
      expect(
        (await eu.query('SELECT count(*)::int n FROM public.orders WHERE id = $1', [id])).rows[0].n,
      ).toBe(0);
    }
    // Divergence-proportional: only the touched rows were rewritten.
    expect(out.repairedRows).toBeLessThan(40);
    await waitFor(async () => sameContent(lab, 'eu-west-1', 'us-east-1'), {
      what: 'us-east-1 identical to eu-west-1',
      timeoutMs: 20_000,
    });
    await eu.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (3, 3, 'streamed')");
    await waitFor(async () => sameContent(lab, 'eu-west-1', 'us-east-1'), {
      what: 'a new write streamed to us-east-1',
      timeoutMs: 20_000,
    });
    const us = await lab.client('us-east-1');
    const slots = await us.query('SELECT count(*)::int n FROM pg_replication_slots WHERE slot_name = $1', [
      slotName(lab.spec.database, 'us-east-1', 'eu-west-1'),
    ]);
    expect(slots.rows[0].n).toBe(0);
    expect(await store.regionStates()).toEqual([]);
    // Failing back is a switchover.
    const back = await runSwitchover({
      spec: lab.spec,
      specDir: lab.specDir,
      store,
      log: () => {},
      force: false,
      trigger: 'test',
      to: 'us-east-1',
    });
    expect(back.to).toBe('us-east-1');
    await us.query(
      "INSERT INTO public.orders (customer_id, total_cents, status) VALUES (4, 4, 'home again')",
    );
    await waitFor(async () => sameContent(lab, 'us-east-1', 'eu-west-1'), {
      what: 'eu-west-1 following us-east-1 again',
      timeoutMs: 20_000,
    });
  });
});

describe('rejoin without the evidence slot', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('rejoin_noslot', fastFailover);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('says the slot is gone, saves the differing rows by comparison before the full copy, and converges', async () => {
    const { lostIds } = await divergeAndFailOver(lab, store);
    const us = await lab.client('us-east-1');
    await us.query('SELECT pg_drop_replication_slot($1)', [
      slotName(lab.spec.database, 'us-east-1', 'eu-west-1'),
    ]);
    const out = await runRejoin({
      spec: lab.spec,
      specDir: lab.specDir,
      store,
      region: 'us-east-1',
      full: false,
      log: () => {},
      reportDir: join(lab.stateDir, 'reports'),
    });
    expect(out.mode).toBe('full');
    expect(out.lostTransactions).toBeNull();
    // Never the only copy destroyed unsaved: the 7 lost inserts (and the rows changed on
    // either side) are in the quarantine schema and in the comparison report.
    expect(out.comparison?.schema).toBe(`regionctl_quarantine_${out.eventId}`);
    const saved = await us.query(
      `SELECT id::text AS id FROM ${out.comparison?.schema}.public__orders WHERE status = 'lost' ORDER BY id`,
    );
    expect(saved.rows.map((r) => r.id)).toEqual([...lostIds].sort((a, b) => Number(a) - Number(b)));
    const report = JSON.parse(readFileSync(out.comparison?.file ?? '', 'utf8'));
    expect(report).toMatchObject({ method: 'comparison', region: 'us-east-1', primary: 'eu-west-1' });
    expect(report.limits).toMatch(/deleted/);
    expect(
      report.tables.find((t: { table: string }) => t.table === 'public.orders')?.saved,
    ).toBeGreaterThanOrEqual(7);
    const ev = await store.getFailoverEvent(out.eventId);
    const steps = await store.failoverSteps(out.eventId);
    expect(steps.find((s) => s.name === 'lost-writes')?.detail).toMatchObject({ slotFound: false });
    expect(ev?.status).toBe('completed');
    await waitFor(async () => sameContent(lab, 'eu-west-1', 'us-east-1'), {
      what: 'us-east-1 identical after the full copy',
      timeoutMs: 20_000,
    });
  });
});

describe('a rejoin killed at each step resumes', () => {
  const STEPS = [
    'fence',
    'lost-writes',
    'changed-on-primary',
    'quarantine',
    'repair-and-subscribe',
    'drop-evidence',
    'read-only',
  ];
  it.each(STEPS.map((s, i) => [s, i]))(
    'killed after %s: the next rejoin finishes the same event',
    async (step, i) => {
      const lab = await privateLab(`rejoin_crash_${i}`, fastFailover);
      const store = await openStore(controlTarget(lab.spec, lab.specDir));
      try {
        await applySpec(lab, store);
        await divergeAndFailOver(lab, store);
        const base = {
          spec: lab.spec,
          specDir: lab.specDir,
          store,
          region: 'us-east-1',
          full: false,
          log: () => {},
          reportDir: join(lab.stateDir, 'reports'),
        };
        await expect(runRejoin({ ...base, crashAfter: String(step) })).rejects.toThrow(/simulated crash/);
        const out = await runRejoin(base);
        const rejoins = (await store.listFailoverEvents()).filter((e) => e.kind === 'rejoin');
        expect(rejoins.map((e) => `${e.id}:${e.status}`)).toEqual([`${out.eventId}:completed`]);
        const steps = await store.failoverSteps(out.eventId);
        expect(steps.map((s) => `${s.name}:${s.status}:${s.attempts}`)).toEqual(
          STEPS.map((s) => `${s}:done:1`),
        );
        expect(
          out.lostTransactions ??
            (await store.listFailoverEvents()).find((e) => e.kind === 'failover')?.lostTransactions,
        ).toBe(8);
        await waitFor(async () => sameContent(lab, 'eu-west-1', 'us-east-1'), {
          what: 'identical after resume',
          timeoutMs: 20_000,
        });
      } finally {
        await store.close();
        await lab.close();
      }
    },
  );
});

describe('automatic rejoin in reconcile --watch', () => {
  it('fails over, then rejoins the old primary on its own when it comes back', async () => {
    const lab = await privateLab('rejoin_auto', fastFailover);
    const store = await openStore(controlTarget(lab.spec, lab.specDir));
    labFenceHook(lab);
    const w = startWatch(lab, store, { autoRejoin: { reportDir: join(lab.stateDir, 'reports') } });
    try {
      // The reconciler's first passes see the lab before its first apply: every region
      // writable, none subscribed. A region that was never a primary is not a stray to
      // fence (and so not a "returning primary" to rejoin, racing the apply).
      await waitFor(async () => w.latest() !== null, { what: 'the first reconcile pass', timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 1500));
      expect(await store.regionStates()).toEqual([]);
      await applySpec(lab, store);
      const us = await lab.client('us-east-1');
      await us.query(
        "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'x' FROM generate_series(1, 30) g",
      );
      await new Promise((r) => setTimeout(r, 3000));
      await lab.kill('us-east-1');
      await waitFor(
        async () =>
          (await store.listFailoverEvents()).some((e) => e.kind === 'failover' && e.status === 'completed'),
        {
          what: 'the automatic failover',
          timeoutMs: 30_000,
        },
      );
      await lab.start('us-east-1');
      await waitFor(
        async () =>
          (await store.listFailoverEvents()).some((e) => e.kind === 'rejoin' && e.status === 'completed'),
        {
          what: 'the automatic rejoin',
          timeoutMs: 40_000,
        },
      );
      const eu = await lab.client('eu-west-1');
      await eu.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (5, 5, 'after')");
      await waitFor(async () => sameContent(lab, 'eu-west-1', 'us-east-1'), {
        what: 'us-east-1 following eu-west-1',
        timeoutMs: 20_000,
      });
    } finally {
      await w.stop();
      await store.close();
      await lab.close();
    }
  });
});

describe('replaying lost writes never drops one silently', () => {
  it('lists a lost insert whose key the new primary reused, and comments it out of the replay SQL', async () => {
    const lab = await privateLab('rejoin_conflict', fastFailover);
    const store = await openStore(controlTarget(lab.spec, lab.specDir));
    try {
      await applySpec(lab, store);
      const { lostIds } = await divergeAndFailOver(lab, store);
      const taken = lostIds[0] ?? '';
      const eu = await lab.client('eu-west-1');
      // Someone on the new primary used that id by hand.
      await eu.query(
        "INSERT INTO public.orders (id, customer_id, total_cents, status) OVERRIDING SYSTEM VALUE VALUES ($1, 1, 1, 'collides')",
        [taken],
      );
      const reportDir = join(lab.stateDir, 'reports');
      const out = await runRejoin({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        region: 'us-east-1',
        full: false,
        log: () => {},
        reportDir,
      });
      const failover = (await store.listFailoverEvents()).find((e) => e.kind === 'failover');
      const conflicts = JSON.parse(
        readFileSync(join(reportDir, `failover-${failover?.id}-conflicts.json`), 'utf8'),
      );
      expect(
        conflicts.conflicts.map((c: { table: string; key: { id: unknown } }) => `${c.table}:${c.key.id}`),
      ).toEqual([`public.orders:${taken}`]);
      expect(conflicts.conflicts[0].current).toMatchObject({ status: 'collides' });
      expect(conflicts.conflicts[0].lost).toMatchObject({ status: 'lost' });
      const sql = readFileSync(join(reportDir, `failover-${failover?.id}.sql`), 'utf8');
      expect(sql).not.toMatch(/ON CONFLICT DO NOTHING/);
      expect(sql.split('\n').filter((l) => l.startsWith('-- CONFLICT'))).toHaveLength(1);
      expect(sql.split('\n').filter((l) => /^INSERT INTO \S*orders\S* /.test(l))).toHaveLength(
        lostIds.length - 1,
      );
      expect(out.lostTransactions).toBe(8);
    } finally {
      await store.close();
      await lab.close();
    }
  }, 120_000);
});
