/**
 * The apply journal in the control store. Each row is committed before the step it
 * describes runs (autocommit on the store connection), so the journal is never behind
 * what happened in the regions.
 */
import type { Journal } from '../apply/apply.js';
import type { Action } from '../plan/actions.js';
import { actionKey } from '../plan/actions.js';
import type { Store } from './store.js';

export function storeJournal(s: Store): Journal {
  const q = (sql: string, params: unknown[] = []) => s.client.query(sql, params);
  return {
    async interruptedRun() {
      // Called with the leader lock held: a run still `running` belongs to a dead process.
      const run = (
        await q("SELECT id, plan FROM regionctl.apply_run WHERE status = 'running' ORDER BY id DESC LIMIT 1")
      ).rows[0];
      if (!run) return null;
      const done = (
        await q("SELECT seq FROM regionctl.apply_step WHERE run_id = $1 AND status = 'done' ORDER BY seq", [
          run.id,
        ])
      ).rows.map((r) => r.seq as number);
      return { runId: run.id as number, actions: run.plan.actions as Action[], doneSeqs: done };
    },
    async startRun(plan, meta) {
      const r = await q(
        'INSERT INTO regionctl.apply_run (plan_hash, plan, spec_commit, actor) VALUES ($1, $2, $3, $4) RETURNING id',
        [plan.hash, JSON.stringify(plan), meta.specCommit, meta.actor],
      );
      await q(
        "INSERT INTO regionctl.audit_log (actor, action, spec_commit, detail) VALUES ($1, 'apply', $2, $3)",
        [meta.actor, meta.specCommit, JSON.stringify({ runId: r.rows[0].id, planHash: plan.hash })],
      );
      return r.rows[0].id as number;
    },
    async stepStarted(runId, seq, action) {
      await q(
        `INSERT INTO regionctl.apply_step (run_id, seq, action_key, action, status)
         VALUES ($1, $2, $3, $4, 'started')
         ON CONFLICT (run_id, seq) DO UPDATE
           SET status = 'started', attempts = regionctl.apply_step.attempts + 1, started_at = now(), error = NULL`,
        [runId, seq, actionKey(action), JSON.stringify(action)],
      );
    },
    async stepDone(runId, seq) {
      await q(
        "UPDATE regionctl.apply_step SET status = 'done', finished_at = now() WHERE run_id = $1 AND seq = $2",
        [runId, seq],
      );
    },
    async stepFailed(runId, seq, error) {
      await q(
        "UPDATE regionctl.apply_step SET status = 'failed', error = $3, finished_at = now() WHERE run_id = $1 AND seq = $2",
        [runId, seq, error],
      );
    },
    async finishRun(runId, status) {
      await q('UPDATE regionctl.apply_run SET status = $2, finished_at = now() WHERE id = $1', [
        runId,
        status,
      ]);
    },
  };
}
