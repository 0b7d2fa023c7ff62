/**
 * Bounded retention of the slots regionctl keeps after a failover for the former
 * primary's rejoin: the rejoin slot on the new primary (what changed there since) and the
 * evidence slots on the former primary (what it never shipped). They hold WAL until the
 * rejoin; a region that never comes back would make the new primary keep WAL without
 * bound. Each pass of the leading reconciler measures them against `retention`
 * (maxBytes, maxAgeHours): past a limit it raises a critical alert, and with
 * `onExceeded: drop` it drops them and records that in the failover event — the rejoin
 * then reports by comparison (src/rejoin/quarantine.ts) instead of from the WAL.
 *
 * PostgreSQL 18's idle_replication_slot_timeout invalidates an idle slot on its own: on
 * a region that holds kept slots it would destroy the evidence silently, so it is
 * reported (warning) whenever it is not 0.
 */
import type { AlertSink } from '../alerts/sink.js';
import { rejoinSlotName, slotName } from '../model/names.js';
import { type Observed, reachableRegion } from '../model/observed.js';
import { RETENTION_DEFAULTS, type RegionsSpec } from '../spec/schema.js';
import { connect, regionTarget } from '../sql/connect.js';
import { dropIdleSlots } from '../sql/slots.js';
import type { Store } from '../store/store.js';

export interface KeptSlot {
  /** Region whose server holds the slot. */
  on: string;
  slot: string;
  purpose: 'rejoin' | 'evidence';
  /** The former primary it is kept for. */
  forRegion: string;
  retainedBytes: number | null;
  ageHours: number;
  over: string | null;
}

/** Pure: the kept slots, their size and age, and which limit each is over. */
export function keptSlots(
  spec: RegionsSpec,
  observed: Observed,
  primary: string,
  awaiting: { region: string; since: Date }[],
  nowMs: number,
): KeptSlot[] {
  const lim = { ...RETENTION_DEFAULTS, ...spec.retention };
  const out: KeptSlot[] = [];
  const p = reachableRegion(observed, primary);
  for (const st of awaiting) {
    if (st.region === primary) continue;
    const ageHours = Math.max(0, (nowMs - st.since.getTime()) / 3_600_000);
    const add = (on: string, slot: string, purpose: KeptSlot['purpose'], bytes: number | null) => {
      const over =
        bytes !== null && bytes > lim.maxBytes
          ? `retains ${bytes} bytes (limit ${lim.maxBytes})`
          : ageHours > lim.maxAgeHours
            ? `kept ${ageHours.toFixed(1)} h (limit ${lim.maxAgeHours} h)`
            : null;
      out.push({ on, slot, purpose, forRegion: st.region, retainedBytes: bytes, ageHours, over });
    };
    const rejoin = rejoinSlotName(spec.database, primary, st.region);
    const rs = p?.slots.find((x) => x.name === rejoin);
    if (rs) add(primary, rejoin, 'rejoin', rs.retainedBytes);
    const r = reachableRegion(observed, st.region);
    for (const other of spec.regions.map((x) => x.name).filter((x) => x !== st.region)) {
      const name = slotName(spec.database, st.region, other);
      const es = r?.slots.find((x) => x.name === name);
      if (es) add(st.region, name, 'evidence', es.retainedBytes);
    }
  }
  return out;
}

export async function checkRetention(
  ctx: { spec: RegionsSpec; specDir: string; store: Store; sink: AlertSink },
  observed: Observed,
  primary: string,
  at: string,
): Promise<{ raised: string[]; resolved: string[]; dropped: string[] }> {
  const raised: string[] = [];
  const resolved: string[] = [];
  const dropped: string[] = [];
  const lim = { ...RETENTION_DEFAULTS, ...ctx.spec.retention };
  const states = await ctx.store.regionStates();
  const kept = keptSlots(ctx.spec, observed, primary, states, Date.parse(at));
  for (const k of kept) {
    const key = `retention:${k.on}:${k.slot}`;
    if (!k.over) {
      if (await ctx.store.resolveAlert(key)) resolved.push(key);
      continue;
    }
    const drop = lim.onExceeded === 'drop';
    const message = `slot ${k.slot} on ${k.on} (${k.purpose}, kept for ${k.forRegion}'s rejoin) ${k.over}: ${
      drop
        ? 'dropped (retention.onExceeded: drop); the rejoin will report lost writes by comparison'
        : `run \`regionctl rejoin ${k.forRegion}\`, or set retention.onExceeded: drop`
    }`;
    const r = await ctx.store.raiseAlert(key, {
      severity: 'critical',
      message,
      detail: { ...k },
    });
    if (r.raised) {
      raised.push(key);
      await ctx.sink.send({
        key,
        state: 'raised',
        severity: 'critical',
        channel: null,
        message,
        at,
        detail: { ...k },
      });
    }
    if (drop) {
      const c = await connect(regionTarget(ctx.spec, k.on, ctx.specDir), {
        applicationName: 'regionctl-retention',
      });
      try {
        const gone = await dropIdleSlots(c, [k.slot]);
        if (gone.length > 0) {
          dropped.push(k.slot);
          const st = states.find((s) => s.region === k.forRegion);
          if (st?.eventId) {
            await ctx.store.updateFailoverEvent(st.eventId, {
              evidence: { [`retentionDropped:${k.slot}`]: { ...k, at } },
            });
          }
        }
      } finally {
        await c.end().catch(() => {});
      }
    }
  }
  // PostgreSQL 18 may invalidate the kept slots by itself.
  for (const on of new Set(kept.map((k) => k.on))) {
    const o = reachableRegion(observed, on);
    const t = o?.settings.idleReplicationSlotTimeout ?? null;
    const key = `retention-idle-timeout:${on}`;
    if (t !== null && t !== '0' && t !== '0ms' && t !== '0s') {
      const message = `idle_replication_slot_timeout is ${t} on ${on}: PostgreSQL will invalidate the slots kept there for a rejoin once idle that long, and the lost-write evidence with them; set it to 0 there (ALTER SYSTEM SET idle_replication_slot_timeout = 0; SELECT pg_reload_conf())`;
      const r = await ctx.store.raiseAlert(key, {
        severity: 'warning',
        message,
        detail: { region: on, value: t },
      });
      if (r.raised) {
        raised.push(key);
        await ctx.sink.send({ key, state: 'raised', severity: 'warning', channel: null, message, at });
      }
    } else if (await ctx.store.resolveAlert(key)) resolved.push(key);
  }
  return { raised, resolved, dropped };
}
