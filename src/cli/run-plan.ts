/** `regionctl plan`: load, observe, plan, render. */
import { writeFileSync } from 'node:fs';
import { desiredState } from '../model/desired.js';
import { observe } from '../observe/observe.js';
import { hasBlockingProblems, type Plan, planSteadyState } from '../plan/plan.js';
import { renderJson, renderMarkdown, renderText } from '../plan/render.js';
import { loadSpecOrThrow } from '../spec/load.js';
import type { RegionsSpec } from '../spec/schema.js';
import { specCommit } from './spec-commit.js';

export async function planFor(spec: RegionsSpec, specDir: string): Promise<Plan> {
  const observed = await observe(spec, specDir);
  return planSteadyState(desiredState(spec), observed);
}

export async function runPlan(opts: {
  spec: string;
  format: string;
  out?: string;
  detailedExitcode?: boolean;
}): Promise<number> {
  const { spec, file, dir } = await loadSpecOrThrow(opts.spec);
  const plan = await planFor(spec, dir);
  if (opts.format === 'json') process.stdout.write(renderJson(plan));
  else if (opts.format === 'markdown')
    process.stdout.write(renderMarkdown(plan, { specPath: opts.spec, specCommit: await specCommit(file) }));
  else process.stdout.write(renderText(plan));
  if (opts.out) writeFileSync(opts.out, renderJson(plan));
  if (hasBlockingProblems(plan)) return 1;
  // An unobserved region may need changes: "no changes" would be a claim we cannot make.
  if (opts.detailedExitcode && (plan.actions.length > 0 || plan.unreachable.length > 0)) return 2;
  return 0;
}
