import { type Command, InvalidArgumentError } from 'commander';
import { formatOption, specOption } from '../options.js';

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive integer`);
    return n;
  };
}

function tableList(value: string): string[] {
  const list = value
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  if (list.length === 0) throw new InvalidArgumentError('--tables needs at least one table');
  return list;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('Compare every published table between the primary and each secondary (chunked checksums)')
    .addOption(specOption())
    .option('--tables <list>', 'only these tables, comma separated (schema.table)', tableList)
    .addOption(formatOption(['text', 'json'], 'text'))
    .option('--chunk-rows <n>', 'keys per checksum chunk', positiveInt('--chunk-rows'), 50_000)
    .addHelpText(
      'after',
      `
Follows the current topology (the control store's primary after a failover). The
primary is read through each channel's row filter and column list; a range of keys
whose checksums differ is narrowed down to the rows that differ, so the cost is one
read of each table plus work proportional to the differences. Ranges that differ
only because a secondary lags are re-checked once it has caught up. Rows a secondary
holds that its filters exclude (or tables withheld from it) are violations.
Exit 0 all equal, 1 differences or violations (or a region unreachable), 2 usage.

Examples:
  regionctl verify
  regionctl verify --tables public.orders,public.customers --format json`,
    )
    .action(async (opts: { spec: string; tables?: string[]; format: string; chunkRows: number }) => {
      const { runVerify } = await import('../run-verify.js');
      process.exitCode = await runVerify(opts);
    });
}
