/**
 * One reconcile pass: observe every region, measure each channel against its RPO,
 * record it in the control store, raise or resolve alerts (once per episode), and report
 * drift. Only the leader writes; a standby observes and reports.
 */
import type { AlertSink } from '../alerts/sink.js';
import type { Authority } from '../authority/types.js';
import { type AuthorityView, authorityView } from '../authority/view.js';
import { type DesiredState, desiredState } from '../model/desired.js';
import type { Observed } from '../model/observed.js';
import { effectiveSpec } from '../model/promote.js';
import { type DriftItem, driftReport } from '../observe/drift.js';
import {
  allChannelHealth,
  type ChannelHealth,
  channelKey,
  type PreviousSample,
  type RegionRole,
  regionRole,
} from '../observe/health.js';
import { observe } from '../observe/observe.js';
import { type Plan, planSteadyState } from '../plan/plan.js';
import type { RegionsSpec } from '../spec/schema.js';
import type { Store } from '../store/store.js';
import { checkRetention } from './retention.js';

export interface RegionSummary {
  region: string;
  role: RegionRole;
  reachable: boolean;
  lsn: string | null;
  /** The server's clock when observed (ISO). */
  serverTime?: string | null;
  reason: string | null;
  /** Tables of its managed subscriptions still in initial copy (read routing keeps reads off it). */
  tablesNotReady?: string[];
}

export interface ReconcileResult {
  at: string;
  durationMs: number;
  leader: boolean;
  primary: string;
  epoch: number;
  regions: RegionSummary[];
  channels: ChannelHealth[];
  drift: DriftItem[];
  plan: Plan;
  alertsRaised: string[];
  alertsResolved: string[];
  /** The authority as it answered this pass (absent without an `authority` section). */
  authority?: AuthorityView;
}

export interface ReconcileContext {
  spec: RegionsSpec;
  specDir: string;
  /** Null when the control store is unreachable: the pass still observes and reports. */
  store: Store | null;
  sink: AlertSink;
  /** Only the leader writes; it must have a store. */
  leader: boolean;
  /** Samples of the previous pass, keyed by channelKey (kept in memory by --watch). */
  previous?: Map<string, PreviousSample>;
  /** The spec's authority: its view goes into the result (status, metrics). */
  authority?: Authority;
}

const SEVERITY = { alert: 'warning', lagging: 'warning', failed: 'critical' } as const;

function regionSummaries(observed: Observed, spec: RegionsSpec): RegionSummary[] {
  return observed.regions.map((o) => ({
    region: o.region,
    role: regionRole(o, spec.applicationRoles),
    reachable: o.reachable,
    lsn: o.reachable ? o.currentLsn : null,
    serverTime: o.reachable ? o.serverTime : null,
    reason: o.reachable ? null : o.reason,
    tablesNotReady: o.reachable
      ? o.subscriptions.filter((s) => s.name.startsWith('rc_sub_')).flatMap((s) => s.tablesNotReady)
      : [],
  }));
}

async function previousFromStore(store: Store, epoch: number): Promise<Map<string, PreviousSample>> {
  const out = new Map<string, PreviousSample>();
  for (const r of await store.listChannels()) {
    if (r.epoch !== epoch) continue; // LSNs of another primary are another space
    out.set(channelKey(r.primaryRegion, r.secondaryRegion), {
      primaryLsn: r.primaryLsn,
      appliedLsn: r.applyLsn,
      at: r.lastSeenAt.toISOString(),
    });
  }
  return out;
}

