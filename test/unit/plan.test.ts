import { describe, expect, it } from 'vitest';
import { convergedObservation, syntheticSpec } from '../../bench/synthetic.js';
import { desiredState } from '../../src/model/desired.js';
import type { Observed, ReachableRegion } from '../../src/model/observed.js';
import { actionKey } from '../../src/plan/actions.js';
import { planSteadyState } from '../../src/plan/plan.js';
import { renderMarkdown, renderText } from '../../src/plan/render.js';

function setup(regions = 3, tables = 4) {
  const spec = syntheticSpec(regions, tables);
  const desired = desiredState(spec);
  const observed = convergedObservation(desired);
  return { spec, desired, observed };
}

function region(o: Observed, name: string): ReachableRegion {
  const r = o.regions.find((x) => x.region === name);
  if (!r?.reachable) throw new Error(`fixture: ${name} missing`);
  return r;
}

describe('steady-state planner', () => {
  it('plans nothing for a converged topology', () => {
    const { desired, observed } = setup();
    const plan = planSteadyState(desired, observed);
    expect(plan.actions).toEqual([]);
    expect(plan.problems).toEqual([]);
  });

  it('is deterministic: same inputs, same plan, byte for byte', () => {
    const { desired, observed } = setup(5, 10);
    for (const r of observed.regions) if (r.reachable) r.publications = [];
    const a = JSON.stringify(planSteadyState(desired, observed));
    const b = JSON.stringify(planSteadyState(desired, structuredClone(observed)));
    expect(a).toBe(b);
  });

  it('creates publication, heartbeat, guard and subscription on an empty topology, in order', () => {
    const { desired, observed } = setup(2, 2);
    for (const r of observed.regions) {
      if (!r.reachable) continue;
      r.publications = [];
      r.subscriptions = [];
      r.heartbeatInstalled = false;
      r.guards = [
        {
          role: 'app',
          exists: true,
          writableTables: desired.applicationTables,
          defaultReadOnly: false,
          canLogin: true,
          sessions: 0,
        },
      ];
    }
    const plan = planSteadyState(desired, observed);
    expect(plan.actions.map((a) => `${a.kind}@${a.region}`)).toEqual([
      'install-heartbeat@region-000',
      'install-heartbeat@region-001',
      'set-guard@region-001',
      'create-publication@region-000',
      'truncate-tables@region-001',
      'create-subscription@region-001',
    ]);
    const keys = plan.actions.map(actionKey);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('plans an alter plus refresh when the spec adds a table', () => {
    const { spec, observed } = setup(2, 3);
    spec.replication.tables.push('public.extra');
    const desired = desiredState(spec);
    for (const r of observed.regions) {
      if (r.reachable)
        r.tables.push({
          table: 'public.extra',
          replicaIdentity: 'd',
          hasPrimaryKey: true,
          columnsSignature: 'id:bigint:nn',
        });
    }
    const plan = planSteadyState(desired, observed);
    const kinds = plan.actions.filter((a) => a.kind !== 'set-guard').map((a) => a.kind);
    expect(kinds).toEqual(['alter-publication', 'refresh-subscription']);
    const alter = plan.actions.find((a) => a.kind === 'alter-publication');
    expect(alter?.kind === 'alter-publication' && alter.added).toEqual(['public.extra']);
  });

  it('re-copies a table whose row filter changed (rows allowed before may now be forbidden)', () => {
    const { spec, observed } = setup(2, 3);
    const ch = spec.channels[0];
    if (!ch) throw new Error('fixture');
    ch.filters = { rows: [{ table: 'public.t0001', where: "kind <> 'secret'" }] };
    const plan = planSteadyState(desiredState(spec), observed);
    expect(plan.actions.map((a) => a.kind)).toEqual([
      'alter-publication',
      'refresh-subscription',
      'truncate-tables',
      'alter-publication',
      'refresh-subscription',
    ]);
    expect(plan.actions.some((a) => a.risk === 'resync')).toBe(true);
  });

  it('drops the subscription and publication of a removed channel', () => {
    const { spec, observed } = setup(3, 2);
    spec.channels = spec.channels.slice(0, 1);
    const plan = planSteadyState(desiredState(spec), observed);
    expect(plan.actions.map((a) => `${a.kind}@${a.region}`)).toEqual([
      'drop-subscription@region-002',
      'drop-publication@region-000',
    ]);
  });

  it('reports a table without replica identity before apply, and plans nothing for that channel', () => {
    const { desired, observed } = setup(2, 2);
    const p = region(observed, 'region-000');
    p.publications = [];
    const t = p.tables.find((x) => x.table === 'public.t0000');
    if (!t) throw new Error('fixture');
    t.replicaIdentity = 'd';
    t.hasPrimaryKey = false;
    const plan = planSteadyState(desired, observed);
    expect(plan.problems.map((x) => x.code)).toContain('E_NO_REPLICA_IDENTITY');
    expect(plan.actions.filter((a) => a.kind === 'create-publication')).toEqual([]);
  });

  it('shows an unreachable region in the plan instead of failing', () => {
    const { desired, observed } = setup(3, 2);
    observed.regions[2] = {
      region: 'region-002',
      reachable: false,
      observedAt: 'x',
      reason: 'connection refused',
    };
    const r1 = region(observed, 'region-001');
    r1.subscriptions = [];
    const plan = planSteadyState(desired, observed);
    expect(plan.unreachable).toEqual([{ region: 'region-002', reason: 'connection refused' }]);
    expect(plan.problems.map((p) => p.code)).toEqual(['E_REGION_UNREACHABLE']);
    expect(plan.actions.every((a) => a.region !== 'region-002')).toBe(true);
    expect(plan.actions.some((a) => a.kind === 'create-subscription' && a.region === 'region-001')).toBe(
      true,
    );
  });

  it('re-applies a publication edited by hand (catalog fingerprint differs)', () => {
    const { desired, observed } = setup(2, 2);
    const pub = region(observed, 'region-000').publications[0];
    if (!pub) throw new Error('fixture');
    pub.tables = pub.tables.slice(1);
    const plan = planSteadyState(desired, observed);
    expect(plan.actions[0]?.kind).toBe('alter-publication');
    expect(plan.actions[0]?.reason).toMatch(/changed outside regionctl/);
  });

  it('enables a disabled subscription and re-guards a writable secondary', () => {
    const { desired, observed } = setup(2, 2);
    const s = region(observed, 'region-001');
    const sub = s.subscriptions[0];
    if (!sub) throw new Error('fixture');
    sub.enabled = false;
    s.guards = [
      {
        role: 'app',
        exists: true,
        writableTables: ['public.t0000'],
        defaultReadOnly: true,
        canLogin: true,
        sessions: 0,
      },
    ];
    const plan = planSteadyState(desired, observed);
    expect(plan.actions.map((a) => a.kind).sort()).toEqual(['enable-subscription', 'set-guard']);
  });

  it('renders text and markdown without connection secrets, grouped by region', () => {
    const { desired, observed } = setup(2, 2);
    for (const r of observed.regions) if (r.reachable) r.publications = [];
    const plan = planSteadyState(desired, observed);
    const md = renderMarkdown(plan, { specPath: 'regions.yaml', specCommit: 'abcdef0123456789' });
    expect(md).toContain('#### region-000');
    expect(md).toContain(plan.hash.slice(0, 16));
    expect(md).not.toMatch(/password/i);
    expect(renderText(plan)).toMatch(/create publication rc_pub_region_001/);
  });
});

describe('planner edge cases', () => {
  it('enables a disabled subscription before refreshing it after a hand edit (REFRESH is refused when disabled)', () => {
    const { desired, observed } = setup(2, 2);
    const p = region(observed, 'region-000');
    const pub = p.publications[0];
    const s = region(observed, 'region-001');
    const sub = s.subscriptions[0];
    if (!pub || !sub) throw new Error('fixture');
    pub.tables = pub.tables.slice(1);
    sub.enabled = false;
    const kinds = planSteadyState(desired, observed).actions.map((a) => a.kind);
    const enable = kinds.indexOf('enable-subscription');
    expect(enable).toBeGreaterThanOrEqual(0);
    expect(enable).toBeLessThan(kinds.indexOf('refresh-subscription'));
    expect(kinds.filter((k) => k === 'enable-subscription').length).toBe(1);
  });
});
