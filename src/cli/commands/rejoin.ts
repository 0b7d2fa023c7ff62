import type { Command } from 'commander';
import { formatOption, specOption } from '../options.js';

export function registerRejoin(program: Command): void {
  program
    .command('rejoin')
    .description('Bring a former primary back as a secondary: lost-write report, repair, subscribe')
    .argument('<region>', 'the region to rejoin (a former primary, fenced)')
    .addOption(specOption())
    .option('--full', 'copy every table from the primary instead of repairing only the divergent rows')
    .option('--dry-run', 'say what would be done; change nothing')
    .option(
      '--report-dir <dir>',
      'where the lost-write report (JSON and replayable SQL) is written',
      '.regionctl/reports',
    )
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
Fences the region, decodes the writes it committed after the failover's cut point and
never shipped (from the slot its successor left there) and keeps them — in the failover
event and as .json/.sql files — before anything is consumed; then repairs exactly the
rows that differ (those writes, plus what the primary changed since the promotion) as of
the snapshot its new subscription starts from, and subscribes. --full copies the tables
instead (also the fallback when the evidence is gone). Resumes an interrupted rejoin.

Example:
  regionctl rejoin us-east-1`,
    )
    .action(
      async (
        region: string,
        opts: { spec: string; full?: boolean; dryRun?: boolean; reportDir: string; format: string },
      ) => {
        const { runRejoinCommand } = await import('../run-rejoin.js');
        process.exitCode = await runRejoinCommand(region, opts);
      },
    );
}
