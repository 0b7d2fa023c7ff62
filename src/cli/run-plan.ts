/** `regionctl plan`: load, observe, plan, render. */
import { writeFileSync } from 'node:fs';
import { guardTopology } from '../apply/topology-guard.js';
import { RegionctlError } from '../errors.js';
import { type DesiredState, desiredState, primaryOf } from '../model/desired.js';
import type { Observed } from '../model/observed.js';
import { withoutRegions } from '../model/promote.js';
import { observe } from '../observe/observe.js';
import { hasBlockingProblems, type Plan, type Problem, planHash, planSteadyState } from '../plan/plan.js';
import { renderJson, renderMarkdown, renderText, scrubSecrets } from '../plan/render.js';
import { resolveSecret } from '../secrets/resolve.js';
import { loadSpecOrThrow } from '../spec/load.js';
import type { RegionsSpec, SecretRefSpec } from '../spec/schema.js';
import { controlTarget } from '../sql/connect.js';
import { openStore, type Store } from '../store/store.js';
import { specCommit } from './spec-commit.js';

/**
 * What the control store adds to a plan: regions it marks fenced or rebuilding (a former
 * primary awaiting rejoin holds the only copy of its unshipped writes: no plan may
 * truncate or re-subscribe it — only `regionctl rejoin` brings it back), and the
 * recorded topology (a spec that names another primary would undo a failover).
 */
export interface StoreFacts {
  awaitingRejoin: { region: string; state: string; eventId: number | null }[];
  mismatch: Problem | null;
}

export async function storeFacts(store: Store | null, spec: RegionsSpec): Promise<StoreFacts> {
  if (!store) return { awaitingRejoin: [], mismatch: null };
  const primary = primaryOf(spec);
  const awaitingRejoin = (await store.regionStates()).filter((r) => r.region !== primary);
  let mismatch: Problem | null = null;
  try {
    await guardTopology(store, primary, { who: 'regionctl apply', record: false });
  } catch (e) {
    if (!(e instanceof RegionctlError) || e.code !== 'E_TOPOLOGY_MISMATCH') throw e;
    mismatch = { code: 'E_TOPOLOGY_MISMATCH', severity: 'error', message: e.message, hint: e.hint ?? '' };
  }
  return { awaitingRejoin, mismatch };
}

export async function planWithInputs(
  spec: RegionsSpec,
  specDir: string,
  store: Store | null = null,
): Promise<{ plan: Plan; observed: Observed; desired: DesiredState }> {
  const facts = await storeFacts(store, spec);
  const excluded = facts.awaitingRejoin.map((r) => r.region);
  const effective = excluded.length > 0 ? withoutRegions(spec, excluded) : spec;
  const observed = await observe(effective, specDir);
  const desired = desiredState(effective);
  const base = planSteadyState(desired, observed);
  const extra: Problem[] = [
    ...(facts.mismatch ? [facts.mismatch] : []),
    ...facts.awaitingRejoin.map(
      (r): Problem => ({
        code: 'W_AWAITING_REJOIN',
        severity: 'warning',
        region: r.region,
        message: `${r.region} is ${r.state}${r.eventId ? ` since event #${r.eventId}` : ''}: a former primary awaiting rejoin (it may hold writes never shipped); this plan leaves it alone`,
        hint: `bring it back with \`regionctl rejoin ${r.region}\`, which reports its lost writes before it changes anything`,
      }),
    ),
  ];
  if (extra.length === 0) return { plan: base, observed, desired };
  // A mismatched spec is refused outright: its actions would undo the failover. A region
  // awaiting rejoin gets none at all: a guard would hand its roles their login back, and
  // dropping its publications would take the lost-write report's decoder with them.
  const actions = facts.mismatch ? [] : base.actions.filter((a) => !excluded.includes(a.region));
  const problems = [...extra, ...base.problems];
  return { plan: { ...base, actions, problems, hash: planHash(actions, problems) }, observed, desired };
}

export async function planFor(spec: RegionsSpec, specDir: string, store: Store | null = null): Promise<Plan> {
  return (await planWithInputs(spec, specDir, store)).plan;
}

/** Every secret the spec references that can be read here (for scrubSecrets). */
export function knownSecrets(spec: RegionsSpec, specDir: string): string[] {
  const refs: SecretRefSpec[] = [];
  for (const r of spec.regions) if (r.endpoint.password) refs.push(r.endpoint.password);
  if (spec.controlStore.password) refs.push(spec.controlStore.password);
  if (spec.dns?.rfc2136?.keySecret) refs.push(spec.dns.rfc2136.keySecret);
  if (spec.alerts?.webhook) refs.push(spec.alerts.webhook);
  const out: string[] = [];
  for (const ref of refs) {
    try {
      out.push(resolveSecret(ref, specDir, 'secret'));
    } catch {
      // Unreadable here means it cannot have been read into the plan either.
    }
  }
  return out;
}

export async function runPlan(opts: {
  spec: string;
  format: string;
  out?: string;
  detailedExitcode?: boolean;
}): Promise<number> {
  const { spec, file, dir } = await loadSpecOrThrow(opts.spec);
  // The control store's facts, when it answers: a plan made without them says so.
  let store: Store | null = null;
  try {
    store = await openStore(controlTarget(spec, dir));
  } catch (e) {
    process.stderr.write(
      `warning: control store unreachable (${(e as Error).message}): this plan does not know which regions await rejoin nor the recorded primary\n`,
    );
  }
  let planned: Awaited<ReturnType<typeof planWithInputs>>;
  try {
    planned = await planWithInputs(spec, dir, store);
  } finally {
    await store?.close();
  }
  const { plan, observed, desired } = planned;
  if (opts.format === 'json') process.stdout.write(renderJson(plan));
  else if (opts.format === 'markdown') {
    const md = renderMarkdown(plan, {
      specPath: opts.spec,
      specCommit: await specCommit(file),
      observed,
      desired,
    });
    process.stdout.write(scrubSecrets(md, knownSecrets(spec, dir)));
  } else process.stdout.write(renderText(plan));
  if (opts.out) writeFileSync(opts.out, renderJson(plan));
  if (hasBlockingProblems(plan)) return 1;
  // An unobserved region may need changes: "no changes" would be a claim we cannot make.
  if (opts.detailedExitcode && (plan.actions.length > 0 || plan.unreachable.length > 0)) return 2;
  return 0;
}
