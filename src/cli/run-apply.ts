/** `regionctl apply`: plan, show, confirm, apply under the leader lock, verify convergence. */

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { applyPlan } from '../apply/apply.js';
import { guardTopology } from '../apply/topology-guard.js';
import { openAuthorityFromSpec } from '../authority/index.js';
import { RegionctlError } from '../errors.js';
import { withActingRight } from '../leadership/acting-right.js';
import { primaryOf } from '../model/desired.js';
import { hasBlockingProblems, type Plan } from '../plan/plan.js';
import { renderText } from '../plan/render.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { storeJournal } from '../store/journal.js';
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
    `${path.startsWith('the plan') ? path : `the plan in ${path}`} (hash ${savedHash.slice(0, 16)}) no longer matches what apply would do now (hash ${current.hash.slice(0, 16)}): regions.yaml or the regions changed since it was made`,
    path.startsWith('the plan')
      ? 'run `regionctl apply` again and review the new plan'
      : 'run `regionctl plan --out FILE` again, review it, and apply that',
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
  const authority = openAuthorityFromSpec(spec, dir);
  try {
    const guard = await guardTopology(store, primaryOf(spec), { who: 'regionctl apply' });
    if (guard?.initialized) log(`recorded ${guard.topology.primaryRegion} as the primary (epoch 0)`);
    const journal = storeJournal(store);
    const commit = await specCommit(file);
    const shown = await planFor(spec, dir, store);
    process.stdout.write(renderText(shown));
    if (savedHash !== null && opts.plan !== undefined) assertPlanCurrent(savedHash, shown, opts.plan);
    if (shown.actions.length === 0 && !(await journal.interruptedRun())) return 0;
    if (hasBlockingProblems(shown)) return 1;
    // A reviewed plan file is the approval. The question is asked before taking the
    // right to act: a running reconciler is not kept from a failover while a person reads.
    if (
      savedHash === null &&
      !opts.autoApprove &&
      !(await confirm('Apply this plan? Only "yes" is accepted: '))
    ) {
      log('apply cancelled; nothing was changed');
      return 1;
    }
    const approved = {
      hash: savedHash ?? shown.hash,
      what: opts.plan ?? 'the plan shown above',
      fromFile: savedHash !== null,
    };
    return await withActingRight({ spec, specDir: dir, who: 'apply', authority, log }, () =>
      applyApproved(opts, { spec, dir, store, journal, commit, approved, log }),
    );
  } finally {
    await store.close();
    await authority?.close();
  }
}

/** Under the right to act: the approved plan, if it is still what apply would do now. */
async function applyApproved(
  opts: { spec: string; actor: string },
  c: {
    spec: Awaited<ReturnType<typeof loadSpecOrThrow>>['spec'];
    dir: string;
    store: Awaited<ReturnType<typeof openStore>>;
    journal: ReturnType<typeof storeJournal>;
    commit: string | null;
    approved: { hash: string; what: string; fromFile: boolean };
    log: (line: string) => void;
  },
): Promise<number> {
  const { spec, dir, journal, log } = c;
  // A failover may have happened while the plan waited for approval or for the right.
  await guardTopology(c.store, primaryOf(spec), { who: 'regionctl apply' });
  let plan = await planFor(spec, dir, c.store);
  if (plan.actions.length > 0) assertPlanCurrent(c.approved.hash, plan, c.approved.what);
  const meta = { spec, specDir: dir, journal, specCommit: c.commit, actor: opts.actor, log };
  let result = await applyPlan(plan, meta);
  if (result.resumedRunId !== null) {
    // The interrupted run is finished; what the plan said may since have been done.
    plan = await planFor(spec, dir, c.store);
    // A reviewed plan file was made before the resumed steps ran: only an unchanged plan may follow them.
    if (plan.actions.length > 0 && c.approved.fromFile)
      assertPlanCurrent(c.approved.hash, plan, c.approved.what);
    if (plan.actions.length > 0) result = await applyPlan(plan, meta);
  }
  const after = await planFor(spec, dir, c.store);
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
}
