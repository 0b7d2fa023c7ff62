/** The control store against a real control database of the test lab. */
import { hostname } from 'node:os';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, controlTarget, type Target } from '../../src/sql/connect.js';
import { acquireLeaderLock, tryAcquireLeaderLock } from '../../src/store/leader-lock.js';
import { migrate } from '../../src/store/migrate.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, type Store } from '../../src/store/store.js';
import { type TestTopology, testTopology } from '../support/topology.js';

const VERSIONS = MIGRATIONS.map((m) => m.version);

describe('control store', () => {
  let topo: TestTopology;
  let target: Target;
  let store: Store;
  let ctl: pg.Client;

  beforeAll(async () => {
    topo = await testTopology('store_api');
    target = controlTarget(topo.spec, topo.specDir);
    ctl = await topo.control();
  });
  afterAll(async () => {
    await store?.close();
    await topo?.close();
  });

  it('concurrent migrations on a fresh database all succeed and apply each migration once', async () => {
    const clients = await Promise.all([1, 2, 3, 4, 5].map(() => connect(target)));
    try {
      const results = await Promise.all(clients.map((c) => migrate(c)));
      expect(results.flat().sort((a, b) => a - b)).toEqual(VERSIONS);
      expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    const rows = (await ctl.query('SELECT version FROM regionctl.schema_migrations ORDER BY version')).rows;
    expect(rows.map((r) => r.version)).toEqual(VERSIONS);
  });

  it('is idempotent, rolls back a failing migration whole, refuses a store newer than itself', async () => {
    store = await openStore(target);
    expect(await migrate(ctl)).toEqual([]);
    const bad = [
      ...MIGRATIONS,
      { version: 1000, name: 'good', sql: 'CREATE TABLE regionctl.tmp_good (x int)' },
      { version: 1001, name: 'bad', sql: 'CREATE TABLE regionctl.tmp_bad (x nosuchtype)' },
    ];
    await expect(migrate(ctl, bad)).rejects.toThrow(/nosuchtype/);
    expect((await ctl.query("SELECT to_regclass('regionctl.tmp_good') AS t")).rows[0].t).toBeNull();
    await ctl.query(
      "INSERT INTO regionctl.schema_migrations (version, name) VALUES (9999, 'from the future')",
    );
    try {
      await expect(migrate(ctl)).rejects.toMatchObject({ code: 'E_CONTROL_STORE_NEWER' });
    } finally {
      await ctl.query('DELETE FROM regionctl.schema_migrations WHERE version = 9999');
    }
  });

  it('journals apply steps before they run, and finds what to resume after a crash', async () => {
    const plan = { hash: 'h1', actions: [{ kind: 'a' }, { kind: 'b' }, { kind: 'c' }] };
    const runId = await store.startApplyRun({ planHash: 'h1', plan, specCommit: 'abc', actor: 'test' });
    await store.recordStepStarted(runId, 0, 'a:1', plan.actions[0]);
    await store.recordStepDone(runId, 0);
    await store.recordStepStarted(runId, 1, 'b:1', {
      kind: 'b',
      stmt: { sql: "CONNECTION 'password=hunter2'", redacted: "CONNECTION 'password=***'" },
      note: "host=x password='hunter2'",
    });
    // ... the process dies here.
    const run = await store.lastInterruptedRun();
    expect(run).toMatchObject({ runId, planHash: 'h1', plan, specCommit: 'abc', actor: 'test' });
    expect(run?.steps.map((s) => [s.seq, s.status])).toEqual([
      [0, 'done'],
      [1, 'started'],
    ]);
    expect(JSON.stringify(run?.steps)).not.toContain('hunter2');
    expect([...(await store.completedStepKeys(runId))]).toEqual(['a:1']);
    expect(
      (await ctl.query('SELECT status FROM regionctl.apply_run WHERE id = $1', [runId])).rows[0].status,
    ).toBe('interrupted');

    await store.resumeApplyRun(runId);
    await store.recordStepStarted(runId, 1, 'b:1', plan.actions[1]);
    await store.recordStepFailed(runId, 1, "boom password='hunter2'");
    const failed = (await store.applySteps(runId))[1];
    expect(failed).toMatchObject({ status: 'failed', attempts: 2 });
    expect(failed?.error).not.toContain('hunter2');
    await store.recordStepStarted(runId, 1, 'b:1', plan.actions[1]);
    await store.recordStepDone(runId, 1);
    await store.finishApplyRun(runId, 'succeeded');
    expect(await store.lastInterruptedRun()).toBeNull();
    await expect(store.recordStepDone(runId, 7)).rejects.toMatchObject({ code: 'E_STORE_MISSING' });

    await store.audit({ actor: 'test', action: 'apply', specCommit: 'abc', detail: { runId } });
    const audit = (await ctl.query('SELECT actor, action, detail FROM regionctl.audit_log')).rows;
    expect(audit).toContainEqual({ actor: 'test', action: 'apply', detail: { runId } });
  });

  it('raises an alert once per episode and resolves it once', async () => {
    const a = { channel: 'us-east-1 → eu-west-1', severity: 'warning' as const, message: 'lag 12 s > 10 s' };
    const first = await store.raiseAlert('lag:eu-west-1', a);
    expect(first.raised).toBe(true);
    const again = await store.raiseAlert('lag:eu-west-1', { ...a, message: 'lag 15 s > 10 s' });
    expect(again).toEqual({ raised: false, id: first.id });
    expect((await store.openAlerts()).map((x) => x.message)).toEqual(['lag 15 s > 10 s']);
    expect(await store.resolveAlert('lag:eu-west-1')).toBe(true);
    expect(await store.resolveAlert('lag:eu-west-1')).toBe(false);
    const next = await store.raiseAlert('lag:eu-west-1', a);
    expect(next.raised).toBe(true);
    expect(next.id).not.toBe(first.id);
    await store.resolveAlert('lag:eu-west-1');
    // Concurrent raises of one key: exactly one is the new episode.
    const many = await Promise.all([1, 2, 3, 4].map(() => store.raiseAlert('k2', a)));
    expect(many.filter((m) => m.raised)).toHaveLength(1);
  });

  it('records the primary with compare-and-set on the epoch', async () => {
    expect(await store.getTopology()).toBeNull();
    expect(await store.initTopology('us-east-1')).toMatchObject({ primaryRegion: 'us-east-1', epoch: 0 });
    expect((await store.initTopology('eu-west-1')).primaryRegion).toBe('us-east-1');
    const eventId = await store.createFailoverEvent({
      kind: 'failover',
      fromRegion: 'us-east-1',
      toRegion: 'eu-west-1',
      triggerReason: 'primary_unreachable',
      epoch: 1,
      evidence: { probes: 3 },
      forced: false,
      estimatedLossBytes: 4096,
    });
    expect(await store.setTopology({ primaryRegion: 'eu-west-1', epoch: 1, lastEventId: eventId }, 0)).toBe(
      true,
    );
    // A second promoter that read epoch 0 loses.
    expect(await store.setTopology({ primaryRegion: 'ap-southeast-1', epoch: 1, lastEventId: null }, 0)).toBe(
      false,
    );
    expect(await store.getTopology()).toMatchObject({
      primaryRegion: 'eu-west-1',
      epoch: 1,
      lastEventId: eventId,
    });
  });

  it('keeps failover events and their steps, and finds the unfinished one', async () => {
    const unfinished = await store.unfinishedFailoverEvent();
    expect(unfinished?.event).toMatchObject({
      kind: 'failover',
      status: 'running',
      estimatedLossBytes: 4096,
    });
    const id = unfinished!.event.id;
    await store.failoverStepStarted(id, 0, 'fence', { method: 'sql' });
    await store.failoverStepFinished(id, 0, 'done', { verified: true });
    await store.failoverStepStarted(id, 1, 'promote');
    await store.failoverStepStarted(id, 1, 'promote'); // resumed after a crash
    await store.failoverStepFinished(id, 1, 'skipped');
    expect((await store.failoverSteps(id)).map((s) => [s.name, s.status, s.attempts, s.detail])).toEqual([
      ['fence', 'done', 1, { method: 'sql', verified: true }],
      ['promote', 'skipped', 2, {}],
    ]);
    const done = await store.updateFailoverEvent(id, {
      status: 'completed',
      evidence: { cutLsn: '0/1234' },
      fencing: { confirmed: true },
      dataLossBytes: 0,
      lostTransactions: 0,
      completed: true,
    });
    expect(done).toMatchObject({
      status: 'completed',
      evidence: { probes: 3, cutLsn: '0/1234' },
      fencing: { confirmed: true },
      dataLossBytes: 0,
      lostTransactions: 0,
      estimatedLossBytes: 4096,
    });
    expect(done.completedAt).toBeInstanceOf(Date);
    expect(await store.unfinishedFailoverEvent()).toBeNull();
    expect((await store.listFailoverEvents()).map((e) => e.id)).toEqual([id]);
  });

  it('upserts channel measurements and reports the previous status', async () => {
    const base = {
      primaryRegion: 'eu-west-1',
      secondaryRegion: 'us-east-1',
      epoch: 1,
      applyLsn: '0/10',
      primaryLsn: '0/20',
      lagBytes: 16,
      lagSeconds: 0.4,
      catchupEtaSeconds: 0.1,
    };
    const a = await store.upsertChannel({ ...base, status: 'active' });
    expect(a.previousStatus).toBeNull();
    const b = await store.upsertChannel({ ...base, status: 'lagging', lagBytes: 1e9 });
    expect(b.previousStatus).toBe('active');
    expect(b.row).toMatchObject({ status: 'lagging', lagBytes: 1e9, lagSeconds: 0.4, epoch: 1 });
    expect((await store.listChannels()).map((c) => c.status)).toEqual(['lagging']);
    expect(await store.deleteChannel('eu-west-1', 'us-east-1')).toBe(true);
    const r = await store.startReconcileRun(true);
    await store.finishReconcileRun(r, { drift: [], summary: { channels: 0 } });
  });
});

describe('leader lock', () => {
  let topo: TestTopology;
  let target: Target;
  let ctl: pg.Client;
  beforeAll(async () => {
    topo = await testTopology('store_lock');
    target = controlTarget(topo.spec, topo.specDir);
    ctl = await topo.control();
  });
  afterAll(async () => {
    await topo?.close();
  });

  it('refuses a second holder and says who holds it', async () => {
    const first = await acquireLeaderLock(target, 'apply', { wait: false });
    try {
      expect(first.holderInfo).toMatchObject({ processPid: process.pid, host: hostname().slice(0, 30) });
      const attempt = await tryAcquireLeaderLock(target, 'apply', { wait: false });
      expect(attempt.acquired).toBe(false);
      if (!attempt.acquired) {
        expect(attempt.holder).toMatchObject({ pid: first.holderInfo.pid, processPid: process.pid });
      }
      await expect(acquireLeaderLock(target, 'apply', { wait: false })).rejects.toMatchObject({
        code: 'E_LOCK_HELD',
        message: expect.stringMatching(
          new RegExp(`^apply already running since \\d\\d:\\d\\d:\\d\\d UTC \\(pid ${process.pid} on host `),
        ),
      });
      // Another name is another lock.
      const other = await acquireLeaderLock(target, 'reconcile', { wait: false });
      await other.release();
    } finally {
      await first.release();
    }
    const again = await acquireLeaderLock(target, 'apply', { wait: false });
    await again.release();
  });

  it('wait mode waits for the holder to release, and times out with the holder named', async () => {
    const first = await acquireLeaderLock(target, 'apply', { wait: false });
    await expect(acquireLeaderLock(target, 'apply', { wait: true, timeoutMs: 300 })).rejects.toMatchObject({
      code: 'E_LOCK_HELD',
    });
    const t0 = Date.now();
    const waiter = acquireLeaderLock(target, 'apply', { wait: true, timeoutMs: 10_000, retryIntervalMs: 50 });
    setTimeout(() => void first.release(), 500);
    const second = await waiter;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    await second.release();
  });

  it('is lost cleanly when its connection is terminated, and a waiter takes over', async () => {
    const first = await acquireLeaderLock(target, 'reconcile', { wait: false, checkIntervalMs: 200 });
    let called = 0;
    first.onLost(() => called++);
    const waiter = acquireLeaderLock(target, 'reconcile', {
      wait: true,
      timeoutMs: 10_000,
      retryIntervalMs: 50,
    });
    await new Promise((r) => setTimeout(r, 200));
    await ctl.query('SELECT pg_terminate_backend($1)', [first.holderInfo.pid]);
    await first.lost;
    expect(called).toBe(1);
    const second = await waiter;
    expect(second.holderInfo.pid).not.toBe(first.holderInfo.pid);
    await first.release(); // harmless after loss
    await second.release();
  });
});
