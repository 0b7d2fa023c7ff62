import { type Command, Option } from 'commander';
import { formatOption, specOption } from '../options.js';

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('Show what apply would change: diff regions.yaml against what each region really has')
    .addOption(specOption())
    .addOption(formatOption(['text', 'markdown', 'json'], 'text'))
    .option('--out <file>', 'also write the plan as JSON to FILE (for `regionctl apply --plan FILE`)')
    .addOption(
      new Option(
        '--detailed-exitcode',
        'exit 0 when there is nothing to do, 2 when there are changes or a region could not be observed, 1 on error or blocking problems',
      ),
    )
    .addHelpText(
      'after',
      `
Plans are pure: the same spec and the same observed state give the same plan, byte for
byte, and its hash. Unreachable regions are shown in the plan, not treated as errors;
problems that would make apply fail (no replica identity, schema drift, wal_level) are
reported here, before anything runs.

Examples:
  regionctl plan
  regionctl plan --format markdown > plan.md     # a pull-request comment
  regionctl plan --format json --detailed-exitcode`,
    )
    .action(async (opts: { spec: string; format: string; out?: string; detailedExitcode?: boolean }) => {
      const { runPlan } = await import('../run-plan.js');
      process.exitCode = await runPlan(opts);
    });
}
