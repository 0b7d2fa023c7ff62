/**
 * Lag against RPO on the real lab: an idle primary shows ~0 lag; lag rises when apply
 * is blocked and the status goes active → lagging → failed → active with one alert
 * raised and one resolved; lag in seconds is within 1 s of the truth the load ledger
 * gives; a killed secondary fails its channel and recovers when it returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AlertEvent, logSink } from '../../src/alerts/sink.js';
import { applyPlan } from '../../src/apply/apply.js';
import { readLedger } from '../../src/lab/ledger.js';
import { runLoad } from '../../src/lab/load.js';
import { desiredState } from '../../src/model/desired.js';
import { observe } from '../../src/observe/observe.js';
import { planSteadyState } from '../../src/plan/plan.js';
import { type ReconcileResult, reconcileOnce } from '../../src/reconcile/reconcile.js';
import { HeartbeatWriter } from '../../src/reconcile/watch.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { controlTarget } from '../../src/sql/connect.js';
import { storeJournal } from '../../src/store/journal.js';
import { openStore, type Store } from '../../src/store/store.js';
import { type PrivateLab, privateLab, type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

function tight(spec: RegionsSpec): void {
  spec.heartbeat = { intervalSeconds: 0.5 };
  for (const c of spec.channels) c.rpo = { alertSeconds: 1, failoverMaxLagSeconds: 5 };
}

async function applySpec(topo: TestTopology, store: Store): Promise<void> {
  const plan = planSteadyState(desiredState(topo.spec), await observe(topo.spec, topo.specDir));
  await applyPlan(plan, {
    spec: topo.spec,
    specDir: topo.specDir,
    journal: storeJournal(store),
    specCommit: null,
    actor: 'test',
    log: () => {},
  });
}

function collector() {
  const events: AlertEvent[] = [];
  return { events, sink: { send: async (e: AlertEvent) => void events.push(e) } };
}

function eu(r: ReconcileResult) {
  const c = r.channels.find((x) => x.to === 'eu-west-1');
  if (!c) throw new Error('no eu channel');
  return c;
}

describe('lag and channel status', () => {
  let topo: TestTopology;
  let store: Store;
  let hb: HeartbeatWriter;
  beforeAll(async () => {
    topo = await testTopology('lag_status', tight);
    store = await openStore(controlTarget(topo.spec, topo.specDir));
    await applySpec(topo, store);
    hb = new HeartbeatWriter(topo.spec, topo.specDir, () => 0);
    hb.start();
  });
  afterAll(async () => {
    await hb?.stop();
    await store?.close();
    await topo?.close();
  });

  it('an idle primary shows ~0 lag', async () => {
    const { sink } = collector();
    await waitFor(
      async () => {
        const r = await reconcileOnce({ spec: topo.spec, specDir: topo.specDir, store, sink, leader: true });
        return eu(r).lagSecondsSource === 'heartbeat' && eu(r).status === 'active';
      },
      { what: 'heartbeat-based lag on an active channel', timeoutMs: 20_000 },
    );
    const r = await reconcileOnce({ spec: topo.spec, specDir: topo.specDir, store, sink, leader: true });
    expect(eu(r).lagSeconds).toBeLessThan(0.6);
    expect(eu(r).lagBytes).toBeLessThan(64 * 1024);
  });

  it('moves active → lagging → failed → active, raising one alert and resolving it once', async () => {
    const { events, sink } = collector();
    const pass = () => reconcileOnce({ spec: topo.spec, specDir: topo.specDir, store, sink, leader: true });
    const euClient = await topo.client('eu-west-1');
    const blocker = await topo.client('eu-west-1');
    // Block the apply worker: it waits on the heartbeat table the primary keeps updating
    // (SHARE mode stops its UPDATE, not readers such as the observer).
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE regionctl.heartbeat IN SHARE MODE');
    const seen: string[] = [];
    await waitFor(
      async () => {
        const c = eu(await pass());
        seen.push(c.status);
        return c.status === 'lagging';
      },
      { what: 'eu channel lagging', timeoutMs: 20_000, intervalMs: 300 },
    );
    // Several passes while lagging: still one alert.
    await pass();
    await pass();
    await euClient.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
    await blocker.query('ROLLBACK');
    const failed = eu(await pass());
    expect(failed.status).toBe('failed');
    expect(failed.reasons.join(' ')).toMatch(/disabled/);
    await euClient.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 ENABLE');
    await waitFor(async () => eu(await pass()).status === 'active', {
      what: 'eu channel active again',
      timeoutMs: 30_000,
      intervalMs: 300,
    });
    expect(seen).toContain('lagging');
    const key = 'channel:us-east-1->eu-west-1';
    expect(events.filter((e) => e.key === key).map((e) => e.state)).toEqual(['raised', 'resolved']);
    const rows = await store.client.query(
      'SELECT raised_at, resolved_at FROM regionctl.alert WHERE key = $1',
      [key],
    );
    expect(rows.rows.length).toBe(1);
    expect(rows.rows[0].resolved_at).not.toBeNull();
    const ch = await store.client.query(
      "SELECT status FROM regionctl.replication_channel WHERE secondary_region = 'eu-west-1'",
    );
    expect(ch.rows[0].status).toBe('active');
  });

  it('measures lag in seconds within 1 s of the truth the load ledger gives', async () => {
    const blocker = await topo.client('eu-west-1');
    const euClient = await topo.client('eu-west-1');
    const { sink } = collector();
    const load = runLoad({
      spec: topo.spec,
      specDir: topo.specDir,
      stateDir: topo.stateDir,
      rate: 40,
      durationSec: 6,
    });
    await new Promise((r) => setTimeout(r, 1500));
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE public.orders IN SHARE MODE');
    await new Promise((r) => setTimeout(r, 2500));
    const r = await reconcileOnce({ spec: topo.spec, specDir: topo.specDir, store, sink, leader: false });
    // The truth: the oldest write the primary acknowledged (ledger) that is not visible on
    // the secondary, checked row by row while apply is still blocked.
    const primaryNow = r.regions.find((x) => x.region === 'us-east-1');
    const inserts = readLedger(topo.stateDir, { database: topo.spec.database }).filter(
      (e) => e.op === 'insert' && topo.spec.replication.tables.includes(e.table),
    );
    let oldestMissing = Number.POSITIVE_INFINITY;
    for (const table of new Set(inserts.map((e) => e.table))) {
      const mine = inserts.filter((e) => e.table === table);
      const ids = mine.map((e) => e.id.split(':')[1] ?? '');
      const present = new Set(
        (
          await euClient.query(`SELECT id::text AS id FROM ${table} WHERE id = ANY($1::bigint[])`, [ids])
        ).rows.map((x) => x.id as string),
      );
      for (const e of mine) {
        if (!present.has(e.id.split(':')[1] ?? ''))
          oldestMissing = Math.min(oldestMissing, Date.parse(e.committedAt));
      }
    }
    await blocker.query('ROLLBACK');
    await load;
    expect(primaryNow?.reachable).toBe(true);
    expect(Number.isFinite(oldestMissing)).toBe(true);
    // Both instants by the primary's clock.
    const truth = (Date.parse(primaryNow?.serverTime ?? r.at) - oldestMissing) / 1000;
    const measured = eu(r).lagSeconds;
    expect(measured).not.toBeNull();
    console.info(`lag seconds: measured ${measured?.toFixed(2)} s, ledger truth ${truth.toFixed(2)} s`);
    expect(Math.abs((measured ?? 0) - truth)).toBeLessThanOrEqual(1);
    expect(truth).toBeGreaterThan(1.5);
  });
});

describe('a killed secondary', () => {
  let lab: PrivateLab;
  let store: Store;
  let hb: HeartbeatWriter;
  beforeAll(async () => {
    lab = await privateLab('lag_kill', tight);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
    hb = new HeartbeatWriter(lab.spec, lab.specDir, () => 0);
    hb.start();
  });
  afterAll(async () => {
    await hb?.stop();
    await store?.close();
    await lab?.close();
  });

  it('fails its channel while down, with lag rising on the publisher side, and recovers', async () => {
    const sink = logSink(() => {});
    const pass = () => reconcileOnce({ spec: lab.spec, specDir: lab.specDir, store, sink, leader: true });
    // Steady first: killing a secondary in the middle of its initial table copy leaves a
    // sync slot behind on the publisher that PostgreSQL then trips over (a separate problem).
    await waitFor(
      async () => {
        const r = await pass();
        const region = r.regions.find((x) => x.region === 'eu-west-1');
        return eu(r).status === 'active' && region?.tablesNotReady?.length === 0;
      },
      { what: 'active first, initial copy done', timeoutMs: 30_000 },
    );
    // The apply worker records a table's READY state with the subscription's
    // synchronous_commit (off by default): killed within a WAL-writer cycle of it, the
    // secondary comes back with the table at SYNCDONE and its table-sync worker asks for
    // a sync slot the publisher already dropped — forever (seen in CI: "replication slot
    // pg_..._sync_... does not exist" every 5 s). A checkpoint makes READY durable first;
    // what this test measures is a secondary lost once steady, not that PostgreSQL edge.
    await (await lab.client('eu-west-1')).query('CHECKPOINT');
    await lab.kill('eu-west-1');
    await new Promise((r) => setTimeout(r, 1500));
    const down = eu(await pass());
    expect(down.status).toBe('failed');
    expect(down.reasons.join(' ')).toMatch(/secondary eu-west-1 unreachable/);
    expect(down.lagBytes).toBeGreaterThan(0);
    await lab.start('eu-west-1');
    // Recovery waits on the server's own retry timers (the old walsender's timeout, then
    // the apply worker's retry interval), so allow for several of them.
    let last = '';
    await waitFor(
      async () => {
        const c = eu(await pass());
        last = `${c.status}: ${c.reasons.join('; ')}`;
        return c.status === 'active';
      },
      { what: 'active after restart', timeoutMs: 120_000 },
    ).catch((e: Error) => {
      throw new Error(`${e.message} (channel was ${last})`);
    });
    // The steady wait (30 s) plus the recovery wait above exceed the default 60 s: under a
    // full parallel run the recovery alone has taken longer (a CI run timed out there).
  }, 200_000);
});
