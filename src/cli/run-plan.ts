/** `regionctl plan`: load, observe, plan, render. */
import { writeFileSync } from 'node:fs';
import { type DesiredState, desiredState } from '../model/desired.js';
import type { Observed } from '../model/observed.js';
import { observe } from '../observe/observe.js';
import { hasBlockingProblems, type Plan, planSteadyState } from '../plan/plan.js';
import { renderJson, renderMarkdown, renderText, scrubSecrets } from '../plan/render.js';
import { resolveSecret } from '../secrets/resolve.js';
import { loadSpecOrThrow } from '../spec/load.js';
import type { RegionsSpec, SecretRefSpec } from '../spec/schema.js';
import { specCommit } from './spec-commit.js';

export async function planWithInputs(
  spec: RegionsSpec,
  specDir: string,
): Promise<{ plan: Plan; observed: Observed; desired: DesiredState }> {
  const observed = await observe(spec, specDir);
  const desired = desiredState(spec);
  return { plan: planSteadyState(desired, observed), observed, desired };
}

export async function planFor(spec: RegionsSpec, specDir: string): Promise<Plan> {
  return (await planWithInputs(spec, specDir)).plan;
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
  const { plan, observed, desired } = await planWithInputs(spec, dir);
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
