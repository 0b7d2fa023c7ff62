/**
 * A reconciler killed at any step of a failover: on restart (a new leader) the same
 * failover is resumed and finished — exactly once: one event, every step done once.
 */
import { describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { SimulatedCrash } from '../../src/failover/steps.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore } from '../../src/store/store.js';
import { applySpec, checksum, fastFailover, labFenceHook, startWatch } from '../support/failover.js';
import { privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const STEPS = [
  'fence',
  'detach-candidate',
  'advance-sequences',
  'detach-others',
  'create-publications',
  'follow-exact',
  'lift-guard',
  'topology',
  'dns',
  'follow-resync',
];

describe('failover resumes after the reconciler dies', () => {
  it.each(STEPS.map((s, i) => [s, i]))(
    'killed after step %s: completes on restart, exactly once',
    async (step, i) => {
      const lab = await privateLab(`fo_crash_${i}`, fastFailover);
      const store = await openStore(controlTarget(lab.spec, lab.specDir));
      try {
        labFenceHook(lab);
        await applySpec(lab, store);
        const us = await lab.client('us-east-1');
        await us.query(
          "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'new' FROM generate_series(1, 50) g",
        );
        const eu = await lab.client('eu-west-1');
        await waitFor(
          async () => (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 50,
          {
            what: 'orders on eu-west-1',
            timeoutMs: 20_000,
          },
        );
        await lab.kill('us-east-1');
        await expect(
          runFailover({
            spec: lab.spec,
            specDir: lab.specDir,
            store,
            log: () => {},
            force: false,
            trigger: 'test',
            to: 'eu-west-1',
            crashAfter: String(step),
          }),
        ).rejects.toBeInstanceOf(SimulatedCrash);
        expect((await store.unfinishedFailoverEvent())?.event.status).toBe('running');
        const w = startWatch(lab, store);
        try {
          await waitFor(async () => (await store.listFailoverEvents())[0]?.status === 'completed', {
            what: 'the resumed failover to complete',
            timeoutMs: 30_000,
          });
        } finally {
          await w.stop();
        }
        const events = await store.listFailoverEvents();
        expect(events.length).toBe(1);
        const steps = await store.failoverSteps(events[0]?.id ?? 0);
        expect(steps.map((s) => `${s.name}:${s.status}:${s.attempts}`)).toEqual(
          STEPS.map((s) => `${s}:done:1`),
        );
        expect(await store.getTopology()).toMatchObject({ primaryRegion: 'eu-west-1', epoch: 1 });
        const ap = await lab.client('ap-southeast-1');
        await eu.query("INSERT INTO public.orders (customer_id, total_cents, status) VALUES (2, 7, 'after')");
        await waitFor(
          async () => (await checksum(eu, 'public.orders')) === (await checksum(ap, 'public.orders')),
          {
            what: 'ap-southeast-1 following the new primary',
            timeoutMs: 20_000,
          },
        );
      } finally {
        await store.close();
        await lab.close();
      }
    },
  );
});
