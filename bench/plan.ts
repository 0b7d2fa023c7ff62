/**
 * Planner benchmark: a synthetic topology of 50 regions × 200 tables (target < 50 ms
 * per plan, pure planner, no I/O). Prints p50/p95 over repeated runs.
 */
import { desiredState } from '../src/model/desired.js';
import { planSteadyState } from '../src/plan/plan.js';
import { percentile } from './stats.js';
import { convergedObservation, syntheticSpec } from './synthetic.js';

export function benchPlan(
  regions = 50,
  tables = 200,
  runs = 30,
): { p50: number; p95: number; actions: number } {
  const spec = syntheticSpec(regions, tables);
  const desired = desiredState(spec);
  const converged = convergedObservation(desired);
  // An empty observation (nothing applied yet) makes the planner do the most work.
  const empty = {
    regions: converged.regions.map((r) =>
      r.reachable ? { ...r, publications: [], subscriptions: [], heartbeatInstalled: false } : r,
    ),
  };
  const times: number[] = [];
  let actions = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    desiredState(spec);
    const plan = planSteadyState(desired, i % 2 === 0 ? empty : converged);
    times.push(performance.now() - t0);
    if (i % 2 === 0) actions = plan.actions.length;
  }
  return { p50: percentile(times, 50), p95: percentile(times, 95), actions };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = benchPlan();
  console.log(
    `plan 50 regions x 200 tables: p50 ${r.p50.toFixed(2)} ms, p95 ${r.p95.toFixed(2)} ms (${r.actions} actions from scratch; target < 50 ms)`,
  );
}
