/**
 * The read routing table (pure): which server serves reads for each region and read
 * class, from one reconcile pass and the previous pass's serving state.
 *
 * Eligibility of a replica for a budget B (the default `stalenessBudgetSeconds`, or a
 * read class's), with hysteresis so a flapping replica does not flap DNS:
 *
 * - healthy   = reachable, channel not `failed`, no table still in initial sync, lag known.
 * - serving → not serving as soon as it is not healthy or its lag exceeds B (one pass:
 *   a stale read is worse than a far one).
 * - not serving → serving only after `recoveryPasses` consecutive healthy passes with
 *   lag < B × `recoveryFraction` (default 3 passes under B/2): coming back is slow on
 *   purpose, so a replica oscillating around B stays out.
 * - no previous state (first pass of a new leader that found none in the control store):
 *   serving iff healthy with lag < B × `recoveryFraction` — there is no flapping history
 *   to damp, and waiting N passes would push every read to the primary after a restart.
 *
 * The choice for a point: the nearest (great-circle) among the serving replicas and the
 * primary, which is always eligible (it is never stale). "Else the next nearest, else
 * the primary" falls out of the ordering. Counting the primary at its own distance keeps
 * reads in the primary's region local instead of sending them across an ocean to a
 * replica; on a tie a replica wins, to keep load off the primary.
 */
import { RegionctlError } from '../errors.js';
import type { ChannelStatus } from '../observe/health.js';
import type { RegionsSpec } from '../spec/schema.js';
import { haversineKm, type LatLon } from './geo.js';

export const ROUTING_DOCUMENT_VERSION = 1;
/** The budget of reads that name no class. */
export const DEFAULT_CLASS = 'default';
export const DEFAULT_RECOVERY_PASSES = 3;
export const DEFAULT_RECOVERY_FRACTION = 0.5;

export interface RoutingPolicy {
  /** Budget in seconds per read class; `default` is `stalenessBudgetSeconds`. */
  budgets: Record<string, number>;
  recoveryPasses: number;
  recoveryFraction: number;
}

export function routingPolicy(spec: RegionsSpec): RoutingPolicy {
  const rr = spec.readRouting;
  if (!rr) {
    throw new RegionctlError(
      'E_ROUTING_CONFIG',
      'regions.yaml has no readRouting: section, so reads have no staleness budget',
      'add readRouting: { stalenessBudgetSeconds: 10 } (and optional classes)',
    );
  }
  return {
    // A class literally named `default` overrides the default budget.
    budgets: { [DEFAULT_CLASS]: rr.stalenessBudgetSeconds, ...(rr.classes ?? {}) },
    recoveryPasses: rr.recoveryPasses ?? DEFAULT_RECOVERY_PASSES,
    recoveryFraction: DEFAULT_RECOVERY_FRACTION,
  };
}

/** What one pass saw of a replica (from ReconcileResult: its channel and region summary). */
export interface ReplicaSample {
  region: string;
  reachable: boolean;
  status: ChannelStatus | null;
  lagSeconds: number | null;
  lagBytes: number | null;
  appliedLsn: string | null;
  /** Tables of its subscription still in initial copy: it holds part of the data. */
  tablesNotReady: string[];
}

export interface ServingState {
  serving: boolean;
  /** Consecutive passes meeting the way-back condition while not serving. */
  streak: number;
  /** When `serving` last changed (ISO). */
  since: string;
}

/** Hysteresis state: replica → class → state. Plain JSON: kept in memory and in the control store. */
export type RoutingState = Record<string, Record<string, ServingState>>;

export function healthProblem(s: ReplicaSample): string | null {
  if (!s.reachable) return 'unreachable';
  if (s.status === null) return 'no channel observed';
  if (s.status === 'failed') return 'channel failed';
  if (s.tablesNotReady.length > 0) return `initial copy of ${s.tablesNotReady.length} table(s) in progress`;
  if (s.lagSeconds === null) return 'lag unknown (no fresh heartbeat)';
  return null;
}

