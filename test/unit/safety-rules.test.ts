/**
 * The detection and promotion rules (src/safety) as pure functions: named situations
 * from the fault suite, then every combination of witness probes, agent liveness, lease
 * state and fence outcome checked against the safety properties the rules must keep.
 */
import { describe, expect, it } from 'vitest';
import { sequenceMargins } from '../../src/failover/failover.js';
import {
  type DetectionInput,
  detectPrimaryDown,
  majority,
  type WitnessReport,
} from '../../src/safety/detection.js';
import { mayPromote } from '../../src/safety/promotion.js';

const T = 3;
const w = (region: string, alive: boolean, fails: number | null): WitnessReport => ({
  region,
  alive,
  primaryProbeFailures: fails,
});
const base = (over: Partial<DetectionInput>): DetectionInput => ({
  primary: 'us-east-1',
  witnesses: [w('eu-west-1', true, 0), w('ap-southeast-1', true, 0)],
  primaryAgent: { alive: true, databaseFailures: 0 },
  primaryLeaseHeld: true,
  failureThreshold: T,
  ...over,
});

describe('detection: named situations', () => {
  it.each([
    ['healthy', base({}), false],
    [
      'crash: its agent reports the database dead (lease still held)',
      base({ primaryAgent: { alive: true, databaseFailures: 3 } }),
      true,
    ],
    [
      'control plane cut (scenario 4): witnesses reach it, lease held, streams silent',
      base({ streamSilence: { 'eu-west-1': 45, 'ap-southeast-1': 45 } }),
      false,
    ],
    [
      'region isolated (scenarios 2, 3): witnesses fail, lease lapsed, agent gone',
      base({
        witnesses: [w('eu-west-1', true, 3), w('ap-southeast-1', true, 4)],
        primaryAgent: { alive: false, databaseFailures: 0 },
        primaryLeaseHeld: false,
      }),
      true,
    ],
    [
      'witnesses fail but the agent still renews the lease (witness-side partition)',
      base({ witnesses: [w('eu-west-1', true, 3), w('ap-southeast-1', true, 3)] }),
      false,
    ],
    [
      'one witness of two fails: no majority',
      base({ witnesses: [w('eu-west-1', true, 5), w('ap-southeast-1', true, 0)], primaryLeaseHeld: false }),
      false,
    ],
    [
      'agent crashed, database healthy: witnesses still reach it',
      base({ primaryAgent: null, primaryLeaseHeld: false }),
      false,
    ],
    [
      'flapping: failures below the threshold',
      base({ witnesses: [w('eu-west-1', true, 2), w('ap-southeast-1', true, 2)], primaryLeaseHeld: false }),
      false,
    ],
    [
      'a dead witness does not vote',
      base({ witnesses: [w('eu-west-1', true, 3), w('ap-southeast-1', false, 3)], primaryLeaseHeld: false }),
      false,
    ],
    ['single region: nobody can witness', base({ witnesses: [], primaryLeaseHeld: false }), false],
  ])('%s', (_name, input, down) => {
    expect(detectPrimaryDown(input).down).toBe(down);
  });
});

describe('detection: every combination keeps the safety properties', () => {
  const probeStates = [null, 0, 1, T - 1, T, T + 5];
  const combos: DetectionInput[] = [];
  for (const aAlive of [true, false])
    for (const aFails of probeStates)
      for (const bAlive of [true, false])
        for (const bFails of probeStates)
          for (const agent of [null, true, false])
            for (const dbFails of probeStates)
              for (const lease of [true, false])
                for (const silent of [undefined, { 'eu-west-1': 60, 'ap-southeast-1': null }])
                  combos.push(
                    base({
                      witnesses: [w('eu-west-1', aAlive, aFails), w('ap-southeast-1', bAlive, bFails)],
                      primaryAgent: agent === null ? null : { alive: agent, databaseFailures: dbFails },
                      primaryLeaseHeld: lease,
                      ...(silent ? { streamSilence: silent } : {}),
                    }),
                  );

  it(`covers ${combos.length} combinations`, () => {
    expect(combos.length).toBeGreaterThan(10_000);
  });

  it('down ⇒ (its live agent reports the database dead) or (a live-witness majority fails and the lease lapsed)', () => {
    for (const c of combos) {
      const d = detectPrimaryDown(c);
      if (!d.down) continue;
      const agentSaysDead =
        c.primaryAgent?.alive === true && (c.primaryAgent.databaseFailures ?? 0) >= c.failureThreshold;
      const votes = c.witnesses.filter(
        (x) => x.alive && (x.primaryProbeFailures ?? 0) >= c.failureThreshold,
      ).length;
      expect(
        agentSaysDead || (votes >= majority(c.witnesses.length) && !c.primaryLeaseHeld),
        JSON.stringify(c),
      ).toBe(true);
    }
  });

  it('a live agent reporting its database dead is always enough', () => {
    for (const c of combos) {
      if (c.primaryAgent?.alive && (c.primaryAgent.databaseFailures ?? 0) >= T)
        expect(detectPrimaryDown(c).down).toBe(true);
    }
  });

  it('stream silence never changes the verdict', () => {
    for (const c of combos) {
      const { streamSilence: _s, ...without } = c;
      expect(detectPrimaryDown(c).down).toBe(detectPrimaryDown(without).down);
    }
  });
});

