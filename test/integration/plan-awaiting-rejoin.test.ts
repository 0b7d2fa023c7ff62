/**
 * A former primary holds the only copy of the writes it never shipped: after a failover
 * no plan may truncate or re-subscribe it, whether regions.yaml already names the new
 * primary (write-back merged) or not (then the plan is refused as a whole, as apply is).
 */
import { describe, expect, it } from 'vitest';
import { planFor } from '../../src/cli/run-plan.js';
import { runFailover } from '../../src/failover/failover.js';
import { promotedSpec } from '../../src/model/promote.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore } from '../../src/store/store.js';
import { applySpec, fastFailover, labFenceHook } from '../support/failover.js';
import { privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

describe('plan after a failover', () => {
  it('leaves the former primary to rejoin, and refuses a spec that names the old primary', async () => {
    const lab = await privateLab('plan_rejoin', fastFailover);
    const store = await openStore(controlTarget(lab.spec, lab.specDir));
    try {
      labFenceHook(lab);
      await applySpec(lab, store);
      const us = await lab.client('us-east-1');
      const eu = await lab.client('eu-west-1');
      await us.query(
        "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'x' FROM generate_series(1, 10) g",
      );
      await waitFor(
        async () => (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 10,
        {
          what: 'orders on eu-west-1',
          timeoutMs: 20_000,
        },
      );
      await lab.kill('us-east-1');
      await runFailover({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        force: false,
        trigger: 'test',
        to: 'eu-west-1',
      });
      await lab.start('us-east-1');
      expect((await store.regionStates()).map((r) => `${r.region}:${r.state}`)).toEqual(['us-east-1:fenced']);

      // Without the store's facts the merged spec would resync us-east-1 (the old behaviour).
      const merged = promotedSpec(lab.spec, 'eu-west-1');
      const blind = await planFor(merged, lab.specDir);
      expect(blind.actions.some((a) => a.region === 'us-east-1')).toBe(true);

      const plan = await planFor(merged, lab.specDir, store);
      expect(plan.actions.filter((a) => a.region === 'us-east-1')).toEqual([]);
      expect(plan.actions.some((a) => a.kind === 'truncate-tables')).toBe(false);
      const notice = plan.problems.find((p) => p.code === 'W_AWAITING_REJOIN');
      expect(notice).toMatchObject({ severity: 'warning', region: 'us-east-1' });
      expect(notice?.hint).toContain('regionctl rejoin us-east-1');

      const stale = await planFor(lab.spec, lab.specDir, store);
      expect(stale.actions).toEqual([]);
      expect(stale.problems[0]).toMatchObject({ code: 'E_TOPOLOGY_MISMATCH', severity: 'error' });
      expect(stale.problems[0]?.message).toContain('eu-west-1');
    } finally {
      await store.close();
      await lab.close();
    }
  }, 120_000);
});
