/**
 * The apply journal (the `Journal` that src/apply/apply.ts needs) on the control store.
 * Each row is committed before the step it describes runs, so the journal is never
 * behind what happened in the regions.
 */
import type { Journal } from '../apply/apply.js';
import type { Action } from '../plan/actions.js';
import { actionKey } from '../plan/actions.js';
import type { Store } from './store.js';

export function storeJournal(s: Store): Journal {
  return {
    async interruptedRun() {
      // Called with the leader lock held: a run still `running` belongs to a dead process.
      const run = await s.lastInterruptedRun();
      if (!run) return null;
      // This process takes it over: back to running until it finishes (or dies too).
      await s.resumeApplyRun(run.runId);
      const plan = run.plan as { actions?: Action[] } | null;
      return {
        runId: run.runId,
        actions: plan?.actions ?? [],
        doneSeqs: run.steps.filter((x) => x.status === 'done').map((x) => x.seq),
      };
    },
    async startRun(plan, meta) {
      const runId = await s.startApplyRun({
        planHash: plan.hash,
        plan,
        specCommit: meta.specCommit,
        actor: meta.actor,
      });
      await s.audit({
        actor: meta.actor,
        action: 'apply',
        specCommit: meta.specCommit,
        detail: { runId, planHash: plan.hash, actions: plan.actions.length },
      });
      return runId;
    },
    stepStarted: (runId, seq, action) => s.recordStepStarted(runId, seq, actionKey(action), action),
    stepDone: (runId, seq) => s.recordStepDone(runId, seq),
    stepFailed: (runId, seq, error) => s.recordStepFailed(runId, seq, error),
    finishRun: (runId, status) => s.finishApplyRun(runId, status),
  };
}
