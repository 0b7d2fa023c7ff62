/**
 * `regionctl verify` on the shared lab: an identical topology passes; a row changed, a
 * row deleted and a row added by hand on a secondary are reported in the right table and
 * key range; a row the residency filter keeps out of ap-southeast-1, inserted there by
 * hand, is a violation (and not a difference).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { diffTable } from '../../src/verify/diff.js';
import { verifyTopology } from '../../src/verify/verify.js';
import { applySpec, ROOT } from '../support/failover.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

/** The sources, not a possibly stale build. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], {
      cwd: ROOT,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

const QUICK = { settleAttempts: 1, settleTimeoutMs: 500, chunkRows: 300 };

describe('verify', () => {
  let topo: TestTopology;
  let store: Store;
  beforeAll(async () => {
    topo = await testTopology('verify_basic');
    store = await openStore(controlTarget(topo.spec, topo.specDir));
    await applySpec(topo, store);
    const us = await topo.client('us-east-1');
    await us.query(`INSERT INTO public.customers (name, email, residency)
      SELECT 'c' || g, 'c' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 300) g`);
    await us.query(`INSERT INTO public.orders (customer_id, total_cents, status)
      SELECT g % 300 + 1, g, 'new' FROM generate_series(1, 3000) g`);
    await us.query(`INSERT INTO public.products (sku, name, price_cents)
      SELECT 'sku-' || g, 'product ' || g, g FROM generate_series(1, 50) g`);
    const ap = await topo.client('ap-southeast-1');
    const eu = await topo.client('eu-west-1');
    await waitFor(
      async () =>
        (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 3000 &&
        (await ap.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 3000 &&
        (await ap.query('SELECT count(*)::int n FROM public.customers')).rows[0].n === 200,
      { what: 'the initial rows on both secondaries', timeoutMs: 30_000 },
    );
  });
  afterAll(async () => {
    await store?.close();
    await topo?.close();
  });

  it('passes on an identical topology (library and CLI, exit 0)', async () => {
    const r = await verifyTopology(topo.spec, topo.specDir, { store, ...QUICK });
    expect(r.ok).toBe(true);
    expect(r.channels.map((c) => c.to).sort()).toEqual(['ap-southeast-1', 'eu-west-1']);
    const ap = r.channels.find((c) => c.to === 'ap-southeast-1');
    const customers = ap?.tables.find((t) => t.table === 'public.customers');
    // The primary is read through ap's residency filter: 200 of its 300 customers.
    expect(customers).toMatchObject({ equal: true, rowsPrimary: 200, rowsSecondary: 200 });
    expect(customers?.rowFilter).toContain("residency = 'eu'");
    const orders = ap?.tables.find((t) => t.table === 'public.orders');
    expect(orders).toMatchObject({ equal: true, rowsPrimary: 3000, rowsSecondary: 3000 });

    const out = await cli(['verify', '--spec', topo.specPath, '--chunk-rows', '500']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('public.orders: equal');
    expect(out.stdout).toContain('result: every secondary holds exactly what its channel admits');
  });

  it('reports the table and key range of rows changed, deleted and added by hand on a secondary', async () => {
    const eu = await topo.client('eu-west-1');
    await eu.query('UPDATE public.orders SET total_cents = -1 WHERE id = 1234');
    await eu.query('DELETE FROM public.orders WHERE id = 2500');
    await eu.query(
      "INSERT INTO public.orders (id, customer_id, total_cents, status) VALUES (999999, 1, 1, 'extra')",
    );
    try {
      const r = await verifyTopology(topo.spec, topo.specDir, { store, ...QUICK });
      expect(r.ok).toBe(false);
      expect(r.differences).toBe(1);
      expect(r.violations).toBe(0);
      const euCh = r.channels.find((c) => c.to === 'eu-west-1');
      const bad = euCh?.tables.filter((t) => !t.equal).map((t) => t.table);
      expect(bad).toEqual(['public.orders']);
      expect(r.channels.find((c) => c.to === 'ap-southeast-1')?.tables.every((t) => t.equal)).toBe(true);
      const orders = euCh?.tables.find((t) => t.table === 'public.orders');
      expect(orders?.rows.map((x) => `${x.key.id}:${x.kind}`)).toEqual([
        '1234:different',
        '2500:only-a',
        '999999:only-b',
      ]);
      // Each differing row lies in a reported range, and the ranges are narrow.
      for (const id of [1234, 2500, 999999]) {
        const inRange = orders?.ranges.some(
          (g) => (g.lo === null || Number(g.lo[0]) < id) && (g.hi === null || id <= Number(g.hi[0])),
        );
        expect(inRange, `id ${id} in a range`).toBe(true);
      }
      for (const g of orders?.ranges ?? []) expect(Math.max(g.rowsA, g.rowsB)).toBeLessThanOrEqual(301);

      // diffTable fetches the differing rows themselves on request.
      const us = await topo.client('us-east-1');
      const d = await diffTable(us, eu, 'public.orders', { fetchRows: true, chunkRows: 1000 });
      const changed = d.rows.find((x) => x.key.id === '1234');
      expect(changed?.a).toMatchObject({ total_cents: 1234 });
      expect(changed?.b).toMatchObject({ total_cents: -1 });

      const out = await cli([
        'verify',
        '--spec',
        topo.specPath,
        '--tables',
        'public.orders,products',
        '--format',
        'json',
      ]);
      expect(out.code, out.stderr).toBe(1);
      const json = JSON.parse(out.stdout);
      expect(json.differences).toBe(1);
      expect(
        json.channels.flatMap((c: { tables: { table: string }[] }) => c.tables.map((t) => t.table)),
      ).toEqual(expect.arrayContaining(['public.orders', 'public.products']));
      const text = await cli(['verify', '--spec', topo.specPath, '--tables', 'public.orders']);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/public\.orders: DIFFERS/);
      expect(text.stdout).toMatch(/range id in \(\d+, \d+\]/);
      expect(text.stdout).toContain('id=1234: different');
    } finally {
      await eu.query('UPDATE public.orders SET total_cents = 1234 WHERE id = 1234');
      const us = await topo.client('us-east-1');
      const row = (
        await us.query('SELECT *, created_at::text AS created_at FROM public.orders WHERE id = 2500')
      ).rows[0];
      await eu.query(
        'INSERT INTO public.orders (id, customer_id, total_cents, status, created_at) VALUES ($1, $2, $3, $4, $5)',
        [row.id, row.customer_id, row.total_cents, row.status, row.created_at],
      );
      await eu.query('DELETE FROM public.orders WHERE id = 999999');
    }
  });

  it('reports a row the residency filter excludes, inserted by hand on the filtered secondary, as a violation', async () => {
    const ap = await topo.client('ap-southeast-1');
    const r0 = await ap.query(
      "INSERT INTO public.customers (id, name, email, residency) VALUES (888888, 'leak', 'leak@example.eu', 'eu') RETURNING id",
    );
    expect(r0.rowCount).toBe(1);
    try {
      const r = await verifyTopology(topo.spec, topo.specDir, {
        store,
        ...QUICK,
        tables: ['public.customers'],
      });
      const apCh = r.channels.find((c) => c.to === 'ap-southeast-1');
      expect(apCh?.violations).toEqual([
        expect.objectContaining({
          table: 'public.customers',
          kind: 'row-filter',
          count: 1,
          keys: [{ id: '888888' }],
        }),
      ]);
      // Not a difference too: the comparison reads both sides through the filter.
      expect(apCh?.tables.find((t) => t.table === 'public.customers')?.equal).toBe(true);
      expect(r.violations).toBe(1);
      expect(r.ok).toBe(false);
      const out = await cli(['verify', '--spec', topo.specPath, '--tables', 'customers']);
      expect(out.code).toBe(1);
      expect(out.stdout).toContain('VIOLATION public.customers: 1 row(s)');
    } finally {
      await ap.query('DELETE FROM public.customers WHERE id = 888888');
    }
  });

  it('exits 2 on a table regions.yaml does not replicate', async () => {
    const out = await cli(['verify', '--spec', topo.specPath, '--tables', 'public.nope']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('E_USAGE_TABLES');
  });
});