describe('promotion', () => {
  const now = 100_000;
  it.each([
    ['fence confirmed', { fenceConfirmed: true, primaryLeaseHeld: true, leaseGoneSinceMs: null }, true],
    [
      'lease gone for longer than the margin',
      { fenceConfirmed: false, primaryLeaseHeld: false, leaseGoneSinceMs: now - 1500 },
      true,
    ],
    [
      'lease gone, margin not yet passed',
      { fenceConfirmed: false, primaryLeaseHeld: false, leaseGoneSinceMs: now - 200 },
      false,
    ],
    [
      'lease still held, fence unconfirmed',
      { fenceConfirmed: false, primaryLeaseHeld: true, leaseGoneSinceMs: null },
      false,
    ],
    [
      'lease state unknown, fence unconfirmed',
      { fenceConfirmed: false, primaryLeaseHeld: false, leaseGoneSinceMs: null },
      false,
    ],
  ])('%s', (_n, i, allowed) => {
    expect(mayPromote({ ...i, nowMs: now, marginMs: 1000 }).allowed).toBe(allowed);
  });

  it('waits exactly the rest of the margin', () => {
    const d = mayPromote({
      fenceConfirmed: false,
      primaryLeaseHeld: false,
      leaseGoneSinceMs: now - 300,
      nowMs: now,
      marginMs: 1000,
    });
    expect(d).toMatchObject({ allowed: false, waitMs: 700 });
  });

  it('every combination: allowed ⇒ fence confirmed, or lease gone ≥ margin, or risk accepted (and recorded as such)', () => {
    for (const fenceConfirmed of [true, false])
      for (const primaryLeaseHeld of [true, false])
        for (const gone of [null, 0, 500, 999, 1000, 5000])
          for (const acceptSplitBrainRisk of [false, true]) {
            const i = {
              fenceConfirmed,
              primaryLeaseHeld,
              leaseGoneSinceMs: gone === null ? null : now - gone,
              nowMs: now,
              marginMs: 1000,
              acceptSplitBrainRisk,
            };
            const d = mayPromote(i);
            if (!d.allowed) continue;
            const safe = fenceConfirmed || (!primaryLeaseHeld && gone !== null && gone >= 1000);
            expect(safe || (acceptSplitBrainRisk && d.basis === 'accepted-risk'), JSON.stringify(i)).toBe(
              true,
            );
          }
  });
});

describe('sequence margins from observed draw rates', () => {
  const at = (msAgo: number) => new Date(1_000_000 - msAgo);
  it.each([
    { perSecond: null, msAgo: 5000, want: undefined, why: 'no rate known: the fixed margin applies' },
    {
      perSecond: 1000,
      msAgo: 5000,
      want: undefined,
      why: '2 × 1000/s × 15 s = 30 000, under the fixed margin',
    },
    { perSecond: 50_000, msAgo: 5000, want: 1_500_000, why: '2 × 50 000/s × (5 s + 10 s)' },
    {
      perSecond: 10_000,
      msAgo: 60_000,
      want: 1_400_000,
      why: 'a minute since the observation: 2 × 10 000/s × 70 s',
    },
  ])('$why', ({ perSecond, msAgo, want }) => {
    const m = sequenceMargins(new Map([['s.q', { observedAt: at(msAgo), perSecond }]]), 1_000_000);
    expect(m.get('s.q')).toBe(want);
  });
});
