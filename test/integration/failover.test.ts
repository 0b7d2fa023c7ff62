/**
 * Failover on the real lab, under continuous load: kill the primary → the reconciler
 * detects it (probes + corroboration), fences, promotes the most advanced candidate,
 * re-forms the other channel exactly, moves the topology and DNS; the writes the
 * ledger says were acknowledged but never shipped are exactly the ones after the cut.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { readLedger } from '../../src/lab/ledger.js';
import { runLoad } from '../../src/lab/load.js';
import { readZoneFile, zoneFilePath } from '../../src/lab/zone.js';
import { compareLsn } from '../../src/model/lsn.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, checksum, fastFailover, labFenceHook, startWatch } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const REPLICATED = ['public.orders', 'public.order_items', 'public.products'];

describe('automatic failover under load', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('fo_auto', fastFailover);
    labFenceHook(lab);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('kills the primary, fails over to the most advanced candidate, and accounts for every lost write', async () => {
    const w = startWatch(lab, store);
    const load = runLoad({
      spec: lab.spec,
      specDir: lab.specDir,
      stateDir: lab.stateDir,
      rate: 40,
      durationSec: 14,
    });
    try {
      await waitFor(async () => (await store.listChannels()).some((c) => c.status === 'active'), {
        what: 'a healthy channel before the outage',
        timeoutMs: 20_000,
      });
      await new Promise((r) => setTimeout(r, 2000));
      const killedAt = Date.now();
      await lab.kill('us-east-1');
      await waitFor(async () => (await store.listFailoverEvents()).some((e) => e.status === 'completed'), {
        what: 'a completed failover event',
        timeoutMs: 30_000,
        intervalMs: 200,
      });
      const ev = (await store.listFailoverEvents())[0];
      expect(ev?.toRegion).toBe('eu-west-1');
      expect(ev?.fromRegion).toBe('us-east-1');
      const total = ev?.completedAt ? ev.completedAt.getTime() - killedAt : null;
      console.info(`failover: kill → event completed in ${total} ms; event ${JSON.stringify(ev?.evidence)}`);
      const topo = await store.getTopology();
      expect(topo).toMatchObject({ primaryRegion: 'eu-west-1', epoch: 1 });
      // The fence hook ran (the old primary was unreachable): DNS moved.
      const zone = readZoneFile(zoneFilePath(lab.spec, lab.specDir) ?? '');
      expect(zone?.records[lab.spec.dns?.primaryRecord ?? '']?.region).toBe('eu-west-1');
      const steps = await store.failoverSteps(ev?.id ?? 0);
      console.info(`steps: ${steps.map((x) => `${x.name}=${(x.detail as { ms?: number }).ms}ms`).join(' ')}`);
      expect(steps.map((s) => `${s.seq}:${s.status}`)).toEqual(
        Array.from({ length: 10 }, (_, i) => `${i + 1}:done`),
      );
      await load;
    } finally {
      await w.stop();
    }
    const ev = (await store.listFailoverEvents())[0];
    const cutLsn = (ev?.evidence as { cutLsn: string } | undefined)?.cutLsn ?? '0/0';
    // The ledger: every write us-east-1 acknowledged after the cut is lost, none before.
    const ledger = readLedger(lab.stateDir, { database: lab.spec.database }).filter(
      (e) => e.region === 'us-east-1' && e.commitLsn !== null && e.commitLsnExact,
    );
    const eu = await lab.client('eu-west-1');
    const present = async (id: string) => {
      const [table, pk] = id.split(':');
      if (!table || !REPLICATED.concat('public.customers').includes(table)) return null;
      const r = await eu.query(`SELECT 1 FROM ${table} WHERE id = $1`, [pk]);
      return r.rowCount === 1;
    };
    let lost = 0;
    let kept = 0;
    for (const e of ledger.filter((x) => x.op === 'insert')) {
      const p = await present(e.id);
      if (p === null) continue;
      if (compareLsn(e.commitLsn ?? '0/0', cutLsn) > 0) {
        expect(p, `${e.id} committed after the cut must be absent`).toBe(false);
        lost++;
      } else {
        expect(p, `${e.id} committed before the cut must be present`).toBe(true);
        kept++;
      }
    }
    console.info(
      `ledger: ${kept} acknowledged inserts kept, ${lost} lost after cut ${cutLsn}; estimate ${ev?.estimatedLossBytes} B`,
    );
    expect(kept).toBeGreaterThan(50);
    // The third region follows the new primary with identical content for what it admits.
    const ap = await lab.client('ap-southeast-1');
    await waitFor(
      async () => {
        for (const t of REPLICATED) if ((await checksum(eu, t)) !== (await checksum(ap, t))) return false;
        return (
          (await checksum(eu, 'public.customers', "residency <> 'eu'")) ===
          (await checksum(ap, 'public.customers'))
        );
      },
      { what: 'ap-southeast-1 identical to the new primary', timeoutMs: 30_000 },
    );
    expect((await ap.query("SELECT count(*) n FROM public.customers WHERE residency = 'eu'")).rows[0].n).toBe(
      '0',
    );
    // Writes after the failover landed on the new primary.
    const after = readLedger(lab.stateDir, { database: lab.spec.database }).filter(
      (e) => e.region === 'eu-west-1',
    );
    expect(after.length).toBeGreaterThan(0);
  });
});

describe('no failover on a partition between the reconciler and the primary', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('fo_partition', fastFailover);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('reports the partition and does not fail over while the secondaries still hear the primary', async () => {
    // The reconciler's view of us-east-1 is a dead port; the subscriptions still reach it.
    const cut = structuredClone(lab.spec);
    const us = cut.regions.find((r) => r.name === 'us-east-1');
    if (!us) throw new Error('fixture');
    us.endpoint.port = 1;
    const w = startWatch(lab, store, { spec: cut });
    try {
      await waitFor(async () => w.logs.some((l) => l.includes('partition')), {
        what: 'the partition report',
        timeoutMs: 20_000,
      });
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      await w.stop();
    }
    expect(await store.listFailoverEvents()).toEqual([]);
    expect((await store.openAlerts()).map((a) => a.key)).toContain('partition:us-east-1');
    expect((await store.getTopology())?.primaryRegion).toBe('us-east-1');
  });
});

describe('the RPO guard', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('fo_rpo', (s) => {
      fastFailover(s);
      for (const c of s.channels) c.rpo = { alertSeconds: 0.5, failoverMaxLagSeconds: 1 };
    });
    labFenceHook(lab);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('refuses a candidate lagging beyond its threshold, then --force promotes it and records the loss', async () => {
    const w = startWatch(lab, store);
    const eu = await lab.client('eu-west-1');
    try {
      await waitFor(async () => (await store.listChannels()).length === 2, {
        what: 'channels recorded',
        timeoutMs: 20_000,
      });
      await new Promise((r) => setTimeout(r, 1500));
      await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await w.stop();
    }
    const us = await lab.client('us-east-1');
    await us.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('late', 'late', 1)");
    await lab.kill('us-east-1');
    const base = {
      spec: lab.spec,
      specDir: lab.specDir,
      store,
      log: () => {},
      trigger: 'test',
      to: 'eu-west-1',
    };
    await expect(runFailover({ ...base, force: false })).rejects.toMatchObject({
      code: 'E_FAILOVER_REFUSED',
    });
    const refused = (await store.listFailoverEvents())[0];
    expect(refused?.status).toBe('refused');
    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 ENABLE').catch(() => {});
    const out = await runFailover({ ...base, force: true });
    expect(out.to).toBe('eu-west-1');
    const ev = await store.getFailoverEvent(out.eventId);
    expect(ev?.forced).toBe(true);
    expect(ev?.estimatedLossBytes).toBeGreaterThan(0);
    expect((await eu.query("SELECT count(*) n FROM public.products WHERE sku = 'late'")).rows[0].n).toBe('0');
  });
});