async function recordAndAlert(
  ctx: ReconcileContext & { store: Store },
  epoch: number,
  channels: ChannelHealth[],
  at: string,
): Promise<{ raised: string[]; resolved: string[] }> {
  const raised: string[] = [];
  const resolved: string[] = [];
  for (const h of channels) {
    await ctx.store.upsertChannel({
      primaryRegion: h.from,
      secondaryRegion: h.to,
      status: h.status,
      epoch,
      applyLsn: h.appliedLsn,
      primaryLsn: h.primaryLsn,
      lagBytes: h.lagBytes,
      lagSeconds: h.lagSeconds,
      catchupEtaSeconds: h.catchUpSeconds,
    });
    // One alert per channel episode: escalating from alert to failed is the same episode.
    const key = `channel:${channelKey(h.from, h.to)}`;
    if (h.status !== 'active') {
      const message = `channel ${h.from} → ${h.to} is ${h.status}: ${h.reasons.join('; ')}`;
      const r = await ctx.store.raiseAlert(key, {
        channel: channelKey(h.from, h.to),
        severity: SEVERITY[h.status],
        message,
        detail: { lagBytes: h.lagBytes, lagSeconds: h.lagSeconds },
      });
      if (r.raised) {
        raised.push(key);
        await ctx.sink.send({
          key,
          state: 'raised',
          severity: SEVERITY[h.status],
          channel: channelKey(h.from, h.to),
          message,
          at,
          detail: { status: h.status, lagBytes: h.lagBytes, lagSeconds: h.lagSeconds },
        });
      }
    } else if (await ctx.store.resolveAlert(key)) {
      resolved.push(key);
      await ctx.sink.send({
        key,
        state: 'resolved',
        severity: 'warning',
        channel: channelKey(h.from, h.to),
        message: `channel ${h.from} → ${h.to} is active again (lag ${h.lagSeconds ?? '?'} s)`,
        at,
      });
    }
  }
  return { raised, resolved };
}

/**
 * The spec as regionctl must act on it now: after a failover the control store's
 * topology names the primary until the write-back is merged, and fenced or rebuilding
 * regions have no channel.
 */
export async function currentSpec(
  spec: RegionsSpec,
  store: Store | null,
  opts: { init: boolean },
): Promise<{ spec: RegionsSpec; epoch: number; excluded: string[] }> {
  if (!store) return { spec, epoch: 0, excluded: [] };
  const specPrimary = desiredState(spec).primary;
  const topology = (await store.getTopology()) ?? (opts.init ? await store.initTopology(specPrimary) : null);
  const excluded = (await store.regionStates()).map((r) => r.region);
  return { spec: effectiveSpec(spec, topology, excluded), epoch: topology?.epoch ?? 0, excluded };
}

export async function reconcileOnce(input: ReconcileContext): Promise<ReconcileResult> {
  const t0 = performance.now();
  const store = input.store;
  if (input.leader && !store) throw new Error('a leading reconciler needs the control store');
  const current = await currentSpec(input.spec, store, { init: input.leader });
  const ctx = { ...input, spec: current.spec };
  const desired: DesiredState = desiredState(ctx.spec);
  const epoch = current.epoch;
  const runId = ctx.leader && store ? await store.startReconcileRun(true) : null;
  const [observed, authority] = await Promise.all([
    observe(ctx.spec, ctx.specDir),
    ctx.authority
      ? authorityView(
          ctx.authority,
          ctx.spec.regions.map((r) => r.name),
        )
      : Promise.resolve(undefined),
  ]);
  const at = new Date().toISOString();
  const previous = ctx.previous ?? (store ? await previousFromStore(store, epoch) : new Map());
  const interval = ctx.spec.heartbeat?.intervalSeconds ?? 1;
  const channels = allChannelHealth(desired, observed, { heartbeatIntervalSeconds: interval, previous }, at);
  const plan = planSteadyState(desired, observed);
  const drift = driftReport(desired, observed, plan);
  let alerts = { raised: [] as string[], resolved: [] as string[] };
  if (ctx.leader && store) {
    alerts = await recordAndAlert({ ...ctx, store }, epoch, channels, at);
    const kept = await checkRetention({ ...ctx, store }, observed, desired.primary, at);
    alerts = { raised: [...alerts.raised, ...kept.raised], resolved: [...alerts.resolved, ...kept.resolved] };
    const p = observed.regions.find((r) => r.region === desired.primary);
    if (p?.reachable) await store.saveSequenceSnapshot(p.region, p.sequences);
  }
  if (ctx.previous) {
    ctx.previous.clear();
    for (const h of channels) {
      ctx.previous.set(channelKey(h.from, h.to), { primaryLsn: h.primaryLsn, appliedLsn: h.appliedLsn, at });
    }
  }
  const result: ReconcileResult = {
    at,
    durationMs: Math.round(performance.now() - t0),
    leader: ctx.leader,
    primary: desired.primary,
    epoch,
    regions: regionSummaries(observed, ctx.spec),
    channels,
    drift,
    plan,
    alertsRaised: alerts.raised,
    alertsResolved: alerts.resolved,
    ...(authority ? { authority } : {}),
  };
  if (runId !== null && store) {
    await store.finishReconcileRun(runId, {
      drift,
      summary: { channels: channels.map((c) => ({ ...c })), regions: result.regions },
    });
  }
  return result;
}
