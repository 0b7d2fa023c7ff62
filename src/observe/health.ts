/**
 * Channel health from one observation (pure): lag in bytes and seconds, time to catch
 * up, and the seed's status rules — active; alert above the channel's alert threshold;
 * lagging beyond twice it; failed when the subscription is down, the slot is lost, or a
 * side is unreachable.
 */
import type { DesiredChannel, DesiredState } from '../model/desired.js';
import { compareLsn, lsnDistance } from '../model/lsn.js';
import type { Observed, ReachableRegion } from '../model/observed.js';

export type ChannelStatus = 'active' | 'alert' | 'lagging' | 'failed';

export interface ChannelHealth {
  from: string;
  to: string;
  status: ChannelStatus;
  /** Why the status is what it is, in words (empty when active). */
  reasons: string[];
  /** Primary's current LSN, in the primary's LSN space. */
  primaryLsn: string | null;
  /** The furthest position the secondary is known to have applied (primary's LSN space). */
  appliedLsn: string | null;
  lagBytes: number | null;
  /** Age of the oldest change the secondary has not applied, by the primary's clock. */
  lagSeconds: number | null;
  /** How lagSeconds was obtained. */
  lagSecondsSource: 'heartbeat' | 'bytes-rate' | 'none';
  /** Primary WAL rate (bytes/s) since the previous observation, if known. */
  writeRateBps: number | null;
  /** Secondary apply rate (bytes/s) since the previous observation, if known. */
  applyRateBps: number | null;
  /** Seconds to catch up at the observed rates: 0 when caught up, null when not catching up. */
  catchUpSeconds: number | null;
  alertSeconds: number;
  failoverMaxLagSeconds: number;
}

/** What the previous observation said of a channel (from the control store). */
export interface PreviousSample {
  primaryLsn: string | null;
  appliedLsn: string | null;
  at: string;
}

export interface HealthOptions {
  heartbeatIntervalSeconds: number;
  previous?: Map<string, PreviousSample>;
}

export function channelKey(from: string, to: string): string {
  return `${from}->${to}`;
}

function maxLsn(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareLsn(a, b) >= 0 ? a : b;
}

function seconds(isoA: string, isoB: string): number {
  return (Date.parse(isoA) - Date.parse(isoB)) / 1000;
}

function rate(now: string | null, before: string | null, dt: number): number | null {
  if (now === null || before === null || dt <= 0) return null;
  if (compareLsn(now, before) < 0) return null; // another LSN space (a failover happened)
  return lsnDistance(now, before) / dt;
}

