/**
 * Planned switchover, zero data loss: fence the primary, wait until every secondary has
 * applied everything it wrote, then promote the target and point every other region —
 * the old primary included — at it from slots made before it accepts a write. Nothing is
 * copied: every region holds the same content at that instant. Failing back is another
 * switchover.
 */

import type pg from 'pg';
import { executeAction, openClients } from '../apply/execute.js';
import { RegionctlError } from '../errors.js';
import { desiredState } from '../model/desired.js';
import { compareLsn } from '../model/lsn.js';
import { reachableRegion } from '../model/observed.js';
import { promotedSpec } from '../model/promote.js';
import { observe } from '../observe/observe.js';
import { currentSpec } from '../reconcile/reconcile.js';
import { SUBSCRIPTION_EXISTS_SQL } from '../sql/catalog.js';
import { conninfo, regionTarget } from '../sql/connect.js';
import { guardSql, unfenceSql } from '../sql/guard.js';
import { dropPublicationSql } from '../sql/publication.js';
import { dropIdleSlots } from '../sql/slots.js';
import { runStatements } from '../sql/statement.js';
import { createSubscriptionSql, dropSubscriptionSql } from '../sql/subscription.js';
import { moveDns } from './dns.js';
import {
  advanceSequences,
  appTables,
  commitPromotion,
  fenceRegion,
  specBefore,
  type TransitionOptions,
} from './failover.js';
import { SimulatedCrash, type StepRunner, stepRunner } from './steps.js';

export interface SwitchoverOutcome {
  eventId: number;
  from: string;
  to: string;
  /** From the fence to the new primary accepting writes. */
  writeUnavailableMs: number;
  /** From the fence to the DNS record pointing at the new primary. */
  dnsMs: number;
}

async function sequencesOf(c: pg.ClientBase): Promise<Map<string, string | null>> {
  const r = await c.query(
    "SELECT schemaname || '.' || sequencename AS name, last_value::text AS v FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'regionctl')",
  );
  return new Map(r.rows.map((x) => [x.name as string, (x.v as string | null) ?? null]));
}

