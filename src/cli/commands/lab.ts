import type { Command } from 'commander';

export function registerLab(program: Command): void {
  program
    .command('lab')
    .description('(not yet implemented)')
    .action(() => {
      process.stderr.write('regionctl lab: not yet implemented\n');
      process.exitCode = 1;
    });
}