export function channelHealth(
  c: DesiredChannel,
  observed: Observed,
  opts: HealthOptions,
  at: string,
): ChannelHealth {
  const find = (r: string) => observed.regions.find((x) => x.region === r);
  const pub = find(c.from);
  const sub = find(c.to);
  const reasons: string[] = [];
  const base: ChannelHealth = {
    from: c.from,
    to: c.to,
    status: 'active',
    reasons,
    primaryLsn: null,
    appliedLsn: null,
    lagBytes: null,
    lagSeconds: null,
    lagSecondsSource: 'none',
    writeRateBps: null,
    applyRateBps: null,
    catchUpSeconds: null,
    alertSeconds: c.channel.rpo.alertSeconds,
    failoverMaxLagSeconds: c.channel.rpo.failoverMaxLagSeconds,
  };
  const p: ReachableRegion | null = pub?.reachable ? pub : null;
  const s: ReachableRegion | null = sub?.reachable ? sub : null;
  if (!p) reasons.push(`primary ${c.from} unreachable${pub && !pub.reachable ? `: ${pub.reason}` : ''}`);
  if (!s) reasons.push(`secondary ${c.to} unreachable${sub && !sub.reachable ? `: ${sub.reason}` : ''}`);

  const slot = p?.slots.find((x) => x.name === c.subscription.slotName) ?? null;
  const subscription = s?.subscriptions.find((x) => x.name === c.subscription.name) ?? null;
  if (p && !slot) reasons.push(`slot ${c.subscription.slotName} missing on ${c.from}`);
  if (slot && (slot.walStatus === 'lost' || slot.invalidationReason)) {
    reasons.push(`slot ${slot.name} lost (${slot.invalidationReason ?? slot.walStatus})`);
  }
  if (s && !subscription) reasons.push(`subscription ${c.subscription.name} missing on ${c.to}`);
  if (subscription && !subscription.enabled) reasons.push(`subscription ${subscription.name} disabled`);
  if (subscription?.enabled && subscription.workerPid === null) reasons.push('apply worker not running');
  const down = reasons.length > 0;

  base.primaryLsn = p?.currentLsn ?? null;
  base.appliedLsn = maxLsn(subscription?.appliedLsn ?? null, slot?.confirmedFlushLsn ?? null);
  if (base.primaryLsn && base.appliedLsn) base.lagBytes = lsnDistance(base.primaryLsn, base.appliedLsn);

  const prev = opts.previous?.get(channelKey(c.from, c.to));
  if (prev) {
    const dt = seconds(at, prev.at);
    base.writeRateBps = rate(base.primaryLsn, prev.primaryLsn, dt);
    base.applyRateBps = rate(base.appliedLsn, prev.appliedLsn, dt);
  }

  // Lag in seconds from the heartbeat: both timestamps come from the primary's clock.
  const hbP = p?.heartbeats.find((h) => h.region === c.from);
  const hbS = s?.heartbeats.find((h) => h.region === c.from);
  const interval = opts.heartbeatIntervalSeconds;
  const fresh = p && hbP ? seconds(p.serverTime, hbP.writtenAt) <= 3 * interval + 1 : false;
  if (p && hbP && fresh) {
    base.lagSecondsSource = 'heartbeat';
    if (hbS && hbS.epoch === hbP.epoch && hbS.seq >= hbP.seq) base.lagSeconds = 0;
    else if (hbS && hbS.epoch === hbP.epoch) {
      // The secondary has heartbeat k but not k+1 (written one interval later): the oldest
      // change it misses is between those two; take the middle.
      base.lagSeconds = Math.max(0, seconds(p.serverTime, hbS.writtenAt) - interval / 2);
    } else base.lagSeconds = null;
  } else if (base.lagBytes !== null) {
    base.lagSecondsSource = 'bytes-rate';
    if (base.lagBytes === 0) base.lagSeconds = 0;
    else if (base.writeRateBps && base.writeRateBps > 0) base.lagSeconds = base.lagBytes / base.writeRateBps;
  }
  if (base.lagBytes === 0) base.catchUpSeconds = 0;
  else if (base.lagBytes !== null && base.applyRateBps !== null && base.writeRateBps !== null) {
    const closing = base.applyRateBps - base.writeRateBps;
    base.catchUpSeconds = closing > 0 ? base.lagBytes / closing : null;
  }

  if (down) base.status = 'failed';
  else if (base.lagSeconds === null) {
    reasons.push('lag in seconds unknown (no fresh heartbeat: is `regionctl reconcile --watch` running?)');
  } else if (base.lagSeconds > 2 * base.alertSeconds) {
    base.status = 'lagging';
    reasons.push(
      `lag ${base.lagSeconds.toFixed(1)} s is beyond twice the alert threshold ${base.alertSeconds} s`,
    );
  } else if (base.lagSeconds > base.alertSeconds) {
    base.status = 'alert';
    reasons.push(`lag ${base.lagSeconds.toFixed(1)} s exceeds the alert threshold ${base.alertSeconds} s`);
  }
  return base;
}

export function allChannelHealth(
  desired: DesiredState,
  observed: Observed,
  opts: HealthOptions,
  at: string,
): ChannelHealth[] {
  return desired.channels.map((c) => channelHealth(c, observed, opts, at));
}

export type RegionRole = 'primary' | 'secondary' | 'fenced' | 'unreachable' | 'unknown';

/**
 * What a region is, from what it lets application roles do: a writable region is a
 * primary; a region whose roles cannot log in is fenced; one following a managed
 * subscription is a secondary.
 */
export function regionRole(o: Observed['regions'][number], appRoles: string[]): RegionRole {
  if (!o.reachable) return 'unreachable';
  if (!o.databaseExists) return 'unknown';
  const guards = o.guards.filter((g) => appRoles.includes(g.role) && g.exists);
  if (guards.length > 0 && guards.every((g) => !g.canLogin)) return 'fenced';
  if (guards.some((g) => g.writableTables.length > 0 && !g.defaultReadOnly)) return 'primary';
  if (o.subscriptions.some((s) => s.name.startsWith('rc_sub_'))) return 'secondary';
  return 'unknown';
}