async function waitCaughtUp(
  primary: pg.ClientBase,
  slots: string[],
  timeoutMs: number,
): Promise<{ fenceLsn: string; waitedMs: number }> {
  const fenceLsn = (await primary.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string;
  const t0 = Date.now();
  for (;;) {
    const r = await primary.query(
      'SELECT slot_name, confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = ANY($1)',
      [slots],
    );
    const behind = slots.filter((s) => {
      const row = r.rows.find((x) => x.slot_name === s);
      return !row?.c || compareLsn(row.c, fenceLsn) < 0;
    });
    if (behind.length === 0) return { fenceLsn, waitedMs: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) {
      throw new RegionctlError(
        'E_SWITCHOVER_CATCHUP',
        `secondaries did not apply up to ${fenceLsn} within ${timeoutMs} ms (behind: ${behind.join(', ')})`,
        'the primary stays fenced; check `regionctl status`, then unfence or retry the switchover',
      );
    }
    await new Promise((res) => setTimeout(res, 10));
  }
}

type SwitchoverOptions = TransitionOptions & { catchUpTimeoutMs?: number };

/** The step after which a switchover can only go forward: the target accepted writes. */
export const SWITCHOVER_POINT_OF_NO_RETURN = 'lift-guard';

/**
 * Starts a switchover, or resumes the unfinished one (its steps journaled done are not
 * run again). A switchover that fails before its target accepted writes is rolled back
 * — the old primary takes writes again — and recorded failed; after that point it only
 * goes forward, and running the same command again finishes it.
 */
export async function runSwitchover(raw: SwitchoverOptions): Promise<SwitchoverOutcome> {
  const unfinished = await raw.store.unfinishedFailoverEvent();
  if (unfinished?.event.kind === 'switchover') {
    const ev = unfinished.event;
    if (raw.to && raw.to !== ev.toRegion) {
      throw new RegionctlError(
        'E_TRANSITION_IN_PROGRESS',
        `a switchover ${ev.fromRegion} → ${ev.toRegion} (event ${ev.id}) is unfinished`,
        `finish it first: \`regionctl switchover --to ${ev.toRegion}\` resumes it`,
      );
    }
    const params = (ev.evidence as { params?: { to: string; epoch: number } })?.params;
    if (!params) {
      throw new RegionctlError(
        'E_STORE_MISSING',
        `switchover event ${ev.id} lacks its parameters`,
        'inspect it with `regionctl events`',
      );
    }
    raw.log(`resuming switchover event ${ev.id}: ${ev.fromRegion} → ${ev.toRegion}`);
    const spec = await specBefore(raw, ev.fromRegion);
    const observed = await observe(spec, raw.specDir);
    return executeSwitchover({ ...raw, spec }, ev.id, ev.fromRegion, ev.toRegion, params.epoch, observed);
  }
  if (unfinished) {
    throw new RegionctlError(
      'E_TRANSITION_IN_PROGRESS',
      `a ${unfinished.event.kind} (event ${unfinished.event.id}) is unfinished`,
      'finish it first (`regionctl failover` resumes a failover; see `regionctl events`)',
    );
  }
  const o = { ...raw, spec: (await currentSpec(raw.spec, raw.store, { init: true })).spec };
  const desired = desiredState(o.spec);
  const from = desired.primary;
  const to = o.to;
  if (!to || to === from) {
    throw new RegionctlError(
      'E_USAGE_TARGET',
      `switchover needs --to REGION other than the primary ${from}`,
      'e.g. `regionctl switchover --to eu-west-1`',
    );
  }
  const target = o.spec.regions.find((r) => r.name === to);
  if (!target) throw new RegionctlError('E_UNKNOWN_REGION', `unknown region ${to}`, 'see `regionctl status`');
  if (!target.failover?.candidate) {
    throw new RegionctlError(
      'E_NOT_CANDIDATE',
      `${to} is not a failover candidate`,
      'it receives a filtered subset; pick a candidate region',
    );
  }
  let observed = await observe(o.spec, o.specDir);
  for (const r of [from, ...desired.channels.map((c) => c.to)]) {
    if (!reachableRegion(observed, r)) {
      throw new RegionctlError(
        'E_SWITCHOVER_UNREACHABLE',
        `region ${r} is unreachable: a switchover needs every region`,
        r === from ? 'the primary is down: use `regionctl failover`' : `bring ${r} back first`,
      );
    }
  }
  // Every table of every channel must be done copying: a region still copying a table
  // would hold a partial copy when the primary moves (the target), or be re-pointed
  // mid-copy (the others). Waited for before the fence, never inside the write window.
  const deadline = Date.now() + (o.catchUpTimeoutMs ?? 30_000);
  for (;;) {
    const copying = desired.channels.flatMap((c) => {
      const sub = reachableRegion(observed, c.to)?.subscriptions.find((x) => x.name === c.subscription.name);
      return (sub?.tablesNotReady ?? []).map((t) => `${c.to}: ${t}`);
    });
    if (copying.length === 0) break;
    if (Date.now() > deadline) {
      throw new RegionctlError(
        'E_SWITCHOVER_NOT_READY',
        `initial copy not finished for ${copying.length} table(s) (${copying.slice(0, 5).join(', ')}${copying.length > 5 ? ', …' : ''}): nothing was changed`,
        'wait for `regionctl status` to show every channel active with no table copying, then switch over',
      );
    }
    o.log(`waiting for ${copying.length} table(s) still in initial copy: ${copying.slice(0, 3).join(', ')}`);
    await new Promise((r) => setTimeout(r, 500));
    observed = await observe(o.spec, o.specDir);
  }
  const topo = (await o.store.getTopology()) ?? (await o.store.initTopology(from));
  const epoch = topo.epoch;
  const eventId = await o.store.createFailoverEvent({
    kind: 'switchover',
    fromRegion: from,
    toRegion: to,
    triggerReason: o.trigger,
    epoch: epoch + 1,
    evidence: { params: { to, epoch } },
    forced: false,
    estimatedLossBytes: 0,
  });
  return executeSwitchover(o, eventId, from, to, epoch, observed);
}

async function executeSwitchover(
  o: SwitchoverOptions,
  eventId: number,
  from: string,
  to: string,
  epoch: number,
  observed: Awaited<ReturnType<typeof observe>>,
): Promise<SwitchoverOutcome> {
  const desired = desiredState(o.spec);
  const s = await stepRunner(o.store, eventId, o.log, o.crashAfter);
  const next = promotedSpec(o.spec, to);
  const nextDesired = desiredState(next);
  const clients = await openClients(next, o.specDir);
  try {
    // Publications on the target cost nothing while it is still read-only: make them
    // before the fence, so the write-unavailable window holds only what must be in it.
    await s.step(1, 'create-publications', async () => {
      const ctx = { spec: next, specDir: o.specDir, client: clients.client, log: o.log };
      for (const ch of nextDesired.channels) {
        await executeAction(ctx, {
          kind: 'create-publication',
          region: to,
          risk: 'create',
          reason: 'switchover',
          publication: ch.publication,
        });
      }
      return {};
    });
    const t0 = performance.now();
    const targetChannel = desired.channels.find((c) => c.to === to);
    const primary = await clients.client(from);
    const cand = await clients.client(to);
    let caught: { fenceLsn: string; waitedMs: number } | Record<string, unknown> = {};
    try {
      await s.step(2, 'fence', async () => {
        const f = await fenceRegion(o.spec, o.specDir, from, observed, desired);
        if (!f.confirmed)
          throw new RegionctlError(
            'E_FENCE_UNCONFIRMED',
            `could not confirm the fence of ${from}`,
            'see the event steps',
          );
        await o.store.updateFailoverEvent(eventId, { fencing: f });
        return f;
      });
      caught = await s.step(3, 'wait-catch-up', async () =>
        waitCaughtUp(
          primary,
          desired.channels.map((c) => c.subscription.slotName),
          o.catchUpTimeoutMs ?? 30_000,
        ),
      );
      // 4. Detached without calling the old primary back (a plain DROP SUBSCRIPTION opens a
      //    new cross-region connection to drop the slot there): its slot goes in step 10.
      await s.step(4, 'detach-target', async () => {
        if (
          targetChannel &&
          (await cand.query(SUBSCRIPTION_EXISTS_SQL, [targetChannel.subscription.name])).rowCount
        ) {
          await runStatements(cand, dropSubscriptionSql(targetChannel.subscription.name, { keepSlot: true }));
        }
        return {};
      });
      await s.step(5, 'sequences', async () => ({
        advanced: await advanceSequences(cand, await sequencesOf(primary), 0),
      }));
      // 6. Every follower's slot on the target, made before it accepts a write (one round
      //    trip from here): the subscriptions that use them are made after DNS moved (step
      //    11), off the write-unavailable window, with nothing to copy and nothing missed.
      await s.step(6, 'slots', async () => {
        const slots = nextDesired.channels.map((ch) => ch.subscription.slotName);
        // A slot of that name left on the target by an earlier failover (evidence) is stale now.
        await dropIdleSlots(cand, slots);
        // Made fresh, now (a resumed step drops its own earlier ones above): a slot of that
        // name still there is in use, and following from its older position would replay
        // what the follower already has — so that is an error, never a reuse.
        await cand.query(
          `SELECT pg_create_logical_replication_slot(s, 'pgoutput') FROM unnest($1::text[]) s`,
          [slots],
        );
        return { slots };
      });
      await s.step(7, 'lift-guard', async () => {
        // With an authority: the topology epoch moves in etcd first (the fence of step 2 is
        // confirmed), so the old primary's agent gives its lease up and the new one's takes it.
        if (o.gate) {
          const gated = await o.gate(to, true);
          await o.store.updateFailoverEvent(eventId, { evidence: { promotion: gated } });
        }
        const tables = appTables(reachableRegion(observed, to), nextDesired);
        await runStatements(
          cand,
          guardSql({ region: to, mode: 'read-write', roles: next.applicationRoles }, tables, next.database),
        );
        return {};
      });
    } catch (e) {
      if (e instanceof SimulatedCrash) throw e;
      await rollBack(
        o,
        s,
        { eventId, from, to, desired, nextDesired, observed, clients, targetChannel },
        e as Error,
      );
      throw e;
    }
    const writable = performance.now();
    await s.step(8, 'topology', () => commitPromotion(o.store, to, epoch, eventId, desired.channels));
    await s.step(9, 'dns', async () => ({ ...(await moveDns(next, o.specDir, to)) }));
    const dnsAt = performance.now();
    await s.step(10, 'old-primary-reads', async () => {
      // The old primary is now a guarded secondary: application roles may log in and read.
      const tables = appTables(reachableRegion(observed, from), nextDesired);
      await runStatements(primary, unfenceSql(next.applicationRoles, tables, next.database, 'read-only'));
      // The slot the target followed is idle once its walsender noticed the drop.
      if (targetChannel) {
        const slot = targetChannel.subscription.slotName;
        for (let i = 0; i < 50; i++) {
          await dropIdleSlots(primary, [slot]);
          const left = await primary.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
          if (!left.rowCount) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await o.store.setRegionState(from, null, eventId);
      return {};
    });
    await s.step(11, 'repoint', async () => {
      const info = conninfo(regionTarget(next, to, o.specDir));
      await Promise.all(
        nextDesired.channels.map(async (ch) => {
          const c = await clients.client(ch.to);
          const old = desired.channels.find((x) => x.to === ch.to);
          if (old) await runStatements(c, dropSubscriptionSql(old.subscription.name, { keepSlot: false }));
          const exists = await c.query(SUBSCRIPTION_EXISTS_SQL, [ch.subscription.name]);
          if (exists.rowCount) return;
          await runStatements(
            c,
            createSubscriptionSql(ch.subscription, info, {
              copyData: false,
              createSlot: false,
              enabled: true,
            }),
          );
        }),
      );
      return { following: nextDesired.channels.map((c) => c.to) };
    });
    const outcome = {
      eventId,
      from,
      to,
      writeUnavailableMs: Math.round(writable - t0),
      dnsMs: Math.round(dnsAt - t0),
    };
    await o.store.updateFailoverEvent(eventId, {
      status: 'completed',
      completed: true,
      dataLossBytes: 0,
      lostTransactions: 0,
      evidence: { caughtUp: caught, timings: outcome },
    });
    return outcome;
  } finally {
    await clients.close();
  }
}

/**
 * A switchover that failed before its target accepted writes is undone, each undo step
 * journaled like the steps (seq 100+): the target's new slots dropped, its subscription
 * to the old primary made again on the slot step 4 kept, and the old primary's fence
 * lifted — it takes writes again. The event is recorded failed. An undo that fails
 * leaves the event unfinished: the same command resumes the switchover forward.
 */
async function rollBack(
  o: SwitchoverOptions,
  s: StepRunner,
  c: {
    eventId: number;
    from: string;
    to: string;
    desired: ReturnType<typeof desiredState>;
    nextDesired: ReturnType<typeof desiredState>;
    observed: Awaited<ReturnType<typeof observe>>;
    clients: Awaited<ReturnType<typeof openClients>>;
    targetChannel: ReturnType<typeof desiredState>['channels'][number] | undefined;
  },
  cause: Error,
): Promise<void> {
  o.log(`switchover failed before ${c.to} accepted writes (${cause.message}): rolling back`);
  try {
    const cand = await c.clients.client(c.to);
    if (s.detail(6)) {
      await s.step(101, 'undo-slots', async () => {
        const slots = (s.detail(6)?.slots as string[] | undefined) ?? [];
        await dropIdleSlots(cand, slots);
        return { dropped: slots };
      });
    }
    const ch = c.targetChannel;
    if (s.detail(4) && ch) {
      await s.step(102, 'undo-detach-target', async () => {
        if ((await cand.query(SUBSCRIPTION_EXISTS_SQL, [ch.subscription.name])).rowCount) return {};
        const info = conninfo(regionTarget(o.spec, c.from, o.specDir));
        await runStatements(
          cand,
          createSubscriptionSql(ch.subscription, info, { copyData: false, createSlot: false, enabled: true }),
        );
        return { resubscribed: ch.subscription.name };
      });
    }
    if (s.detail(1)) {
      // The target publishes nothing while it is a secondary.
      await s.step(103, 'undo-publications', async () => {
        const names = c.nextDesired.channels.map((x) => x.publication.name);
        for (const n of names) await runStatements(cand, dropPublicationSql(n));
        return { dropped: names };
      });
    }
    if (s.detail(2)) {
      await s.step(104, 'undo-fence', async () => {
        const primary = await c.clients.client(c.from);
        const tables = appTables(reachableRegion(c.observed, c.from), c.desired);
        await runStatements(
          primary,
          unfenceSql(o.spec.applicationRoles, tables, o.spec.database, 'read-write'),
        );
        return {};
      });
    }
  } catch (e) {
    o.log(
      `rollback failed: ${(e as Error).message}; the switchover stays unfinished — run it again to finish it`,
    );
    return;
  }
  await o.store.updateFailoverEvent(c.eventId, {
    status: 'failed',
    completed: true,
    evidence: { rolledBack: true, error: cause.message },
  });
}
