/**
 * Read routing on the lab: a replica whose subscription is disabled loses its read
 * record within one reconcile pass and regains it after catching up (after the
 * hysteresis passes); `regionctl route` prints the table; read-your-writes through the
 * client library never returns stale data across thousands of write/read pairs under
 * load, while most reads still go to a replica.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSink } from '../../src/alerts/sink.js';
import { RegionctlClient } from '../../src/client/index.js';
import { appRolePasswordFile } from '../../src/lab/demo-schema.js';
import { runLoad } from '../../src/lab/load.js';
import { readZoneFile, zoneFilePath } from '../../src/lab/zone.js';
import { reconcileOnce } from '../../src/reconcile/reconcile.js';
import { HeartbeatWriter } from '../../src/reconcile/watch.js';
import { readRoutingDocument } from '../../src/routing/document.js';
import { RoutingPublisher } from '../../src/routing/publish.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, cliCommand } from '../support/failover.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

function tight(spec: RegionsSpec): void {
  spec.heartbeat = { intervalSeconds: 0.5 };
  spec.readRouting = { stalenessBudgetSeconds: 2, classes: { catalog: 30 }, recoveryPasses: 3 };
}

function setup(name: string) {
  const ctx = {} as {
    topo: TestTopology;
    store: Store;
    hb: HeartbeatWriter;
    publisher: RoutingPublisher;
  };
  beforeAll(async () => {
    ctx.topo = await testTopology(name, tight);
    ctx.store = await openStore(controlTarget(ctx.topo.spec, ctx.topo.specDir));
    await applySpec(ctx.topo, ctx.store);
    ctx.hb = new HeartbeatWriter(ctx.topo.spec, ctx.topo.specDir, () => 0);
    ctx.hb.start();
    ctx.publisher = new RoutingPublisher({
      spec: ctx.topo.spec,
      specDir: ctx.topo.specDir,
      store: ctx.store,
    });
  });
  afterAll(async () => {
    await ctx.hb?.stop();
    await ctx.store?.close();
    await ctx.topo?.close();
  });
  /** One reconcile pass as the leader, then publish: what `reconcile --watch` does each pass. */
  const pass = async () => {
    const r = await reconcileOnce({
      spec: ctx.topo.spec,
      specDir: ctx.topo.specDir,
      store: ctx.store,
      sink: logSink(() => {}),
      leader: true,
    });
    const p = await ctx.publisher.publish(r);
    if (!p) throw new Error('not published');
    return p;
  };
  const record = (region: string) => {
    const zone = readZoneFile(zoneFilePath(ctx.topo.spec, ctx.topo.specDir) ?? '');
    return zone?.records[ctx.topo.spec.dns?.readRecords?.[region] ?? '']?.region;
  };
  return { ctx, pass, record };
}

