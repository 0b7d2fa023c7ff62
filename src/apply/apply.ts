/**
 * Applies a plan under the leader lock, journaling every step in the control store
 * before and after it runs (the row is committed before the step starts, so a crash
 * leaves a `started` step that the next apply re-runs — steps are idempotent — and
 * never a step that ran without a trace).
 */
import { RegionctlError } from '../errors.js';
import type { Action } from '../plan/actions.js';
import { actionKey, describeAction } from '../plan/actions.js';
import type { Plan } from '../plan/plan.js';
import { hasBlockingProblems } from '../plan/plan.js';
import type { RegionsSpec } from '../spec/schema.js';
import { executeAction, openClients } from './execute.js';

/** What apply needs from the control store. */
export interface Journal {
  /** The last run that never finished (its process died), with its plan and finished steps. */
  interruptedRun(): Promise<{ runId: number; actions: Action[]; doneSeqs: number[] } | null>;
  startRun(plan: Plan, meta: { specCommit: string | null; actor: string }): Promise<number>;
  stepStarted(runId: number, seq: number, action: Action): Promise<void>;
  stepDone(runId: number, seq: number): Promise<void>;
  stepFailed(runId: number, seq: number, error: string): Promise<void>;
  finishRun(runId: number, status: 'succeeded' | 'failed'): Promise<void>;
}

export interface ApplyOptions {
  spec: RegionsSpec;
  specDir: string;
  journal: Journal;
  specCommit: string | null;
  actor: string;
  log: (line: string) => void;
  /** For tests of crash recovery: stop (as if killed) right after this many steps. */
  crashAfterSteps?: number;
}

export interface ApplyResult {
  runId: number | null;
  resumedRunId: number | null;
  applied: number;
}

class SimulatedCrash extends Error {}

async function runSteps(
  opts: ApplyOptions,
  runId: number,
  actions: Action[],
  skip: Set<number>,
  budget: { left: number; applied: number },
): Promise<void> {
  const clients = await openClients(opts.spec, opts.specDir);
  try {
    for (const [seq, action] of actions.entries()) {
      if (skip.has(seq)) continue;
      if (budget.left <= 0) throw new SimulatedCrash('simulated crash');
      await opts.journal.stepStarted(runId, seq, action);
      opts.log(`[${seq + 1}/${actions.length}] ${action.region}: ${describeAction(action)}`);
      try {
        await executeAction(
          { spec: opts.spec, specDir: opts.specDir, client: clients.client, log: opts.log },
          action,
        );
      } catch (e) {
        const msg = (e as Error).message;
        await opts.journal.stepFailed(runId, seq, msg);
        await opts.journal.finishRun(runId, 'failed');
        throw new RegionctlError(
          'E_APPLY_STEP_FAILED',
          `step ${seq + 1} (${actionKey(action)}) failed in region ${action.region}: ${msg}`,
          `steps 1..${seq} are applied and journaled in run ${runId}; fix the cause and run apply again (it re-plans from what is there)`,
        );
      }
      await opts.journal.stepDone(runId, seq);
      budget.applied++;
      budget.left--;
    }
  } finally {
    await clients.close();
  }
}

/**
 * Finishes an interrupted run (if any), then applies `plan`. Must be called with the
 * leader lock held.
 */
export async function applyPlan(plan: Plan, opts: ApplyOptions): Promise<ApplyResult> {
  if (hasBlockingProblems(plan)) {
    const codes = [...new Set(plan.problems.filter((p) => p.severity === 'error').map((p) => p.code))];
    throw new RegionctlError(
      'E_PLAN_BLOCKED',
      `the plan has blocking problems (${codes.join(', ')}); nothing was applied`,
      'run `regionctl plan` to see each problem and its fix',
    );
  }
  const budget = { left: opts.crashAfterSteps ?? Number.POSITIVE_INFINITY, applied: 0 };
  let resumedRunId: number | null = null;
  try {
    const interrupted = await opts.journal.interruptedRun();
    if (interrupted) {
      resumedRunId = interrupted.runId;
      opts.log(
        `resuming interrupted apply run ${interrupted.runId}: ${interrupted.doneSeqs.length}/${interrupted.actions.length} steps were done`,
      );
      await runSteps(opts, interrupted.runId, interrupted.actions, new Set(interrupted.doneSeqs), budget);
      await opts.journal.finishRun(interrupted.runId, 'succeeded');
      // The plan was made before the resumed steps ran; the caller re-plans.
      return { runId: null, resumedRunId, applied: budget.applied };
    }
    if (plan.actions.length === 0) return { runId: null, resumedRunId, applied: 0 };
    const runId = await opts.journal.startRun(plan, { specCommit: opts.specCommit, actor: opts.actor });
    await runSteps(opts, runId, plan.actions, new Set(), budget);
    await opts.journal.finishRun(runId, 'succeeded');
    return { runId, resumedRunId, applied: budget.applied };
  } catch (e) {
    if (e instanceof SimulatedCrash) return { runId: null, resumedRunId, applied: budget.applied };
    throw e;
  }
}
