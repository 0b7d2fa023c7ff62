import type { Command } from 'commander';
import { formatOption, positiveNumber, specOption } from '../options.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('Show every region (role, reachable, LSN) and channel (status, lag, RPO, time to catch up)')
    .addOption(specOption())
    .addOption(formatOption(['text', 'json'], 'text'))
    .option('--watch', 'refresh until interrupted')
    .option('--interval <seconds>', 'refresh interval with --watch', positiveNumber('--interval'), 2)
    .addHelpText(
      'after',
      `
status only observes: it never writes to the regions or the control store. Lag in
seconds comes from the heartbeat the leading reconciler writes on the primary
(\`regionctl reconcile --watch\`); without it, lag is estimated from bytes and write rate.
Exit 0 when every channel is active, 1 otherwise.`,
    )
    .action(async (opts: { spec: string; format: string; watch?: boolean; interval: number }) => {
      const { runStatus } = await import('../run-status.js');
      process.exitCode = await runStatus(opts);
    });
}
