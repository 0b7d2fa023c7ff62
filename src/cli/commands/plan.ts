import type { Command } from 'commander';

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('(not yet implemented)')
    .action(() => {
      process.stderr.write('regionctl plan: not yet implemented\n');
      process.exitCode = 1;
    });
}
