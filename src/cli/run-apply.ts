/** `regionctl apply`: plan, show, confirm, apply under the leader lock, verify convergence. */

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { applyPlan } from '../apply/apply.js';
import { guardTopology } from '../apply/topology-guard.js';
import { RegionctlError } from '../errors.js';
import { primaryOf } from '../model/desired.js';
import { hasBlockingProblems, type Plan } from '../plan/plan.js';
import { renderText } from '../plan/render.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { storeJournal } from '../store/journal.js';
import { acquireLeaderLock } from '../store/leader-lock.js';
import { openStore } from '../store/store.js';
import { planFor } from './run-plan.js';
import { specCommit } from './spec-commit.js';

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new RegionctlError(
      'E_USAGE_CONFIRM',
      'apply needs confirmation but stdin is not a terminal',
      'review `regionctl plan`, then run `regionctl apply --auto-approve`',
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return answer.trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}

/** The hash of a plan written by `regionctl plan --out FILE`. */
export function readPlanHash(path: string): string {
  let saved: Partial<Plan>;
  try {
    saved = JSON.parse(readFileSync(path, 'utf8')) as Partial<Plan>;
  } catch (e) {
    throw new RegionctlError(
      'E_PLAN_FILE',
      `cannot read the plan ${path}: ${(e as Error).message}`,
      'pass the file written by `regionctl plan --out FILE`',
    );
  }
  if (typeof saved?.hash !== 'string' || !/^[0-9a-f]{64}$/.test(saved.hash)) {
    throw new RegionctlError(
      'E_PLAN_FILE',
      `${path} is not a regionctl plan (no plan hash)`,
      'pass the file written by `regionctl plan --out FILE`',
    );
  }
  return saved.hash;
}

/**
 * Stale-plan protection: the plan that was reviewed must be the plan that would run now.
 * Its actions are not replayed from the file: the plan is recomputed from the current
 * spec and observed state, and only an identical hash lets it run.
 */
export function assertPlanCurrent(savedHash: string, current: Plan, path: string): void {
  if (savedHash === current.hash) return;
  throw new RegionctlError(
    'E_PLAN_STALE',
    `the plan in ${path} (hash ${savedHash.slice(0, 16)}) no longer matches what apply would do now (hash ${current.hash.slice(0, 16)}): regions.yaml or the regions changed since it was made`,
    'run `regionctl plan --out FILE` again, review it, and apply that',
  );
}

export async function runApply(opts: {
  spec: string;
  autoApprove?: boolean;
  actor: string;
  plan?: string;
}): Promise<number> {
  const { spec, file, dir } = await loadSpecOrThrow(opts.spec);
  const savedHash = opts.plan === undefined ? null : readPlanHash(opts.plan);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const ctl = controlTarget(spec, dir);
  const store = await openStore(ctl);
  const lock = await acquireLeaderLock(ctl, 'apply', { wait: false });
  try {
    const guard = await guardTopology(store, primaryOf(spec), { who: 'regionctl apply' });
    if (guard?.initialized) log(`recorded ${guard.topology.primaryRegion} as the primary (epoch 0)`);
    const journal = storeJournal(store);
    const commit = await specCommit(file);
    let plan = await planFor(spec, dir);
    process.stdout.write(renderText(plan));
    if (savedHash !== null && opts.plan !== undefined) assertPlanCurrent(savedHash, plan, opts.plan);
    const interrupted = await journal.interruptedRun();
    if (plan.actions.length === 0 && !interrupted) return 0;
    if (hasBlockingProblems(plan)) return 1;
    // A reviewed plan file is the approval.
    if (
      savedHash === null &&
      !opts.autoApprove &&
      !(await confirm('Apply this plan? Only "yes" is accepted: '))
    ) {
      log('apply cancelled; nothing was changed');
      return 1;
    }
    const meta = { spec, specDir: dir, journal, specCommit: commit, actor: opts.actor, log };
    let result = await applyPlan(plan, meta);
    if (result.resumedRunId !== null) {
      // The interrupted run is finished; what the plan said may since have been done.
      plan = await planFor(spec, dir);
      // The reviewed plan was made before the resumed steps ran: only an unchanged plan may follow them.
      if (plan.actions.length > 0 && savedHash !== null && opts.plan !== undefined)
        assertPlanCurrent(savedHash, plan, opts.plan);
      if (plan.actions.length > 0) result = await applyPlan(plan, meta);
    }
    const after = await planFor(spec, dir);
    if (after.actions.length > 0) {
      process.stdout.write(renderText(after));
      throw new RegionctlError(
        'E_NOT_CONVERGED',
        `apply finished but the regions still differ from the spec (${after.actions.length} action(s) remain)`,
        'run `regionctl plan` to see what remains; report it if it persists',
      );
    }
    log(`applied ${result.applied} step(s); regions match ${opts.spec}`);
    return 0;
  } finally {
    await lock.release();
    await store.close();
  }
}
