import type { Command } from 'commander';
import { formatOption, specOption } from '../options.js';

export function registerFailover(program: Command): void {
  program
    .command('failover')
    .description('Promote a secondary now: fence the primary, promote, re-form channels, repoint DNS')
    .addOption(specOption())
    .option('--to <region>', 'region to promote (default: the most advanced eligible candidate)')
    .option(
      '--force',
      'promote even when the candidate lags beyond its failover threshold, or the fence is unconfirmed',
    )
    .option(
      '--accept-split-brain-risk',
      'with an authority: promote although the old primary is neither confirmed fenced nor past its lease (it may still take writes); recorded in the event',
    )
    .option('--dry-run', 'print the candidate ranking and the expected loss; change nothing')
    .option('--reason <text>', 'why, for the failover event', 'manual failover')
    .option(
      '--write-back-remote <remote>',
      'push the updated regions.yaml to a branch on this git remote (env REGIONCTL_WRITE_BACK_REMOTE)',
      process.env.REGIONCTL_WRITE_BACK_REMOTE,
    )
    .option('--write-back-base <branch>', 'the branch the write-back pull request targets', 'main')
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
The plan (candidate ranking by applied LSN, expected loss in bytes and seconds) is
printed before anything runs. A candidate lagging beyond its channel's
failoverMaxLagSeconds is refused unless --force; the loss is written into the event.
An unfinished failover (a reconciler died mid-way) is resumed, never started twice.
A running \`reconcile --watch\` steps aside for the command (between its passes, never
inside a transition) and leads again when it is done.
With an \`authority\`, the candidate accepts writes only once the old primary is confirmed
fenced or its primary lease has been gone for the safety margin (its agent fenced it);
otherwise the failover stops with E_PROMOTION_REFUSED, unless --accept-split-brain-risk.
Exit 0 done (or dry run), 1 refused or failed.

Examples:
  regionctl failover --dry-run
  regionctl failover --to eu-west-1
  regionctl failover --to eu-west-1 --force`,
    )
    .action(
      async (opts: {
        spec: string;
        to?: string;
        force?: boolean;
        acceptSplitBrainRisk?: boolean;
        dryRun?: boolean;
        reason: string;
        format: string;
      }) => {
        const { runFailoverCommand } = await import('../run-failover.js');
        process.exitCode = await runFailoverCommand(opts);
      },
    );
  program
    .command('switchover')
    .description('Planned change of primary with zero data loss; the old primary becomes a secondary')
    .addOption(specOption())
    .requiredOption('--to <region>', 'region to promote')
    .option('--dry-run', 'check that a switchover is possible; change nothing')
    .option(
      '--write-back-remote <remote>',
      'push the updated regions.yaml to a branch on this git remote (env REGIONCTL_WRITE_BACK_REMOTE)',
      process.env.REGIONCTL_WRITE_BACK_REMOTE,
    )
    .option('--write-back-base <branch>', 'the branch the write-back pull request targets', 'main')
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
Fences the primary, waits until every secondary applied everything it wrote, promotes
the target and points every region (the old primary included) at it from slots made
before it accepts a write: nothing is copied and nothing is lost. Failing back is
another switchover.

Example:
  regionctl switchover --to eu-west-1`,
    )
    .action(
      async (opts: {
        spec: string;
        to: string;
        dryRun?: boolean;
        format: string;
        writeBackRemote?: string;
        writeBackBase: string;
      }) => {
        const { runSwitchoverCommand } = await import('../run-failover.js');
        process.exitCode = await runSwitchoverCommand(opts);
      },
    );
  program
    .command('events')
    .description('List failover and switchover events with their steps, evidence and loss')
    .addOption(specOption())
    .option('--limit <n>', 'how many, newest first', '20')
    .addOption(formatOption(['text', 'json'], 'text'))
    .action(async (opts: { spec: string; limit: string; format: string }) => {
      const { runEvents } = await import('../run-failover.js');
      process.exitCode = await runEvents(opts);
    });
}
