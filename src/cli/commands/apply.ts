import type { Command } from 'commander';
import { specOption } from '../options.js';

export function registerApply(program: Command): void {
  program
    .command('apply')
    .description(
      'Plan, show the plan, ask, then apply it under the leader lock with a journaled step per action',
    )
    .addOption(specOption())
    .option('--auto-approve', 'do not ask for confirmation (CI, scripts)')
    .option(
      '--plan <file>',
      'apply only if the plan computed now has the same hash as FILE (from `regionctl plan --out FILE`); refused with E_PLAN_STALE otherwise',
    )
    .option('--actor <name>', 'who is applying, for the audit trail', process.env.USER ?? 'unknown')
    .addHelpText(
      'after',
      `
apply takes the leader lock in the control store (a second apply is refused and told
who holds it), journals each step before and after it runs, and resumes an interrupted
run before planning anew. After applying it observes and plans again: that plan must be
empty. Exit 0 on success, 1 on failure or refusal.

It refuses (E_TOPOLOGY_MISMATCH) when the control store says another region is primary
than regions.yaml does: a failover happened and its write-back is not merged yet.
With --plan FILE the reviewed plan is the approval; it is recomputed from the current
spec and regions, and a different hash is refused (E_PLAN_STALE).

Examples:
  regionctl apply
  regionctl apply --auto-approve
  regionctl plan --out plan.json && regionctl apply --plan plan.json`,
    )
    .action(async (opts: { spec: string; autoApprove?: boolean; actor: string; plan?: string }) => {
      const { runApply } = await import('../run-apply.js');
      process.exitCode = await runApply(opts);
    });
}
