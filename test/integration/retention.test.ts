/**
 * The slots kept for a former primary's rejoin are bounded (retention in regions.yaml):
 * past the limit the leading reconciler alerts; with onExceeded: drop it drops them and
 * records that in the failover event, and the rejoin then reports by comparison.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logSink } from '../../src/alerts/sink.js';
import { runFailover } from '../../src/failover/failover.js';
import { rejoinSlotName } from '../../src/model/names.js';
import { reconcileOnce } from '../../src/reconcile/reconcile.js';
import { runRejoin } from '../../src/rejoin/rejoin.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore } from '../../src/store/store.js';
import { applySpec, fastFailover, labFenceHook } from '../support/failover.js';
import { privateLab } from '../support/topology.js';

describe('retention of the slots kept for a rejoin', () => {
  it('alerts past maxBytes, drops with onExceeded: drop, and the rejoin compares instead', async () => {
    const lab = await privateLab('retention', (spec) => {
      fastFailover(spec);
      spec.retention = { maxBytes: 1048576, onExceeded: 'alert' };
    });
    const store = await openStore(controlTarget(lab.spec, lab.specDir));
    try {
      labFenceHook(lab);
      await applySpec(lab, store);
      await lab.kill('us-east-1');
      const fo = await runFailover({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        force: true,
        trigger: 'test',
        to: 'eu-west-1',
      });
      const eu = await lab.client('eu-west-1');
      const slot = rejoinSlotName(lab.spec.database, 'eu-west-1', 'us-east-1');
      const slotThere = async () =>
        (await eu.query('SELECT count(*)::int n FROM pg_replication_slots WHERE slot_name = $1', [slot]))
          .rows[0].n;
      expect(await slotThere()).toBe(1);
      // The new primary writes ~5 MB of WAL while us-east-1 stays away.
      await eu.query(
        "INSERT INTO public.products (sku, name, price_cents) SELECT 'r' || g, repeat('x', 200), g FROM generate_series(1, 20000) g",
      );
      const pass = () =>
        reconcileOnce({ spec: lab.spec, specDir: lab.specDir, store, sink: logSink(() => {}), leader: true });
      const first = await pass();
      const key = `retention:eu-west-1:${slot}`;
      expect(first.alertsRaised).toContain(key);
      expect(await slotThere()).toBe(1);
      const alert = (await store.openAlerts()).find((a) => a.key === key);
      expect(alert?.severity).toBe('critical');
      expect(alert?.message).toMatch(/retains \d+ bytes \(limit 1048576\).*regionctl rejoin us-east-1/);

      lab.spec.retention = { maxBytes: 1048576, onExceeded: 'drop' };
      await pass();
      expect(await slotThere()).toBe(0);
      const ev = await store.getFailoverEvent(fo.eventId);
      expect(Object.keys(ev?.evidence ?? {})).toContain(`retentionDropped:${slot}`);

      await lab.start('us-east-1');
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
      expect(out.comparison?.file).toMatch(/comparison\.json$/);
    } finally {
      await store.close();
      await lab.close();
    }
  }, 120_000);
});
