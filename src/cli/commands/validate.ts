import type { Command } from 'commander';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('(not yet implemented)')
    .action(() => {
      process.stderr.write('regionctl validate: not yet implemented\n');
      process.exitCode = 1;
    });
}
