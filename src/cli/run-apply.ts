/** `regionctl apply`: plan, show, confirm, apply under the leader lock, verify convergence. */
import { createInterface } from 'node:readline/promises';
import { applyPlan } from '../apply/apply.js';
import { RegionctlError } from '../errors.js';
import { hasBlockingProblems } from '../plan/plan.js';
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

export async function runApply(opts: {
  spec: string;
  autoApprove?: boolean;
  actor: string;
}): Promise<number> {
  const { spec, file, dir } = await loadSpecOrThrow(opts.spec);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const ctl = controlTarget(spec, dir);
  const store = await openStore(ctl);
  const lock = await acquireLeaderLock(ctl, 'apply', { wait: false });
  try {
    const journal = storeJournal(store);
    const commit = await specCommit(file);
    let plan = await planFor(spec, dir);
    process.stdout.write(renderText(plan));
    const interrupted = await journal.interruptedRun();
    if (plan.actions.length === 0 && !interrupted) return 0;
    if (hasBlockingProblems(plan)) return 1;
    if (!opts.autoApprove && !(await confirm('Apply this plan? Only "yes" is accepted: '))) {
      log('apply cancelled; nothing was changed');
      return 1;
    }
    const meta = { spec, specDir: dir, journal, specCommit: commit, actor: opts.actor, log };
    let result = await applyPlan(plan, meta);
    if (result.resumedRunId !== null) {
      // The interrupted run is finished; what the plan said may since have been done.
      plan = await planFor(spec, dir);
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