/** One pass of the hysteresis rule for one replica and one budget. */
export function nextServing(
  prev: ServingState | undefined,
  s: ReplicaSample,
  budget: number,
  policy: Pick<RoutingPolicy, 'recoveryPasses' | 'recoveryFraction'>,
  at: string,
): ServingState & { why: string | null } {
  const problem = healthProblem(s);
  const lag = s.lagSeconds ?? Number.POSITIVE_INFINITY;
  const within = problem === null && lag <= budget;
  const good = problem === null && lag < budget * policy.recoveryFraction;
  const over = `lag ${lag.toFixed(1)} s over budget ${budget} s`;
  if (prev === undefined) {
    return good
      ? { serving: true, streak: 0, since: at, why: null }
      : {
          serving: false,
          streak: 0,
          since: at,
          why: problem ?? (within ? 'lag above half the budget' : over),
        };
  }
  if (prev.serving) {
    if (within) return { ...prev, streak: 0, why: null };
    return { serving: false, streak: 0, since: at, why: problem ?? over };
  }
  const streak = good ? prev.streak + 1 : 0;
  if (streak >= policy.recoveryPasses) return { serving: true, streak: 0, since: at, why: null };
  const why = good
    ? `recovering: ${streak}/${policy.recoveryPasses} passes under ${budget * policy.recoveryFraction} s`
    : (problem ?? (within ? `lag above ${budget * policy.recoveryFraction} s (way back needs less)` : over));
  return { serving: false, streak, since: prev.since, why };
}

export interface RouteChoice {
  region: string;
  kind: 'replica' | 'primary';
  distanceKm: number;
}

export interface RoutingRegion {
  name: string;
  role: 'primary' | 'replica' | 'out';
  location: LatLon;
  endpoint: { host: string; port: number };
  reachable: boolean;
  /** Subscription the replica applies the primary's changes through (for read-your-writes). */
  subscription: string | null;
  /** Its channel receives a subset (row filters, column lists, withheld tables, residency). */
  filtered: boolean;
  channelStatus: ChannelStatus | null;
  lagSeconds: number | null;
  lagBytes: number | null;
  appliedLsn: string | null;
  /** Per class: may it serve reads now? (always true for the primary) */
  serving: Record<string, boolean>;
  /** Per class: why not (null when serving). */
  why: Record<string, string | null>;
}

/** The JSON routing document: what `regionctl route` prints and the client library reads. */
export interface RoutingDocument {
  version: typeof ROUTING_DOCUMENT_VERSION;
  generatedAt: string;
  name: string;
  database: string;
  primary: string;
  /** Failover generation of the primary: LSNs of another epoch are another primary's. */
  epoch: number;
  budgets: Record<string, number>;
  recovery: { passes: number; fraction: number };
  regions: RoutingRegion[];
  /** Region → class → where that region's reads go. */
  routes: Record<string, Record<string, RouteChoice>>;
}

/** The parts of a ReconcileResult the routing table needs. */
export interface RoutingInput {
  at: string;
  primary: string;
  epoch: number;
  regions: ReadonlyArray<{ region: string; reachable: boolean; tablesNotReady?: string[] }>;
  channels: ReadonlyArray<{
    from: string;
    to: string;
    status: ChannelStatus;
    lagSeconds: number | null;
    lagBytes: number | null;
    appliedLsn: string | null;
  }>;
}

function filteredRegions(spec: RegionsSpec): Set<string> {
  const out = new Set<string>();
  for (const c of spec.channels) {
    const f = c.filters;
    if (f && ((f.rows?.length ?? 0) > 0 || (f.columns?.length ?? 0) > 0 || (f.withhold?.length ?? 0) > 0)) {
      out.add(c.to);
    }
  }
  for (const rule of spec.replication.residency ?? []) {
    for (const r of spec.regions) if (!rule.allowedRegions.includes(r.name)) out.add(r.name);
  }
  return out;
}

/** Subscription name as regionctl names it (src/model/names.ts), passed in to keep this module pure of it. */
export type SubscriptionNamer = (from: string, to: string) => string;