describe('read records follow replica health', () => {
  const { ctx, pass, record } = setup('route_lag');

  it('a replica with its subscription disabled loses its read record in one pass and regains it after catching up', async () => {
    await waitFor(async () => (await pass()).document.routes['eu-west-1']?.default?.region === 'eu-west-1', {
      what: 'eu-west-1 serving its own reads',
      timeoutMs: 20_000,
      intervalMs: 300,
    });
    expect(record('eu-west-1')).toBe('eu-west-1');
    expect(record('ap-southeast-1')).toBe('ap-southeast-1');
    expect(record('us-east-1')).toBe('us-east-1');

    const eu = await ctx.topo.client('eu-west-1');
    const us = await ctx.topo.client('us-east-1');
    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
    // Writes it will have to catch up on.
    for (let i = 0; i < 50; i++) {
      await us.query("INSERT INTO public.products (sku, name, price_cents) VALUES ($1, 'lag', 1)", [
        `lag-${i}`,
      ]);
    }
    const out = await pass();
    expect(out.moved).toContainEqual({
      record: ctx.topo.spec.dns?.readRecords?.['eu-west-1'],
      region: 'eu-west-1',
      from: 'eu-west-1',
      to: 'us-east-1',
    });
    expect(record('eu-west-1')).toBe('us-east-1');
    const euDoc = out.document.regions.find((r) => r.name === 'eu-west-1');
    expect(euDoc?.serving.default).toBe(false);
    expect(euDoc?.why.default).toMatch(/channel failed/);
    // The document beside the zone file says the same, and the control store keeps it.
    expect(readRoutingDocument(ctx.publisher.path)?.routes['eu-west-1']?.default?.region).toBe('us-east-1');

    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 ENABLE');
    await waitFor(
      async () =>
        (await eu.query("SELECT count(*)::int n FROM public.products WHERE sku LIKE 'lag-%'")).rows[0].n ===
        50,
      { what: 'eu-west-1 caught up', timeoutMs: 20_000 },
    );
    // Caught up: still out until recoveryPasses good passes in a row.
    const passes: string[] = [];
    await waitFor(
      async () => {
        const p = await pass();
        passes.push(p.document.regions.find((r) => r.name === 'eu-west-1')?.why.default ?? 'serving');
        return record('eu-west-1') === 'eu-west-1';
      },
      { what: 'eu-west-1 back in its read record', timeoutMs: 30_000, intervalMs: 200 },
    );
    console.info(`passes after catching up: ${passes.join(' | ')}`);
    expect(passes.filter((w) => w.startsWith('recovering')).length).toBeGreaterThanOrEqual(2);
  });

  it('regionctl route prints the table, one choice, and refuses an unknown class', async () => {
    const [node, ...args] = cliCommand();
    const base = [...args, 'route', '--spec', ctx.topo.specPath];
    const one = await run(node ?? 'node', [...base, '--near', '48.85,2.35', '--format', 'json']);
    const parsed = JSON.parse(one.stdout);
    expect(parsed.choice).toMatchObject({ region: 'eu-west-1', kind: 'replica' });
    expect(parsed.epoch).toBe(0);
    const table = await run(node ?? 'node', [...base]);
    expect(table.stdout).toMatch(/primary us-east-1, epoch 0/);
    expect(table.stdout).toMatch(/ap-southeast-1 +replica/);
    const cls = await run(node ?? 'node', [...base, '--region', 'ap-southeast-1', '--class', 'catalog']);
    expect(cls.stdout).toMatch(/^ap-southeast-1 \(replica/);
    const bad = await run(node ?? 'node', [...base, '--region', 'eu-west-1', '--class', 'nope']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr).toMatch(/E_ROUTE_CLASS/);
  });
});

describe('read-your-writes through the client library', () => {
  const { ctx, pass } = setup('route_ryw');

  it('never returns stale data across 2000 write/read pairs under load, most reads on the replica', async () => {
    await waitFor(async () => (await pass()).document.routes['eu-west-1']?.default?.region === 'eu-west-1', {
      what: 'eu-west-1 serving its own reads',
      timeoutMs: 20_000,
      intervalMs: 300,
    });
    const role = ctx.topo.spec.applicationRoles[0] ?? '';
    const client = new RegionctlClient({
      routing: ctx.publisher.path,
      region: 'eu-west-1',
      connection: {
        user: role,
        password: readFileSync(appRolePasswordFile(ctx.topo.stateDir, role), 'utf8').trim(),
      },
      maxWaitMs: 2000,
    });
    const ac = new AbortController();
    const load = runLoad({
      spec: ctx.topo.spec,
      specDir: ctx.topo.specDir,
      stateDir: ctx.topo.stateDir,
      rate: 150,
      durationSec: 120,
      signal: ac.signal,
    });
    // The reconciler keeps publishing while the pairs run (as `reconcile --watch` would).
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        await pass().catch(() => {});
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    const SESSIONS = 4;
    const PAIRS = 500;
    let stale = 0;
    let checked = 0;
    let plainStale = 0;
    let tokenStats = structuredClone(client.stats);
    const t0 = performance.now();
    try {
      await Promise.all(
        Array.from({ length: SESSIONS }, async (_, s) => {
          for (let i = 0; i < PAIRS; i++) {
            const sku = `ryw-${s}-${i}`;
            const { token } = await client.write((c) =>
              c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ($1, 'ryw', $2)", [
                sku,
                i,
              ]),
            );
            const r = await client.read<{ price_cents: number }>(
              'SELECT price_cents FROM public.products WHERE sku = $1',
              { params: [sku], token },
            );
            checked++;
            if (r.rows[0]?.price_cents !== i) stale++;
          }
        }),
      );
      tokenStats = structuredClone(client.stats);
      // The same pairs without a token, for contrast: how often a plain replica read misses the write.
      for (let i = 0; i < 300; i++) {
        const sku = `plain-${i}`;
        await client.write((c) =>
          c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ($1, 'plain', 1)", [sku]),
        );
        const r = await client.read('SELECT 1 FROM public.products WHERE sku = $1', { params: [sku] });
        if (r.rowCount === 0) plainStale++;
      }
    } finally {
      publishing = false;
      ac.abort();
      await publisher;
      await load;
      await client.end();
    }
    const ms = performance.now() - t0;
    const s = tokenStats;
    const total = s.replicaReads + s.primaryReads;
    console.info(`without a token: ${plainStale}/300 reads right after the write missed it`);
    console.info(
      `read-your-writes: ${checked} pairs in ${Math.round(ms)} ms, stale ${stale}; replica ${s.replicaReads}/${total} ` +
        `(${((100 * s.replicaReads) / total).toFixed(1)} %), by reason ${JSON.stringify(s.byReason)}`,
    );
    expect(checked).toBe(SESSIONS * PAIRS);
    expect(stale).toBe(0);
    expect(s.replicaReads / total).toBeGreaterThan(0.8);
  });

  it('reads without a token go to the replica; a class with a larger budget too', async () => {
    const role = ctx.topo.spec.applicationRoles[0] ?? '';
    const events: string[] = [];
    const client = new RegionctlClient({
      routing: ctx.publisher.path,
      near: { lat: 1.3, lon: 103.9 },
      connection: {
        user: role,
        password: readFileSync(appRolePasswordFile(ctx.topo.stateDir, role), 'utf8').trim(),
      },
      onRead: (e) => events.push(`${e.region}:${e.reason}`),
    });
    try {
      await client.read('SELECT 1');
      await client.read((c) => c.query('SELECT 1'), { class: 'catalog' });
      expect(events).toEqual(['ap-southeast-1:replica', 'ap-southeast-1:replica']);
      await expect(client.read('SELECT 1', { class: 'nope' })).rejects.toMatchObject({
        code: 'E_ROUTE_CLASS',
      });
      await expect(client.read('SELECT 1', { token: 'garbage' })).rejects.toMatchObject({
        code: 'E_TOKEN_INVALID',
      });
    } finally {
      await client.end();
    }
  });
});
