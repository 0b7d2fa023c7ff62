/** The lab's own life cycle, on a private lab: these tests stop and start servers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labStatus, labUp } from '../../src/lab/lab.js';
import { readLedger } from '../../src/lab/ledger.js';
import { runLoad } from '../../src/lab/load.js';
import { connect, regionTarget } from '../../src/sql/connect.js';
import { type PrivateLab, privateLab } from '../support/topology.js';

describe('lab life cycle', () => {
  let lab: PrivateLab;
  beforeAll(async () => {
    lab = await privateLab('lab_lifecycle');
  });
  afterAll(() => lab?.close());

  it('up is idempotent: a second up leaves running servers alone', async () => {
    const before = await labStatus(lab.spec, { specDir: lab.specDir, stateDir: lab.stateDir });
    const r = await labUp(lab.spec, { specDir: lab.specDir, stateDir: lab.stateDir });
    expect(r.servers.map((s) => s.action)).toEqual(lab.spec.regions.map(() => 'running').concat('running'));
    const after = await labStatus(lab.spec, { specDir: lab.specDir, stateDir: lab.stateDir });
    expect(after.servers.map((s) => s.pid)).toEqual(before.servers.map((s) => s.pid));
    expect(after.servers.every((s) => s.running && s.reachable)).toBe(true);
  });

  it('kill makes a region unreachable; start brings it back with its data', async () => {
    const region = 'eu-west-1';
    const c = await lab.client(region);
    await c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('kept', 'Kept', 100)");
    await c.end();

    await lab.kill(region);
    const err = await connect(regionTarget(lab.spec, region, lab.specDir), { connectTimeoutMs: 1000 }).then(
      async (x) => {
        await x.end();
        return undefined;
      },
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toBe('ECONNREFUSED');
    const st = await labStatus(lab.spec, { specDir: lab.specDir, stateDir: lab.stateDir });
    expect(st.servers.find((s) => s.name === region)).toMatchObject({ running: false, reachable: false });
    // The other regions are untouched.
    expect(st.servers.filter((s) => s.name !== region).every((s) => s.running)).toBe(true);

    await lab.start(region);
    const back = await lab.client(region);
    const r = await back.query("SELECT name FROM public.products WHERE sku = 'kept'");
    expect(r.rows).toEqual([{ name: 'Kept' }]);
  });

  it('load keeps going through a primary outage; every acknowledged commit survives the kill', async () => {
    const load = runLoad({
      spec: lab.spec,
      specDir: lab.specDir,
      stateDir: lab.stateDir,
      rate: 50,
      durationSec: 4,
    });
    await new Promise((r) => setTimeout(r, 1000));
    await lab.kill('us-east-1');
    await new Promise((r) => setTimeout(r, 1000));
    await lab.start('us-east-1');
    const stats = await load;
    expect(stats.failed).toBeGreaterThan(0);
    expect(stats.committed).toBeGreaterThan(50);
    const ledger = readLedger(lab.stateDir, { database: lab.spec.database });
    expect(new Set(ledger.map((e) => e.txid)).size).toBe(stats.committed);
    const orders = ledger.filter((e) => e.table === 'public.orders').map((e) => e.id.split(':')[1]);
    const us = await lab.client('us-east-1');
    const r = await us.query('SELECT count(*)::int AS n FROM public.orders WHERE id = ANY($1::bigint[])', [
      orders,
    ]);
    expect(r.rows[0].n).toBe(orders.length);
  });
});