export function computeRouting(
  spec: RegionsSpec,
  input: RoutingInput,
  previous: RoutingState,
  policy: RoutingPolicy,
  subscriptionName: SubscriptionNamer,
): { document: RoutingDocument; state: RoutingState } {
  const filtered = filteredRegions(spec);
  const classes = Object.keys(policy.budgets).sort();
  const state: RoutingState = {};
  const regions: RoutingRegion[] = [];
  for (const r of spec.regions) {
    const summary = input.regions.find((x) => x.region === r.name);
    const channel = input.channels.find((c) => c.from === input.primary && c.to === r.name);
    const base = {
      name: r.name,
      location: { lat: r.location.lat, lon: r.location.lon },
      endpoint: { host: r.endpoint.host, port: r.endpoint.port },
      reachable: summary?.reachable ?? false,
      filtered: filtered.has(r.name),
      channelStatus: channel?.status ?? null,
      lagSeconds: channel?.lagSeconds ?? null,
      lagBytes: channel?.lagBytes ?? null,
      appliedLsn: channel?.appliedLsn ?? null,
    };
    if (r.name === input.primary) {
      regions.push({
        ...base,
        role: 'primary',
        subscription: null,
        filtered: false,
        serving: Object.fromEntries(classes.map((k) => [k, true])),
        why: Object.fromEntries(classes.map((k) => [k, null])),
      });
      continue;
    }
    if (!channel) {
      // Fenced or rebuilding (no channel in the effective spec): it serves nothing.
      regions.push({
        ...base,
        role: 'out',
        subscription: null,
        serving: Object.fromEntries(classes.map((k) => [k, false])),
        why: Object.fromEntries(classes.map((k) => [k, 'no channel from the primary'])),
      });
      continue;
    }
    const sample: ReplicaSample = {
      region: r.name,
      reachable: base.reachable,
      status: channel.status,
      lagSeconds: channel.lagSeconds,
      lagBytes: channel.lagBytes,
      appliedLsn: channel.appliedLsn,
      tablesNotReady: summary?.tablesNotReady ?? [],
    };
    const serving: Record<string, boolean> = {};
    const why: Record<string, string | null> = {};
    const st: Record<string, ServingState> = {};
    for (const k of classes) {
      const budget = policy.budgets[k] ?? 0;
      const n = nextServing(previous[r.name]?.[k], sample, budget, policy, input.at);
      serving[k] = n.serving;
      why[k] = n.why;
      st[k] = { serving: n.serving, streak: n.streak, since: n.since };
    }
    state[r.name] = st;
    regions.push({
      ...base,
      role: 'replica',
      subscription: subscriptionName(input.primary, r.name),
      serving,
      why,
    });
  }
  const document: RoutingDocument = {
    version: ROUTING_DOCUMENT_VERSION,
    generatedAt: input.at,
    name: spec.name,
    database: spec.database,
    primary: input.primary,
    epoch: input.epoch,
    budgets: { ...policy.budgets },
    recovery: { passes: policy.recoveryPasses, fraction: policy.recoveryFraction },
    regions,
    routes: {},
  };
  for (const r of regions) {
    document.routes[r.name] = Object.fromEntries(
      classes.map((k) => [k, chooseRoute(document, r.location, k)]),
    );
  }
  return { document, state };
}

/** Where reads from `from` of class `cls` go, by the document. */
export function chooseRoute(doc: RoutingDocument, from: LatLon, cls: string = DEFAULT_CLASS): RouteChoice {
  if (doc.budgets[cls] === undefined) {
    throw new RegionctlError(
      'E_ROUTE_CLASS',
      `unknown read class '${cls}'`,
      `use one of: ${Object.keys(doc.budgets).sort().join(', ')} (readRouting.classes in regions.yaml)`,
    );
  }
  const candidates: RouteChoice[] = [];
  for (const r of doc.regions) {
    const kind = r.role === 'primary' ? 'primary' : r.role === 'replica' && r.serving[cls] ? 'replica' : null;
    if (kind)
      candidates.push({ region: r.name, kind, distanceKm: Math.round(haversineKm(from, r.location)) });
  }
  candidates.sort(
    (a, b) =>
      a.distanceKm - b.distanceKm ||
      (a.kind === b.kind ? 0 : a.kind === 'replica' ? -1 : 1) ||
      a.region.localeCompare(b.region),
  );
  const best = candidates[0];
  if (!best) {
    throw new RegionctlError(
      'E_ROUTING_DOCUMENT',
      `routing document names no primary (${doc.primary} is not among its regions)`,
      'regenerate it: `regionctl reconcile --watch` rewrites it every pass',
    );
  }
  return best;
}

/** A region's location from the document, or an error naming the known regions. */
export function regionLocation(doc: RoutingDocument, region: string): LatLon {
  const r = doc.regions.find((x) => x.name === region);
  if (!r) {
    throw new RegionctlError(
      'E_UNKNOWN_REGION',
      `unknown region '${region}'`,
      `use one of: ${doc.regions.map((x) => x.name).join(', ')}`,
    );
  }
  return r.location;
}

/** Checks a document read from a file or URL before anything routes by it. */
export function parseRoutingDocument(text: string, source: string): RoutingDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new RegionctlError(
      'E_ROUTING_DOCUMENT',
      `${source} is not JSON: ${(e as Error).message}`,
      'it is written by `regionctl reconcile --watch`',
    );
  }
  const d = doc as Partial<RoutingDocument> | null;
  if (
    !d ||
    typeof d !== 'object' ||
    d.version !== ROUTING_DOCUMENT_VERSION ||
    typeof d.primary !== 'string' ||
    typeof d.epoch !== 'number' ||
    !Array.isArray(d.regions) ||
    typeof d.budgets !== 'object'
  ) {
    throw new RegionctlError(
      'E_ROUTING_DOCUMENT',
      `${source} is not a version ${ROUTING_DOCUMENT_VERSION} routing document`,
      'point the client at the file `regionctl reconcile --watch` writes (readRouting.document)',
    );
  }
  return d as RoutingDocument;
}
