/**
 * A switchover interrupted at any step is finished by running it again (its done steps
 * are not repeated); one that fails before its target took writes is rolled back — the
 * old primary takes writes again — and recorded failed; one interrupted before that
 * point does not block the failover an outage needs.
 */
import { describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { SimulatedCrash } from '../../src/failover/steps.js';
import { runSwitchover } from '../../src/failover/switchover.js';
import { controlTarget } from '../../src/sql/connect.js';
import { ident } from '../../src/sql/quote.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, checksum, fastFailover, labFenceHook } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const STEPS = [
  'create-publications',
  'fence',
  'wait-catch-up',
  'detach-target',
  'sequences',
  'slots',
  'lift-guard',
  'topology',
  'dns',
  'old-primary-reads',
  'repoint',
];

const base = (lab: PrivateLab, store: Store) => ({
  spec: lab.spec,
  specDir: lab.specDir,
  store,
  log: () => {},
  force: false,
  trigger: 'test',
});

async function seeded(name: string) {
  const lab = await privateLab(name, fastFailover);
  const store = await openStore(controlTarget(lab.spec, lab.specDir));
  await applySpec(lab, store);
  const us = await lab.client('us-east-1');
  await us.query(
    "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'new' FROM generate_series(1, 40) g",
  );
  const eu = await lab.client('eu-west-1');
  await waitFor(async () => (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 40, {
    what: 'orders on eu-west-1',
    timeoutMs: 20_000,
  });
  return { lab, store };
}

/** Can the application role write orders on `region`? (privilege and login) */
async function appCanWrite(lab: PrivateLab, region: string): Promise<boolean> {
  const c = await lab.client(region);
  const role = lab.spec.applicationRoles[0] ?? '';
  const r = await c.query(
    `SELECT rolcanlogin AND has_table_privilege(rolname, 'public.orders', 'INSERT') AS w FROM pg_roles WHERE rolname = $1`,
    [role],
  );
  return Boolean(r.rows[0]?.w);
}

describe('switchover resumes after an interruption', () => {
  it.each(STEPS.map((s, i) => [s, i]))(
    'killed after step %s: running it again finishes it, every step once, nothing lost',
    async (step, i) => {
      const { lab, store } = await seeded(`so_crash_${i}`);
      try {
        await expect(
          runSwitchover({ ...base(lab, store), to: 'eu-west-1', crashAfter: String(step) }),
        ).rejects.toBeInstanceOf(SimulatedCrash);
        expect((await store.unfinishedFailoverEvent())?.event.kind).toBe('switchover');
        const out = await runSwitchover({ ...base(lab, store), to: 'eu-west-1' });
        const events = await store.listFailoverEvents();
        expect(events.map((e) => `${e.kind}:${e.status}`)).toEqual(['switchover:completed']);
        expect(out.eventId).toBe(events[0]?.id);
        const steps = await store.failoverSteps(out.eventId);
        expect(steps.map((s) => `${s.name}:${s.status}:${s.attempts}`)).toEqual(
          STEPS.map((s) => `${s}:done:1`),
        );
        expect(await store.getTopology()).toMatchObject({ primaryRegion: 'eu-west-1' });
        expect(await appCanWrite(lab, 'eu-west-1')).toBe(true);
        expect(await appCanWrite(lab, 'us-east-1')).toBe(false);
        const eu = await lab.client('eu-west-1');
        await eu.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (2, 7, 'after')");
        for (const r of ['us-east-1', 'ap-southeast-1']) {
          const c = await lab.client(r);
          await waitFor(
            async () => (await checksum(eu, 'public.orders')) === (await checksum(c, 'public.orders')),
            {
              what: `${r} following the new primary`,
              timeoutMs: 20_000,
            },
          );
        }
      } finally {
        await store.close();
        await lab.close();
      }
    },
  );

  it('fails to catch up: rolled back, the old primary takes writes again, and a later switchover works', async () => {
    const { lab, store } = await seeded('so_rollback');
    try {
      const eu = await lab.client('eu-west-1');
      const sub = (
        await eu.query(
          "SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND subname LIKE 'rc_sub_%'",
        )
      ).rows[0]?.subname as string;
      await eu.query(`ALTER SUBSCRIPTION ${ident(sub)} DISABLE`);
      const us = await lab.client('us-east-1');
      await us.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (3, 3, 'unseen')");
      await expect(
        runSwitchover({ ...base(lab, store), to: 'eu-west-1', catchUpTimeoutMs: 1500 }),
      ).rejects.toMatchObject({ code: 'E_SWITCHOVER_CATCHUP' });
      expect(await store.unfinishedFailoverEvent()).toBeNull();
      const [ev] = await store.listFailoverEvents();
      expect(ev?.status).toBe('failed');
      const steps = await store.failoverSteps(ev?.id ?? 0);
      expect(steps.filter((s) => s.name.startsWith('undo-')).map((s) => `${s.name}:${s.status}`)).toEqual([
        'undo-publications:done',
        'undo-fence:done',
      ]);
      expect(await appCanWrite(lab, 'us-east-1')).toBe(true);
      expect(await appCanWrite(lab, 'eu-west-1')).toBe(false);
      expect(await store.getTopology()).toMatchObject({ primaryRegion: 'us-east-1' });

      await eu.query(`ALTER SUBSCRIPTION ${ident(sub)} ENABLE`);
      const out = await runSwitchover({ ...base(lab, store), to: 'eu-west-1' });
      expect((await store.getFailoverEvent(out.eventId))?.status).toBe('completed');
      expect(
        (await eu.query("SELECT count(*)::int n FROM public.orders WHERE status = 'unseen'")).rows[0].n,
      ).toBe(1);
    } finally {
      await store.close();
      await lab.close();
    }
  }, 90_000);

  it('interrupted before its target took writes, then the primary dies: the failover supersedes it', async () => {
    const { lab, store } = await seeded('so_superseded');
    try {
      labFenceHook(lab);
      await expect(
        runSwitchover({ ...base(lab, store), to: 'eu-west-1', crashAfter: 'detach-target' }),
      ).rejects.toBeInstanceOf(SimulatedCrash);
      await lab.kill('us-east-1');
      const out = await runFailover({ ...base(lab, store), to: 'eu-west-1' });
      const events = await store.listFailoverEvents();
      expect(events.map((e) => `${e.kind}:${e.status}`)).toEqual(['failover:completed', 'switchover:failed']);
      expect(events[1]?.evidence).toMatchObject({ supersededBy: 'failover' });
      expect(out.to).toBe('eu-west-1');
      expect(await appCanWrite(lab, 'eu-west-1')).toBe(true);
    } finally {
      await store.close();
      await lab.close();
    }
  }, 90_000);
});
