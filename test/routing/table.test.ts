/** The routing table's pure core: distance, the choice, per-class budgets, hysteresis, tokens. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { laterToken, parseToken } from '../../src/client/token.js';
import { subscriptionName } from '../../src/model/names.js';
import { haversineKm, parseLatLon } from '../../src/routing/geo.js';
import {
  chooseRoute,
  computeRouting,
  nextServing,
  type ReplicaSample,
  type RoutingInput,
  type RoutingState,
  routingPolicy,
} from '../../src/routing/table.js';
import type { RegionsSpec } from '../../src/spec/schema.js';

const spec = parse(readFileSync(join(import.meta.dirname, '../../regions.yaml'), 'utf8')) as RegionsSpec;
const policy = routingPolicy(spec); // default 10 s, catalog 30 s, profile 5 s; 3 passes under half

function pass(lag: Record<string, number | null>, opts: { at?: string; down?: string[] } = {}): RoutingInput {
  return {
    at: opts.at ?? '2026-01-01T00:00:00.000Z',
    primary: 'us-east-1',
    epoch: 0,
    regions: spec.regions.map((r) => ({ region: r.name, reachable: !(opts.down ?? []).includes(r.name) })),
    channels: Object.entries(lag).map(([to, l]) => ({
      from: 'us-east-1',
      to,
      status: (opts.down ?? []).includes(to) ? 'failed' : 'active',
      lagSeconds: l,
      lagBytes: l === null ? null : l * 1000,
      appliedLsn: '0/1000',
    })),
  };
}

function run(inputs: RoutingInput[], state: RoutingState = {}) {
  let s = state;
  let doc = computeRouting(spec, inputs[0] ?? pass({}), s, policy, subscriptionName).document;
  for (const i of inputs) {
    const r = computeRouting(spec, i, s, policy, subscriptionName);
    s = r.state;
    doc = r.document;
  }
  return { doc, state: s };
}

describe('great-circle distance', () => {
  it('matches known distances within 0.5 %', () => {
    const dublin = { lat: 53.3, lon: -6.3 };
    const virginia = { lat: 38.9, lon: -77.4 };
    const singapore = { lat: 1.35, lon: 103.8 };
    expect(haversineKm(dublin, virginia)).toBeGreaterThan(5400);
    expect(haversineKm(dublin, virginia)).toBeLessThan(5600);
    expect(haversineKm(virginia, singapore)).toBeGreaterThan(15_400);
    expect(haversineKm(dublin, dublin)).toBe(0);
    // Antipodes: half the circumference, not NaN.
    expect(haversineKm({ lat: 0, lon: 0 }, { lat: 0, lon: 180 })).toBeCloseTo(Math.PI * 6371.0088, 0);
  });

  it('parses --near', () => {
    expect(parseLatLon('48.85,2.35')).toEqual({ lat: 48.85, lon: 2.35 });
    expect(parseLatLon(' -33.9 , 151.2 ')).toEqual({ lat: -33.9, lon: 151.2 });
    expect(parseLatLon('91,0')).toBeNull();
    expect(parseLatLon('paris')).toBeNull();
  });
});

describe('the choice', () => {
  it('sends each region to its own healthy replica, and the primary region to the primary', () => {
    const { doc } = run([pass({ 'eu-west-1': 0.2, 'ap-southeast-1': 1 })]);
    expect(doc.routes['eu-west-1']?.default).toMatchObject({
      region: 'eu-west-1',
      kind: 'replica',
      distanceKm: 0,
    });
    expect(doc.routes['ap-southeast-1']?.default).toMatchObject({
      region: 'ap-southeast-1',
      kind: 'replica',
    });
    expect(doc.routes['us-east-1']?.default).toMatchObject({ region: 'us-east-1', kind: 'primary' });
    // Paris: Dublin is nearest.
    expect(chooseRoute(doc, { lat: 48.85, lon: 2.35 }).region).toBe('eu-west-1');
    // Tokyo: Singapore.
    expect(chooseRoute(doc, { lat: 35.7, lon: 139.7 }).region).toBe('ap-southeast-1');
    expect(doc.regions.find((r) => r.name === 'ap-southeast-1')?.filtered).toBe(true);
    expect(doc.regions.find((r) => r.name === 'eu-west-1')?.subscription).toBe('rc_sub_us_east_1__eu_west_1');
  });

  it('skips a replica beyond the budget for the next nearest, else the primary', () => {
    // Tokyo, Singapore lagging: the next nearest of the rest (Dublin 9 600 km vs Virginia 10 900 km).
    const { doc } = run([pass({ 'eu-west-1': 0.2, 'ap-southeast-1': 12 })]);
    expect(chooseRoute(doc, { lat: 35.7, lon: 139.7 })).toMatchObject({
      region: 'eu-west-1',
      kind: 'replica',
    });
    const none = run([pass({ 'eu-west-1': 11, 'ap-southeast-1': 12 })]).doc;
    expect(chooseRoute(none, { lat: 35.7, lon: 139.7 })).toMatchObject({
      region: 'us-east-1',
      kind: 'primary',
    });
  });

  it('applies each read class its own budget', () => {
    const { doc } = run([pass({ 'eu-west-1': 7, 'ap-southeast-1': 1 })]);
    // 7 s lag from a fresh start: under catalog's half budget (15 s), over profile's 5 s and default's half (5 s).
    expect(doc.routes['eu-west-1']?.catalog?.region).toBe('eu-west-1');
    expect(doc.routes['eu-west-1']?.profile?.region).toBe('us-east-1');
    expect(doc.routes['eu-west-1']?.default?.region).toBe('us-east-1');
    expect(() => chooseRoute(doc, { lat: 0, lon: 0 }, 'nope')).toThrow(/unknown read class 'nope'/);
  });

  it('never routes to an unreachable replica, one with its channel failed or lag unknown, or one still copying', () => {
    const down = run([pass({ 'eu-west-1': 0, 'ap-southeast-1': 0 }, { down: ['eu-west-1'] })]).doc;
    expect(down.routes['eu-west-1']?.default?.region).toBe('us-east-1');
    const unknown = run([pass({ 'eu-west-1': null, 'ap-southeast-1': 0 })]).doc;
    expect(unknown.regions.find((r) => r.name === 'eu-west-1')?.why.default).toMatch(/lag unknown/);
    const input = pass({ 'eu-west-1': 0, 'ap-southeast-1': 0 });
    const copying = {
      ...input,
      regions: input.regions.map((r) =>
        r.region === 'eu-west-1' ? { ...r, tablesNotReady: ['public.orders'] } : r,
      ),
    };
    expect(run([copying]).doc.routes['eu-west-1']?.default?.region).toBe('us-east-1');
  });
});

describe('hysteresis', () => {
  const sample = (lag: number | null, reachable = true): ReplicaSample => ({
    region: 'eu-west-1',
    reachable,
    status: 'active',
    lagSeconds: lag,
    lagBytes: 0,
    appliedLsn: null,
    tablesNotReady: [],
  });
  const p = { recoveryPasses: 3, recoveryFraction: 0.5 };

  it('leaves at once, comes back after 3 consecutive passes under half the budget', () => {
    let s = nextServing(undefined, sample(1), 10, p, 't0');
    expect(s.serving).toBe(true);
    s = nextServing(s, sample(9.9), 10, p, 't1'); // within the budget: stays
    expect(s.serving).toBe(true);
    s = nextServing(s, sample(10.1), 10, p, 't2');
    expect(s).toMatchObject({ serving: false, since: 't2' });
    expect(s.why).toMatch(/over budget/);
    s = nextServing(s, sample(4), 10, p, 't3');
    s = nextServing(s, sample(4), 10, p, 't4');
    expect(s).toMatchObject({ serving: false, streak: 2 });
    expect(s.why).toMatch(/recovering: 2\/3/);
    s = nextServing(s, sample(4), 10, p, 't5');
    expect(s).toMatchObject({ serving: true, since: 't5' });
  });

  it('a replica flapping around the budget stays out: the way back needs lag under half of it, in a row', () => {
    let s = nextServing({ serving: true, streak: 0, since: 't' }, sample(11), 10, p, 't0');
    const served: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      s = nextServing(s, sample(i % 2 ? 9 : 11), 10, p, `t${i}`);
      served.push(s.serving);
    }
    expect(served.every((x) => !x)).toBe(true);
    // Good passes interrupted by one bad pass start over.
    s = nextServing(s, sample(1), 10, p, 'a');
    s = nextServing(s, sample(1), 10, p, 'b');
    s = nextServing(s, sample(6), 10, p, 'c');
    s = nextServing(s, sample(1), 10, p, 'd');
    expect(s).toMatchObject({ serving: false, streak: 1 });
  });

  it('state carries across passes through computeRouting and reaches DNS choices only after recovery', () => {
    let r = run([pass({ 'eu-west-1': 0, 'ap-southeast-1': 0 })]);
    expect(r.doc.routes['eu-west-1']?.default?.region).toBe('eu-west-1');
    r = run([pass({ 'eu-west-1': 20, 'ap-southeast-1': 0 })], r.state);
    expect(r.doc.routes['eu-west-1']?.default?.region).toBe('us-east-1');
    r = run(
      [pass({ 'eu-west-1': 0, 'ap-southeast-1': 0 }), pass({ 'eu-west-1': 0, 'ap-southeast-1': 0 })],
      r.state,
    );
    expect(r.doc.routes['eu-west-1']?.default?.region).toBe('us-east-1');
    r = run([pass({ 'eu-west-1': 0, 'ap-southeast-1': 0 })], r.state);
    expect(r.doc.routes['eu-west-1']?.default?.region).toBe('eu-west-1');
    // JSON round trip (the control store keeps it as jsonb).
    expect(JSON.parse(JSON.stringify(r.state))).toEqual(r.state);
  });

  it('the new primary after a failover is a primary, and a region without a channel serves nothing', () => {
    const input: RoutingInput = {
      ...pass({}),
      primary: 'eu-west-1',
      epoch: 1,
      channels: [
        {
          from: 'eu-west-1',
          to: 'ap-southeast-1',
          status: 'active',
          lagSeconds: 0,
          lagBytes: 0,
          appliedLsn: '0/1',
        },
      ],
    };
    const { document: doc } = computeRouting(spec, input, {}, policy, subscriptionName);
    expect(doc.epoch).toBe(1);
    expect(doc.regions.find((r) => r.name === 'us-east-1')?.role).toBe('out');
    expect(doc.routes['us-east-1']?.default).toMatchObject({ region: 'eu-west-1', kind: 'primary' });
    expect(doc.regions.find((r) => r.name === 'ap-southeast-1')?.subscription).toBe(
      'rc_sub_eu_west_1__ap_southeast_1',
    );
  });
});

describe('session tokens', () => {
  it('round-trip, reject garbage and order by epoch then position', () => {
    expect(parseToken('e1.16/B374D848')).toEqual({ epoch: 1, lsn: '16/B374D848' });
    expect(parseToken('e0.0/a')).toEqual({ epoch: 0, lsn: '0/A' });
    expect(() => parseToken('e1.16/B374D848; drop')).toThrow(/not a regionctl session token/);
    expect(() => parseToken('')).toThrow(/E_TOKEN_INVALID|session token/);
    expect(laterToken('e0.1/0', 'e0.0/FFFFFFFF')).toBe('e0.1/0');
    expect(laterToken('e0.9/0', 'e1.0/1')).toBe('e1.0/1');
    expect(laterToken(null, 'e1.0/1')).toBe('e1.0/1');
  });
});
