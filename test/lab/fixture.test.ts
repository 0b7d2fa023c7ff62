/** The per-test isolation itself: re-creating a topology clears subscriptions and slots. */
import { describe, expect, it } from 'vitest';
import { conninfo, regionTarget } from '../../src/sql/connect.js';
import { literal } from '../../src/sql/quote.js';
import { testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

describe('testTopology', () => {
  it('re-creates a database that has subscriptions and replication slots', async () => {
    const first = await testTopology('lab_fixture_reset', (s) => {
      s.name = 'fixture';
    });
    try {
      expect(first.spec.database).toBe('t_lab_fixture_reset');
      expect(first.spec.controlStore.database).toBe('c_lab_fixture_reset');
      expect(first.spec.applicationRoles).toEqual(['app_lab_fixture_reset']);
      expect(first.spec.name).toBe('fixture');
      const us = await first.client('us-east-1');
      const eu = await first.client('eu-west-1');
      await us.query('CREATE PUBLICATION p FOR TABLE public.products');
      await us.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('a', 'A', 1)");
      const conn = conninfo(regionTarget(first.spec, 'us-east-1', first.specDir));
      await eu.query(
        `CREATE SUBSCRIPTION s CONNECTION ${literal(conn)} PUBLICATION p WITH (slot_name = 'fixture_reset_slot')`,
      );
      await waitFor(async () => (await eu.query('SELECT 1 FROM public.products')).rowCount === 1, {
        what: 'product copied to eu-west-1',
      });
      const ctl = await first.control();
      await ctl.query('CREATE TABLE leftover (x int)');
    } finally {
      await first.close();
    }

    const second = await testTopology('lab_fixture_reset');
    try {
      const us = await second.client('us-east-1');
      const eu = await second.client('eu-west-1');
      expect((await us.query('SELECT 1 FROM public.products')).rowCount).toBe(0);
      // pg_subscription is cluster-wide: other tests' subscriptions are in it too.
      const subs = await eu.query(
        'SELECT 1 FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
      );
      expect(subs.rowCount).toBe(0);
      const slots = await us.query(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'fixture_reset_slot'",
      );
      expect(slots.rowCount).toBe(0);
      const ctl = await second.control();
      expect((await ctl.query("SELECT 1 FROM pg_tables WHERE tablename = 'leftover'")).rowCount).toBe(0);
    } finally {
      await second.close();
    }
  });
});
