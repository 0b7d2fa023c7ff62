import type { Command } from 'commander';

export function registerApply(program: Command): void {
  program
    .command('apply')
    .description('(not yet implemented)')
    .action(() => {
      process.stderr.write('regionctl apply: not yet implemented\n');
      process.exitCode = 1;
    });
}
